"""Register layout: engineering values of many devices <-> their raw register images.

A :class:`RegisterLayout` is built once per distinct point list (usually one per profile). It
turns a ``(devices, points)`` matrix of engineering values into one raw image per register kind,
for every device at once: numeric points are grouped by (type, order) and encoded with
:mod:`fieldmodel.codec`, the codec the gateway reads with (inverse scale/offset, clipped to the
type's range); bool points set or clear their bit of a holding/input word, or their
coil/discrete bit. The same layout decodes an image
back, so tests and tools check the simulators through the gateway's reading of the registers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from fieldmodel.codec import decode_words, encode_values
from fieldmodel.model import Point
from fieldmodel.registers import BIT_KINDS, DTYPES, FLOAT_TYPES, REGISTER_WIDTH, WORD_KINDS

__all__ = ["KINDS", "RegisterLayout"]

F64 = npt.NDArray[np.float64]
U16 = npt.NDArray[np.uint16]
Bools = npt.NDArray[np.bool_]

#: Register kinds in the order pymodbus takes them: (coils, discretes, holding, input).
KINDS: Final = BIT_KINDS + WORD_KINDS


def _raw_range(type_name: str) -> tuple[float, float]:
    """Raw range a type saturates at: the integer type's range, kept inside what a float64
    carries exactly (so 64-bit types stop just below 2**63 and 2**64); floats their finite
    range."""
    dtype = np.dtype(DTYPES[type_name])
    if type_name in FLOAT_TYPES:
        top = float(np.finfo(dtype).max)
        return -top, top
    info = np.iinfo(dtype)
    low, high = float(info.min), float(info.max)
    if high > info.max:  # int64/uint64 max rounds up to a power of two in float64
        high = float(np.nextafter(high, 0.0))
    return low, high


_RAW_RANGE: Final[dict[str, tuple[float, float]]] = {t: _raw_range(t) for t in DTYPES}


@dataclass(frozen=True, slots=True)
class _NumericGroup:
    """Points of one (kind, type, order): value columns and the word columns they fill."""

    kind: str
    type: str
    order: str
    columns: npt.NDArray[np.intp]  # indices into the point list
    words: npt.NDArray[np.intp]  # (len(columns) * width) word addresses, point-major
    scale: F64
    offset: F64
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class _BitWordGroup:
    """Bool points carried as bits of holding/input words, sorted by word address."""

    kind: str
    columns: npt.NDArray[np.intp]
    shifts: npt.NDArray[np.uint16]
    starts: npt.NDArray[np.intp]  # reduceat boundaries, one per distinct word
    words: npt.NDArray[np.intp]  # the distinct word addresses
    clear: U16  # bits the group owns in each distinct word


class RegisterLayout:
    """Where each point of a device lives, and the vectorized encoding into register images."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.points: tuple[Point, ...] = tuple(points)
        self.names: tuple[str, ...] = tuple(p.name for p in self.points)
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        #: Size of each kind's image: words for holding/input, bits for coil/discrete.
        self.size: dict[str, int] = dict.fromkeys(KINDS, 0)
        for p in self.points:
            self.size[p.register] = max(self.size[p.register], p.address + p.width)
        self._numeric = self._numeric_groups()
        self._bit_words = self._bit_word_groups()
        self._bits = {
            kind: (
                np.array(
                    [i for i, p in enumerate(self.points) if p.register == kind], dtype=np.intp
                ),
                np.array([p.address for p in self.points if p.register == kind], dtype=np.intp),
            )
            for kind in BIT_KINDS
        }

    # ------------------------------------------------------------------ construction

    def _numeric_groups(self) -> list[_NumericGroup]:
        keys: dict[tuple[str, str, str], list[int]] = {}
        for i, p in enumerate(self.points):
            if p.register in WORD_KINDS and p.type != "bool":
                keys.setdefault((p.register, p.type, p.order), []).append(i)
        groups = []
        for (kind, type_name, order), cols in keys.items():
            width = REGISTER_WIDTH[type_name]
            words = [self.points[i].address + w for i in cols for w in range(width)]
            low, high = _RAW_RANGE[type_name]
            groups.append(
                _NumericGroup(
                    kind=kind,
                    type=type_name,
                    order=order,
                    columns=np.array(cols, dtype=np.intp),
                    words=np.array(words, dtype=np.intp),
                    scale=np.array([self.points[i].scale for i in cols], dtype=np.float64),
                    offset=np.array([self.points[i].offset for i in cols], dtype=np.float64),
                    low=low,
                    high=high,
                )
            )
        return groups

    def _bit_word_groups(self) -> list[_BitWordGroup]:
        groups = []
        for kind in WORD_KINDS:
            cols = sorted(
                (
                    (p.address, i)
                    for i, p in enumerate(self.points)
                    if p.register == kind and p.type == "bool"
                ),
            )
            if not cols:
                continue
            addresses = np.array([a for a, _ in cols], dtype=np.intp)
            columns = np.array([i for _, i in cols], dtype=np.intp)
            shifts = np.array([self.points[i].bit or 0 for i in columns], dtype=np.uint16)
            words, starts = np.unique(addresses, return_index=True)
            clear = np.bitwise_or.reduceat(np.left_shift(np.uint16(1), shifts), starts)
            groups.append(
                _BitWordGroup(
                    kind=kind,
                    columns=columns,
                    shifts=shifts,
                    starts=starts.astype(np.intp),
                    words=words.astype(np.intp),
                    clear=clear.astype(np.uint16),
                )
            )
        return groups

    # ------------------------------------------------------------------ encoding

    def encode(self, values: F64) -> dict[str, U16 | Bools]:
        """Encode a ``(devices, points)`` value matrix into one image per register kind.

        Holding/input images are ``(devices, words)`` uint16 arrays indexed by address; coil and
        discrete images are ``(devices, bits)`` bool arrays indexed by address.
        """
        n = values.shape[0]
        image: dict[str, U16 | Bools] = {}
        for kind in WORD_KINDS:
            image[kind] = np.zeros((n, self.size[kind]), dtype=np.uint16)
        for group in self._numeric:
            raw = (values[:, group.columns] - group.offset) / group.scale
            raw = np.clip(raw, group.low, group.high)
            words = encode_values(raw.reshape(-1), group.type, group.order)
            image[group.kind][:, group.words] = words.reshape(n, -1)
        for bits in self._bit_words:
            set_bits = (values[:, bits.columns] != 0).astype(np.uint16) << bits.shifts
            merged = np.bitwise_or.reduceat(set_bits, bits.starts, axis=1)
            target = image[bits.kind]
            target[:, bits.words] = (target[:, bits.words] & ~bits.clear) | merged
        for kind in BIT_KINDS:
            columns, addresses = self._bits[kind]
            flags = np.zeros((n, self.size[kind]), dtype=np.bool_)
            flags[:, addresses] = values[:, columns] != 0
            image[kind] = flags
        return image

    @staticmethod
    def pack_bits(bits: Bools) -> U16:
        """Pack ``(devices, bits)`` flags into 16-bit words, bit 0 first (pymodbus' bit blocks)."""
        n, count = bits.shape
        padded = np.zeros((n, max(16, -(-count // 16) * 16)), dtype=np.bool_)
        padded[:, :count] = bits
        packed = np.packbits(padded, axis=1, bitorder="little")
        return packed.view("<u2").astype(np.uint16)

    # ------------------------------------------------------------------ decoding

    def decode(self, image: Mapping[str, Sequence[int] | Sequence[bool]]) -> dict[str, float]:
        """Decode one device's raw image into engineering values, as the gateway reads them."""
        out: dict[str, float] = {}
        for p in self.points:
            regs = image[p.register]
            if p.register in BIT_KINDS:
                out[p.name] = float(bool(regs[p.address]))
                continue
            if p.type == "bool":
                out[p.name] = float((int(regs[p.address]) >> (p.bit or 0)) & 1)
                continue
            words = np.array(regs[p.address : p.address + p.width], dtype=np.uint16)
            raw = decode_words(words.reshape(1, -1), p.type, p.order)[0]
            out[p.name] = float(raw) * p.scale + p.offset
        return out
