"""DevicePoller with a fake link, on an event loop whose clock jumps to the next timer: the
schedule, the back-off and the transitions are checked to the (virtual) second, without waiting.

The fake link stands in for ModbusLink's contract (DeviceOffline after ``timeout``,
DeviceException for an exception response, ReadsStopped once stopping); the real link is tested
over real sockets and ptys in the driver tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from fieldmodel.model import Device, Point
from gateway.config import parse_site
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceException, DeviceOffline, ReadsStopped
from gateway.points import PointTable
from gateway.poller import DevicePoller, PollResult

T = TypeVar("T")

INTERVAL = 1.0
TIMEOUT = 0.5
BACKOFF_MAX = 5.0


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` jumps to the next timer whenever nothing is ready."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def _run_once(self) -> None:
        ready = self._ready  # type: ignore[attr-defined]
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            self.now = max(self.now, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def run(main: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def gas_device() -> Device:
    site = parse_site(
        {
            "site": {"id": "t"},
            "devices": [
                {
                    "id": "gas1",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
                    "poll_interval": INTERVAL,
                    "timeout": TIMEOUT,
                }
            ],
        }
    )
    points = (Point("a", "holding", 0, "uint16"), Point("b", "holding", 1, "uint16"))
    return dataclasses.replace(site.devices[0], points=points)


Step = Callable[[str, ReadRequest], Awaitable[Sequence[int]]]


async def answer(device: str, req: ReadRequest) -> Sequence[int]:
    return list(range(10, 10 + req.count))


async def offline(device: str, req: ReadRequest) -> Sequence[int]:
    raise DeviceOffline(device, f"connection refused ({req})", address=req.address)


async def no_answer(device: str, req: ReadRequest) -> Sequence[int]:
    await asyncio.sleep(TIMEOUT)  # as ModbusLink: the whole timeout, then offline
    raise DeviceOffline(device, f"no answer within {TIMEOUT:g} s ({req})", address=req.address)


async def busy(device: str, req: ReadRequest) -> Sequence[int]:
    raise DeviceException(device, f"exception 6 (device busy) for {req}", code=6)


async def stopped(device: str, req: ReadRequest) -> Sequence[int]:
    raise ReadsStopped(device)


class ScriptedLink:
    """Each read takes the next step of the script (then answers); records when it was asked."""

    def __init__(self, *script: Step) -> None:
        self.script = list(script)
        self.asked: list[float] = []
        self.was_asked = asyncio.Event()

    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]:
        assert timeout == TIMEOUT and req.count == 2  # one request reads the whole device
        self.asked.append(asyncio.get_running_loop().time())
        self.was_asked.set()
        step = self.script.pop(0) if self.script else answer
        return await step(device, req)


class Harness:
    def __init__(self, link: ScriptedLink, *, start_delay: float = 0.0) -> None:
        device = gas_device()
        self.results: list[PollResult] = []
        self.reported = asyncio.Event()
        self.link = link
        self.poller = DevicePoller(
            PointTable([device]).devices[0],
            link,
            self.on_result,
            backoff_max=BACKOFF_MAX,
            start_delay=start_delay,
        )

    def on_result(self, result: PollResult) -> None:
        self.results.append(result)
        self.reported.set()

    async def until(self, polls: int) -> list[float]:
        """Run until ``polls`` results were handed on; the link's ask times from the start."""
        t0 = asyncio.get_running_loop().time()
        task = asyncio.create_task(self.poller.run())
        await self.results_or_end(task, polls)
        self.poller.stop()
        await task
        return [round(t - t0, 6) for t in self.link.asked]

    async def results_or_end(self, task: asyncio.Task[None], polls: int) -> None:
        while len(self.results) < polls:
            self.reported.clear()
            waiter = asyncio.ensure_future(self.reported.wait())
            await asyncio.wait((waiter, task), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done():
                task.result()  # the poller's own error, if any
                return


async def asked_once(link: ScriptedLink, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(link.was_asked.wait())
    await asyncio.wait((waiter, task), return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    assert link.asked, "the poller ended before reading"


def test_polls_keep_their_interval_from_the_start_delay() -> None:
    h = Harness(ScriptedLink(), start_delay=0.25)
    asked = run(h.until(4))
    assert asked[:4] == [0.25, 1.25, 2.25, 3.25]
    for r in h.results:
        assert r.error is None and r.requests == 1 and r.lag_s == pytest.approx(0, abs=0.011)
        assert r.values is not None and r.good is not None
        assert r.values.tolist() == [10.0, 11.0] and r.good.all()


def test_a_slow_read_skips_the_missed_cycles_and_keeps_the_phase() -> None:
    async def slow(device: str, req: ReadRequest) -> Sequence[int]:
        await asyncio.sleep(2.5 * INTERVAL)
        return await answer(device, req)

    h = Harness(ScriptedLink(answer, slow))
    asked = run(h.until(4))
    assert asked[:4] == [0.0, 1.0, 4.0, 5.0]  # the cycles at 2 and 3 are skipped, not bunched
    assert h.results[1].latency_s == pytest.approx(2.5)


def test_offline_at_once_backs_off_then_online_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.poller")
    h = Harness(ScriptedLink(answer, offline, offline, offline, offline, offline, answer))
    asked = run(h.until(8))
    errors = [r.error for r in h.results]
    assert errors[0] is None
    assert all(isinstance(e, DeviceOffline) for e in errors[1:6])
    assert errors[6] is None and errors[7] is None
    for r in h.results[1:6]:  # each failure is reported, its points all bad
        assert r.values is None and r.good is None and r.requests == 0
    # waits after the 1st..5th failure: interval * 2^(n-1), capped, jittered down to half
    waits = [b - a for a, b in itertools.pairwise(asked[1:7])]
    nominal = [1.0, 2.0, 4.0, 5.0, 5.0]
    for wait, full in zip(waits, nominal, strict=True):
        assert 0.5 * full <= wait <= full
    assert asked[7] - asked[6] == pytest.approx(INTERVAL)  # back on the interval once online
    assert h.poller.failures == 0
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [m for lvl, m in logged if lvl == "ERROR"] == [
        "gas1: read failed: gas1 at address 0: connection refused (FC03 holding 0+2)"
    ]
    assert sum(lvl == "DEBUG" and "still failing" in m for lvl, m in logged) == 4
    assert ("INFO", "gas1: back online after 5 failed polls") in logged


def test_a_timeout_is_an_offline_poll_that_took_the_timeout() -> None:
    h = Harness(ScriptedLink(no_answer))
    run(h.until(2))
    first, second = h.results
    assert isinstance(first.error, DeviceOffline) and "no answer within 0.5 s" in str(first.error)
    assert first.latency_s == pytest.approx(TIMEOUT)
    assert second.error is None


def test_an_exception_response_is_a_failed_poll_not_a_crash() -> None:
    h = Harness(ScriptedLink(busy, answer))
    run(h.until(2))
    first, second = h.results
    assert isinstance(first.error, DeviceException) and first.error.code == 6
    assert second.error is None and h.poller.failures == 0


def test_reads_stopped_ends_the_poller_without_a_result() -> None:
    h = Harness(ScriptedLink(answer, stopped))

    async def main() -> None:
        await asyncio.wait_for(h.poller.run(), timeout=10)

    run(main())
    assert len(h.results) == 1 and len(h.link.asked) == 2


def test_stop_between_polls_returns_at_once() -> None:
    h = Harness(ScriptedLink())

    async def main() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(h.poller.run())
        await h.results_or_end(task, 1)
        stopped_at = loop.time()
        h.poller.stop()
        await task
        return loop.time() - stopped_at

    took = run(main())
    assert took < 0.01 and len(h.link.asked) == 1  # did not wait out the interval


def test_stop_during_a_read_hands_that_poll_on_then_returns() -> None:
    h = Harness(ScriptedLink(no_answer))

    async def main() -> None:
        task = asyncio.create_task(h.poller.run())
        await asked_once(h.link, task)
        h.poller.stop()
        await task

    run(main())
    assert len(h.results) == 1 and isinstance(h.results[0].error, DeviceOffline)
    assert len(h.link.asked) == 1


@pytest.mark.parametrize("during", ["read", "wait"])
def test_cancel_stops_the_poller(during: str) -> None:
    hang = asyncio.Event()

    async def forever(device: str, req: ReadRequest) -> Sequence[int]:
        await hang.wait()
        return []

    h = Harness(ScriptedLink(forever) if during == "read" else ScriptedLink())

    async def main() -> None:
        task = asyncio.create_task(h.poller.run())
        await asked_once(h.link, task)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert len(h.link.asked) == 1
    assert len(h.results) == (0 if during == "read" else 1)


def test_a_read_that_swallows_the_cancel_still_stops_the_poller() -> None:
    async def swallows(device: str, req: ReadRequest) -> Sequence[int]:
        # as pymodbus's wait_for can on Python 3.11: the answer wins, the cancel is lost
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(TIMEOUT)
        return await answer(device, req)

    h = Harness(ScriptedLink(swallows))

    async def main() -> None:
        task = asyncio.create_task(h.poller.run())
        await asked_once(h.link, task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert h.results == [] and len(h.link.asked) == 1  # no result, no further poll
