"""Adaptive read plans: learn which address ranges a device refuses, and read around them.

Coalescing reads a few unused registers between points to save round trips, and many field
devices answer such a read with exception 2 (illegal data address) because one register in the
range is not implemented. Instead of failing the device, :class:`AdaptiveReader` bisects the
refused request down to single points:

* a half that answers is fine, and the hole between two answering halves is a refused span;
* a single point that is still refused is probed register by register; the refused registers
  (or, if none is refused alone, the point's whole range) are refused spans, and the points
  they touch read ``bad``.

The learned spans go back into :func:`~gateway.drivers.modbus.planner.plan_reads` as
``refused``: the new plan never reads across them, lists the refused points as ``unread``, and the
device stays online. The learned plan is logged once at INFO. Every ``refusal_recheck`` seconds
(a device key, default 10 min) what was learned is forgotten and asked for again, so a device
reconfigured to answer gets its points back without a restart of the gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fieldmodel.model import Device, Point
from gateway.drivers.modbus.decoder import DeviceDecoder
from gateway.drivers.modbus.planner import ReadPlan, ReadRequest, plan_reads
from gateway.errors import DeviceException

__all__ = ["ILLEGAL_DATA_ADDRESS", "AdaptiveReader", "RegisterReader", "merge_spans"]

log = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 2
Spans = dict[str, list[tuple[int, int]]]


class RegisterReader(Protocol):
    """What the reader needs from a link (``ModbusLink`` is one)."""

    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]: ...


def merge_spans(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort half-open spans and merge those that touch or overlap."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _request_for(kind: str, points: Sequence[Point], indices: Sequence[int]) -> ReadRequest:
    start = min(points[i].address for i in indices)
    end = max(points[i].address + points[i].width for i in indices)
    return ReadRequest(kind, start, end - start, tuple(indices))


class AdaptiveReader:
    """Reads one device with a plan that adapts to the ranges the device refuses."""

    def __init__(self, device: Device, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.refused: Spans = {}
        self.plan: ReadPlan = plan_reads(device.points, max_gap=device.max_gap)
        self.decoder = DeviceDecoder(device.points, self.plan)
        self.clock = clock
        self._learned_at = 0.0

    def _recheck_refused(self) -> None:
        """Every ``device.refusal_recheck`` seconds forget what the device refused, so the next
        read asks for it again: a device that was reconfigured gets its points back without a
        restart; one that still refuses is learned again (a few requests every recheck)."""
        if not self.refused or self.clock() - self._learned_at < self.device.refusal_recheck:
            return
        log.info(
            "%s: asking again for what it refused (%s), after %g s",
            self.device.id,
            self.describe_refused(),
            self.device.refusal_recheck,
        )
        self.refused = {}
        self.plan = plan_reads(self.device.points, max_gap=self.device.max_gap)
        self.decoder = DeviceDecoder(self.device.points, self.plan)

    # ------------------------------------------------------------------ reading

    async def read(
        self, link: RegisterReader
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], int]:
        """Read every planned request; on exception 2, learn, replan and read again.

        Returns ``(values, good, requests sent)``; raises DeviceError when the device cannot be
        read (offline, another exception, or every point refused).
        """
        self._recheck_refused()
        sent = 0
        while True:
            if not self.plan.requests:
                raise DeviceException(
                    self.device.id,
                    "the device refuses every configured point (illegal data address)",
                    code=ILLEGAL_DATA_ADDRESS,
                )
            self.decoder.begin()
            refusal: tuple[ReadRequest, DeviceException] | None = None
            for i, req in enumerate(self.plan.requests):
                sent += 1
                try:
                    data = await link.read(
                        self.device.id, self.device.unit, req, self.device.timeout
                    )
                except DeviceException as exc:
                    if exc.code != ILLEGAL_DATA_ADDRESS:
                        raise
                    refusal = (req, exc)
                    break
                self.decoder.fill(i, data)
            if refusal is None:
                values, good = self.decoder.decode()
                return values, good, sent
            refused_req, refused_exc = refusal
            new_spans, probes = await self._bisect(link, refused_req)
            sent += probes
            if not new_spans:
                # every part answers alone, only the whole is refused: nothing to learn
                raise refused_exc
            self._learn(refused_req.kind, new_spans)

    async def discover(self, link: RegisterReader) -> ReadPlan:
        """Read the device once, learning what it refuses; return the resulting plan."""
        await self.read(link)
        return self.plan

    # ------------------------------------------------------------------ learning

    async def _bisect(
        self, link: RegisterReader, req: ReadRequest
    ) -> tuple[list[tuple[int, int]], int]:
        """Find the spans of ``req`` the device refuses. Returns ``(spans, requests sent)``."""
        points = self.device.points
        if len(req.points) == 1:
            return await self._narrow(link, req)
        order = sorted(req.points, key=lambda i: (points[i].address, i))
        # split at an address boundary so that no point straddles both halves
        mid = len(order) // 2
        while 0 < mid < len(order) and points[order[mid]].address < max(
            points[i].address + points[i].width for i in order[:mid]
        ):
            mid += 1
        if mid >= len(order):  # the points overlap each other: no address splits them
            return await self._narrow(link, req)
        halves = [
            _request_for(req.kind, points, order[:mid]),
            _request_for(req.kind, points, order[mid:]),
        ]
        spans: list[tuple[int, int]] = []
        sent = 0
        answered: list[ReadRequest] = []
        for half in halves:
            sent += 1
            try:
                await link.read(self.device.id, self.device.unit, half, self.device.timeout)
            except DeviceException as exc:
                if exc.code != ILLEGAL_DATA_ADDRESS:
                    raise
                sub, n = await self._bisect(link, half)
                spans.extend(sub)
                sent += n
            else:
                answered.append(half)
        if len(answered) == 2 and halves[0].end < halves[1].address:
            spans.append((halves[0].end, halves[1].address))  # the hole between them
        return spans, sent

    async def _narrow(
        self, link: RegisterReader, req: ReadRequest
    ) -> tuple[list[tuple[int, int]], int]:
        """A refused range no point boundary splits: find the refused registers one by one.

        When no single register is refused (the device wants the range whole), the whole range
        is refused. Returns ``(spans, requests sent)``.
        """
        if req.count == 1:
            return [(req.address, req.end)], 0
        spans: list[tuple[int, int]] = []
        for address in range(req.address, req.end):
            one = ReadRequest(req.kind, address, 1, ())
            try:
                await link.read(self.device.id, self.device.unit, one, self.device.timeout)
            except DeviceException as exc:
                if exc.code != ILLEGAL_DATA_ADDRESS:
                    raise
                spans.append((address, address + 1))
        return (spans or [(req.address, req.end)]), req.count

    def _learn(self, kind: str, spans: Sequence[tuple[int, int]]) -> None:
        self.refused[kind] = merge_spans([*self.refused.get(kind, []), *spans])
        self.plan = plan_reads(
            self.device.points, max_gap=self.device.max_gap, refused=self.refused
        )
        self.decoder = DeviceDecoder(self.device.points, self.plan)
        self._learned_at = self.clock()
        log.info(
            "%s: device refuses %s; learned read plan: %s",
            self.device.id,
            self.describe_refused(),
            "; ".join(self.plan.describe(self.device.points)) or "(nothing left to read)",
        )

    def describe_refused(self) -> str:
        """The refused spans as ``holding 8-9, 20`` (inclusive addresses)."""
        parts = []
        for kind, spans in self.refused.items():
            text = ", ".join(f"{s}" if e - s == 1 else f"{s}-{e - 1}" for s, e in spans)
            parts.append(f"{kind} {text}")
        return "; ".join(parts) or "nothing"
