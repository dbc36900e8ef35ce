"""Read planning: coalesce a device's points into the fewest Modbus requests.

Points of one register kind are sorted by address and merged while the next point starts within
``max_gap`` registers of the current request's end and the request stays within the protocol's
limits (125 registers for FC03/FC04, 2000 bits for FC01/FC02). Reading a few unused registers is
much cheaper than another round trip on a serial line or a busy TCP link.

A device may refuse part of a coalesced range (illegal data address). ``refused`` carries the
spans it refused so far; the planner never reads across them and drops points inside them, so the
rest of the device keeps reading (see :mod:`gateway.drivers.modbus.adaptive`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fieldmodel.model import Point
from fieldmodel.registers import BIT_KINDS, WORD_KINDS

__all__ = [
    "FUNCTION_CODES",
    "MAX_BITS",
    "MAX_REGISTERS",
    "ReadPlan",
    "ReadRequest",
    "plan_reads",
]

MAX_REGISTERS = 125
MAX_BITS = 2000
FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
KIND_ORDER = WORD_KINDS + BIT_KINDS


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: register kind, start address, count, and the points it serves."""

    kind: str
    address: int
    count: int
    points: tuple[int, ...]  # indices into the device's point list

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def function_code(self) -> int:
        return FUNCTION_CODES[self.kind]

    def __str__(self) -> str:
        return f"FC{self.function_code:02d} {self.kind} {self.address}+{self.count}"


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """The requests that read a device, plus the points left out (inside refused spans)."""

    requests: tuple[ReadRequest, ...]
    unread: tuple[int, ...] = field(default=())

    def describe(self, points: Sequence[Point]) -> list[str]:
        lines = []
        for req in self.requests:
            names = ", ".join(points[i].name for i in req.points)
            lines.append(f"{req}: {names}")
        for i in self.unread:
            lines.append(f"unread (refused by the device): {points[i].name}")
        return lines


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < s_end and s_start < end for s_start, s_end in spans)


def plan_reads(
    points: Sequence[Point],
    *,
    max_gap: int = 8,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
    refused: dict[str, list[tuple[int, int]]] | None = None,
) -> ReadPlan:
    """Coalesce ``points`` into a :class:`ReadPlan`.

    ``refused`` maps a register kind to half-open address spans the device refused; requests
    never cross them, and points inside them are listed in ``unread``.
    """
    refused = refused or {}
    requests: list[ReadRequest] = []
    unread: list[int] = []
    for kind in KIND_ORDER:
        limit = max_bits if kind in BIT_KINDS else max_registers
        spans = refused.get(kind, [])
        items = sorted(
            (
                (p.address, p.address + p.width, i)
                for i, p in enumerate(points)
                if p.register == kind
            ),
        )
        cur_start = cur_end = -1
        cur_points: list[int] = []
        for start, end, idx in items:
            if _overlaps(start, end, spans):
                unread.append(idx)
                continue
            new_end = max(cur_end, end)
            if (
                cur_points
                and start <= cur_end + max_gap
                and new_end - cur_start <= limit
                and not _overlaps(cur_end, start, spans)
            ):
                cur_end = new_end
                cur_points.append(idx)
                continue
            if cur_points:
                requests.append(
                    ReadRequest(kind, cur_start, cur_end - cur_start, tuple(cur_points))
                )
            cur_start, cur_end, cur_points = start, end, [idx]
        if cur_points:
            requests.append(ReadRequest(kind, cur_start, cur_end - cur_start, tuple(cur_points)))
    return ReadPlan(tuple(requests), tuple(sorted(unread)))
