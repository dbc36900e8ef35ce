"""Block encoding and decoding of Modbus register values with numpy.

A value of ``n`` 16-bit registers is carried in one of four orders, as field devices and Telegraf
name them: ``ABCD`` big-endian; ``DCBA`` little-endian; ``BADC`` bytes swapped inside each word;
``CDAB`` words swapped. For 64-bit values the same names mean ABCDEFGH, HGFEDCBA, BADCFEHG and
GHEFCDAB (word order reversed). 16-bit values ignore word order; ``BADC``/``DCBA`` on a 16-bit type
swap its two bytes.

Every order is built from two self-inverse, commuting steps on the word matrix: reverse the word
order (``CDAB``, ``DCBA``) and swap the bytes of each word (``BADC``, ``DCBA``). So the same steps
turn wire words into big-endian canonical words (decode) and back (encode).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from fieldmodel.registers import DTYPES, FLOAT_TYPES

__all__ = [
    "decode_words",
    "encode_values",
    "to_canonical",
]

U16 = npt.NDArray[np.uint16]
F64 = npt.NDArray[np.float64]

_REVERSE_WORDS: Final = frozenset({"CDAB", "DCBA"})
_SWAP_BYTES: Final = frozenset({"BADC", "DCBA"})


def to_canonical(words: U16, order: str) -> U16:
    """Reorder a ``(n, width)`` matrix of wire words into big-endian word order (or back)."""
    out = words
    if order in _REVERSE_WORDS and words.shape[-1] > 1:
        out = out[..., ::-1]
    if order in _SWAP_BYTES:
        out = out.byteswap()
    return np.ascontiguousarray(out, dtype=np.uint16)


def decode_words(words: U16, type_name: str, order: str) -> npt.NDArray[np.generic]:
    """Decode a ``(n, width)`` matrix of wire words into ``n`` values of ``type_name``."""
    dtype = np.dtype(DTYPES[type_name])
    width = dtype.itemsize // 2
    if words.ndim != 2 or words.shape[1] != width:
        raise ValueError(f"{type_name} needs {width} words per value, got shape {words.shape}")
    canonical = to_canonical(words, order)
    raw = canonical.astype(">u2").view(np.uint8).reshape(len(words), 2 * width)
    return raw.view(dtype).reshape(len(words))


def encode_values(values: npt.ArrayLike, type_name: str, order: str) -> U16:
    """Encode raw (unscaled) values of ``type_name`` into a ``(n, width)`` matrix of wire words.

    Integer types wrap and floats round as the device's own conversion would; callers clip to
    the type's range first when they need saturation.
    """
    dtype = np.dtype(DTYPES[type_name])
    width = dtype.itemsize // 2
    arr = np.asarray(values)
    if type_name in FLOAT_TYPES:
        typed = arr.astype(dtype)
    else:
        typed = (
            np.asarray(np.round(arr) if arr.dtype.kind == "f" else arr)
            .astype(dtype.newbyteorder("="), casting="unsafe")
            .astype(dtype)
        )
    canonical = typed.reshape(-1).view(np.uint8).reshape(-1, 2 * width).view(">u2")
    return to_canonical(canonical.astype(np.uint16), order)
