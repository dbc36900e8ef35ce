"""Decode a device's read responses into point values in one vectorised pass.

Each request's words (or bits) are copied into one buffer at a fixed offset; the points are
grouped by (type, order), and each group is a single fancy-index gather plus one
:func:`~fieldmodel.codec.decode_words` call. ``values = raw * scale + offset`` is one
numpy expression for the whole device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fieldmodel.codec import decode_words
from fieldmodel.model import Point
from fieldmodel.registers import BIT_KINDS, FLOAT_TYPES
from gateway.drivers.modbus.planner import ReadPlan

__all__ = ["DeviceDecoder"]


@dataclass(frozen=True, slots=True)
class _Group:
    type_name: str
    order: str
    rows: npt.NDArray[np.intp]
    index: npt.NDArray[np.intp]  # (k, width) positions in the word buffer


def _decimals(scale: float, offset: float) -> int:
    """Decimals a scaled integer carries: 0.01 -> 2, 0.5 -> 1, 1 -> 0 (offset's too)."""
    out = 0
    for x in (scale, offset):
        text = np.format_float_positional(abs(x), trim="-")
        if "." in text:
            out = max(out, len(text.split(".", 1)[1]))
    return min(out, 12)


def _round_significant(
    values: npt.NDArray[np.float64], digits: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(values)))
        mag = np.where(np.isfinite(mag), mag, 0.0)
        scale = 10.0 ** (digits - 1 - mag)
        out = np.round(values * scale) / scale
    return np.where(np.isfinite(out), out, values)


class DeviceDecoder:
    """Holds a device's response buffers and turns them into float64 point values."""

    def __init__(self, points: Sequence[Point], plan: ReadPlan) -> None:
        self.points = tuple(points)
        self.plan = plan
        n = len(points)
        self.scale = np.array([p.scale for p in points], dtype=np.float64)
        self.offset = np.array([p.offset for p in points], dtype=np.float64)
        word_off: list[int] = []
        bit_off: list[int] = []
        nwords = nbits = 0
        for req in plan.requests:
            if req.kind in BIT_KINDS:
                bit_off.append(nbits)
                word_off.append(-1)
                nbits += req.count
            else:
                word_off.append(nwords)
                bit_off.append(-1)
                nwords += req.count
        self.words = np.zeros(nwords, dtype=np.uint16)
        self.bits = np.zeros(nbits, dtype=np.uint8)
        self._word_off = word_off
        self._bit_off = bit_off
        self.point_request = np.full(n, -1, dtype=np.intp)
        self.request_ok = np.zeros(len(plan.requests), dtype=bool)

        groups: dict[tuple[str, str], tuple[list[int], list[list[int]]]] = {}
        bitreg_rows: list[int] = []
        bitreg_pos: list[int] = []
        bitreg_bit: list[int] = []
        bit_rows: list[int] = []
        bit_pos: list[int] = []
        for r, req in enumerate(plan.requests):
            for i in req.points:
                p = points[i]
                self.point_request[i] = r
                rel = p.address - req.address
                if req.kind in BIT_KINDS:
                    bit_rows.append(i)
                    bit_pos.append(bit_off[r] + rel)
                elif p.type == "bool":
                    bitreg_rows.append(i)
                    bitreg_pos.append(word_off[r] + rel)
                    bitreg_bit.append(p.bit or 0)
                else:
                    key = (p.type, p.order)
                    rows, idx = groups.setdefault(key, ([], []))
                    rows.append(i)
                    idx.append(list(range(word_off[r] + rel, word_off[r] + rel + p.width)))
        self._groups = tuple(
            _Group(t, o, np.array(rows, dtype=np.intp), np.array(idx, dtype=np.intp))
            for (t, o), (rows, idx) in groups.items()
        )
        self._bitreg_rows = np.array(bitreg_rows, dtype=np.intp)
        self._bitreg_pos = np.array(bitreg_pos, dtype=np.intp)
        self._bitreg_bit = np.array(bitreg_bit, dtype=np.uint16)
        self._bit_rows = np.array(bit_rows, dtype=np.intp)
        self._bit_pos = np.array(bit_pos, dtype=np.intp)
        self._float_rows = np.array(
            [i for i, p in enumerate(points) if p.type in FLOAT_TYPES], dtype=np.intp
        )
        self.raw = np.zeros(n, dtype=np.float64)
        # Published precision: fixed decimals for scaled integers (the scale's own decimals),
        # 7 significant digits for float32 and 15 for float64, so 0.1 * 209 reads 20.9.
        fixed = [i for i, p in enumerate(points) if p.type not in FLOAT_TYPES and p.type != "bool"]
        self._fixed_rows = np.array(fixed, dtype=np.intp)
        self._fixed_pow = np.array(
            [10.0 ** _decimals(points[i].scale, points[i].offset) for i in fixed], dtype=np.float64
        )
        self._float_digits = np.array(
            [7 if points[i].type == "float32" else 15 for i in self._float_rows], dtype=np.float64
        )

    def begin(self) -> None:
        """Start a poll: no request has answered yet."""
        self.request_ok[:] = False

    def fill(self, request_index: int, data: Sequence[int] | Sequence[bool]) -> None:
        """Store one request's response (registers, or bits for coils/discrete inputs)."""
        req = self.plan.requests[request_index]
        if req.kind in BIT_KINDS:
            off = self._bit_off[request_index]
            self.bits[off : off + req.count] = np.asarray(data[: req.count], dtype=np.uint8)
        else:
            off = self._word_off[request_index]
            if len(data) < req.count:
                raise ValueError(f"{req}: got {len(data)} registers, expected {req.count}")
            self.words[off : off + req.count] = np.asarray(data[: req.count], dtype=np.uint16)
        self.request_ok[request_index] = True

    def decode(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Return ``(values, good)`` for every point of the device."""
        raw = self.raw
        for g in self._groups:
            raw[g.rows] = decode_words(self.words[g.index], g.type_name, g.order)
        if len(self._bitreg_rows):
            raw[self._bitreg_rows] = (self.words[self._bitreg_pos] >> self._bitreg_bit) & 1
        if len(self._bit_rows):
            raw[self._bit_rows] = self.bits[self._bit_pos]
        values = raw * self.scale + self.offset
        if len(self._fixed_rows):
            fr = self._fixed_rows
            values[fr] = np.round(values[fr] * self._fixed_pow) / self._fixed_pow
        if len(self._float_rows):
            values[self._float_rows] = _round_significant(
                values[self._float_rows], self._float_digits
            )
        good = np.zeros(len(raw), dtype=bool)
        answered = self.point_request >= 0
        good[answered] = self.request_ok[self.point_request[answered]]
        if len(self._float_rows):
            good[self._float_rows] &= np.isfinite(values[self._float_rows])
        values[~good] = np.nan
        return values, good
