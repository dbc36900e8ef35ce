"""Per-device polling: each device keeps its own interval, on its own task.

A failed read marks the device's points bad and reports it offline at once; later attempts back
off with capped, jittered delays, so a dead device costs its link at most one timeout per attempt
and never delays another device. When the device answers again it is back online by itself.

Reads go through an :class:`~gateway.drivers.modbus.adaptive.AdaptiveReader`: a device that
refuses part of a coalesced range (exception 2) stays online, its refused points read ``bad``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.aio import raise_if_cancelling, wait_event
from gateway.backoff import Backoff
from gateway.drivers.modbus.adaptive import AdaptiveReader, RegisterReader
from gateway.errors import DeviceError, ReadsStopped
from gateway.points import DeviceRows

__all__ = ["DevicePoller", "PollResult"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PollResult:
    """One poll's outcome, handed to the gateway."""

    rows: DeviceRows
    ts: float  # wall-clock seconds when the last response arrived
    values: npt.NDArray[np.float64] | None
    good: npt.NDArray[np.bool_] | None
    error: DeviceError | None
    latency_s: float
    lag_s: float  # how late the poll started against its schedule
    requests: int


class DevicePoller:
    """Polls one device over its link on its own schedule."""

    def __init__(
        self,
        rows: DeviceRows,
        link: RegisterReader,
        on_result: Callable[[PollResult], None],
        *,
        backoff_max: float = 10.0,
        start_delay: float = 0.0,
    ) -> None:
        self.rows = rows
        self.device = rows.device
        self.link = link
        self.on_result = on_result
        self.backoff_max = max(backoff_max, self.device.poll_interval)
        self.backoff = Backoff(self.device.poll_interval, self.backoff_max)
        self.start_delay = start_delay
        self.reader = AdaptiveReader(self.device)
        self.failures = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Start no more polls: :meth:`run` returns once a poll in progress has been handed on
        (or at once, between polls). With :meth:`ModbusLink.stop_reads` no request is sent."""
        self._stop.set()

    async def poll_once(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], int]:
        """Read the device once: ``(values, good, requests sent)``; raises DeviceError."""
        return await self.reader.read(self.link)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.device.poll_interval
        next_at = loop.time() + self.start_delay
        while not self._stop.is_set():
            delay = next_at - loop.time()
            if delay > 0 and await wait_event(self._stop, delay):
                return
            started = loop.time()
            lag = max(0.0, started - next_at)
            error: DeviceError | None = None
            values = good = None
            requests = 0
            try:
                values, good, requests = await self.poll_once()
            except DeviceError as exc:
                error = exc
            except ReadsStopped:
                return  # stopping: nothing was read, nothing to report
            raise_if_cancelling()  # a library that swallowed a cancel must not keep us polling
            done = loop.time()
            self.on_result(
                PollResult(
                    rows=self.rows,
                    ts=time.time(),
                    values=values,
                    good=good,
                    error=error,
                    latency_s=done - started,
                    lag_s=lag,
                    requests=requests,
                )
            )
            if error is None:
                if self.failures:
                    log.info("%s: back online after %d failed polls", self.device.id, self.failures)
                self.failures = 0
                next_at += interval
                if next_at <= done:  # fell behind: skip the missed cycles, keep the phase
                    next_at += interval * (int((done - next_at) / interval) + 1)
            else:
                if self.failures == 0:
                    log.error("%s: read failed: %s", self.device.id, error)
                else:
                    log.debug("%s: still failing: %s", self.device.id, error)
                self.failures += 1
                next_at = done + self.backoff.delay(self.failures - 1)
