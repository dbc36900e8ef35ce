"""An independent reference for Modbus register layouts, built on :mod:`struct` alone.

Tests hold the gateway's numpy codec and decoder against it, so a mistake in the codec cannot
hide behind the same mistake in the check.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from fieldmodel.model import Point

__all__ = ["STRUCT", "decode_point", "struct_words"]

STRUCT = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "int64": "q",
    "uint64": "Q",
    "float64": "d",
}


def struct_words(value: float | int, type_name: str, order: str) -> list[int]:
    """Wire words of one value: big-endian bytes, then the order's byte permutation."""
    raw = struct.pack(">" + STRUCT[type_name], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA") and len(words) > 1:
        words = words[::-1]
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def decode_point(point: Point, image: Mapping[str, Sequence[Any]]) -> float:
    """The engineering value of ``point`` in a device's register image (kind -> words/bits)."""
    if point.register in ("coil", "discrete"):
        return float(bool(image[point.register][point.address]))
    words = image[point.register]
    if point.type == "bool":
        return float((words[point.address] >> (point.bit or 0)) & 1)
    width = struct.calcsize(STRUCT[point.type]) // 2
    ws = list(words[point.address : point.address + width])
    if point.order in ("CDAB", "DCBA"):
        ws.reverse()
    swap = point.order in ("BADC", "DCBA")
    raw = b"".join(w.to_bytes(2, "little" if swap else "big") for w in ws)
    return float(struct.unpack(">" + STRUCT[point.type], raw)[0]) * point.scale + point.offset
