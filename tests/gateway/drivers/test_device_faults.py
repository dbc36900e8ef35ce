"""Device faults against the real gateway, over real sockets and a real Mosquitto.

One gas detector per fault — refused connection (Drop), no answer (Silence), Modbus exception
response, garbage bytes, a reply later than the timeout (Delay) — and one healthy detector, all
served by the simulators. After the faults are injected, each faulty device: goes offline on its
status topic with an error message, has its points marked bad, raises the coal-mine pack's
communication-failure alarm (``gas_comm``), and is retried with capped, jittered, growing
backoff. The healthy device keeps publishing on its interval throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import SiteConfig, parse_site
from gateway.points import GOOD
from gateway.poller import PollResult
from simulators import Delay, Drop, ExceptionReply, Fault, Garbage, Silence, SiteSimulator
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Listener, Message, listening
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

INTERVAL = 0.5
TIMEOUT = 0.5
BACKOFF_MAX = 4.0
P = "ft/fsite"
HEALTHY = "gas-ok"
FAULTS: dict[str, Fault] = {
    "gas-drop": Drop(),
    "gas-silence": Silence(),
    "gas-exception": ExceptionReply(4),
    "gas-garbage": Garbage(),
    "gas-slow": Delay(3 * TIMEOUT * 1000),
}
#: how long the faults last: enough for five backoff steps (0.5, 1, 2, 4, 4 s at most)
FAULT_SECONDS = 14.0


def fault_site(broker: Mosquitto) -> SiteConfig:
    ids = [HEALTHY, *FAULTS]
    return parse_site(
        {
            "site": {"id": "fsite"},
            "mqtt": {"url": broker.url, "topic_prefix": "ft"},
            "rules": ["rules/packs/coal_mine.yaml"],
            "devices": [
                {
                    "id": dev,
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": free_port()},
                    "poll_interval": INTERVAL,
                    "timeout": TIMEOUT,
                    "tags": {"position": "main_return"},
                }
                for dev in ids
            ],
        }
    )


@dataclass
class Attempt:
    start: float  # wall clock
    end: float
    error: str | None


@dataclass
class Observed:
    messages: list[tuple[float, str, Any]] = field(default_factory=list)
    attempts: dict[str, list[Attempt]] = field(default_factory=lambda: defaultdict(list))
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def last(self, topic: str) -> Any:
        for _, t, doc in reversed(self.messages):
            if t == topic:
                return doc
        return None

    async def until(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not within {timeout} s: {what}")
            self.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), min(remaining, 0.2))


def subscribed(broker: Mosquitto, seen: Observed) -> AbstractAsyncContextManager[Listener]:
    def note(message: Message) -> None:
        seen.messages.append((message.wall, message.topic, message.doc))
        seen.event.set()

    return listening(broker.port, f"{P}/#", on_message=note)


def record_attempts(gw: Gateway, seen: Observed) -> None:
    for poller in gw.pollers:
        forward = poller.on_result

        def on_result(res: PollResult, forward: Callable[[PollResult], None] = forward) -> None:
            err = None if res.error is None else str(res.error)
            seen.attempts[res.rows.device.id].append(Attempt(res.ts - res.latency_s, res.ts, err))
            seen.event.set()
            forward(res)

        poller.on_result = on_result


def online(seen: Observed, dev: str) -> bool | None:
    doc = seen.last(f"{P}/{dev}/status")
    return None if doc is None else bool(doc["online"])


def comm_alarm(seen: Observed, dev: str) -> Any:
    return seen.last(f"{P}/alarms/{dev}/_device/gas_comm")


async def test_each_fault_backs_off_goes_bad_offline_and_alarms(mosquitto: Mosquitto) -> None:
    site = fault_site(mosquitto)
    seen = Observed()
    async with SiteSimulator(site, "static") as sim, subscribed(mosquitto, seen):
        gw = Gateway(site, backoff_max=BACKOFF_MAX)
        record_attempts(gw, seen)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            every = [HEALTHY, *FAULTS]
            await seen.until(lambda: all(online(seen, d) for d in every), 20, "all online")
            t_fault = time.time()
            for dev, fault in FAULTS.items():
                sim.inject(dev, fault)
            await seen.until(
                lambda: all(online(seen, d) is False for d in FAULTS), 15, "faulty devices offline"
            )
            await seen.until(
                lambda: all(comm_alarm(seen, d) for d in FAULTS), 15, "comm alarms raised"
            )
            await asyncio.sleep(max(0.0, t_fault + FAULT_SECONDS - time.time()))
            t_end = time.time()
            quality = gw.table.quality.copy()
            rows = {r.device.id: r.rows for r in gw.table.devices}
            assert not task.done()
        finally:
            stop.set()
            async with asyncio.timeout(20):
                await task

    for dev in FAULTS:
        status = seen.last(f"{P}/{dev}/status")
        assert status["online"] is False, dev
        assert isinstance(status["error"], str) and dev in status["error"], status
        assert not (quality[rows[dev]] == GOOD).any(), f"{dev}: points still good"
        alarm = comm_alarm(seen, dev)
        assert alarm["state"] == "UNACK_ACTIVE", (dev, alarm)
        # no telemetry from a device once it is offline
        offline_at = next(
            ts
            for ts, t, d in seen.messages
            if t == f"{P}/{dev}/status" and d and d["online"] is False
        )
        late = [ts for ts, t, _ in seen.messages if t == f"{P}/{dev}/telemetry" and ts > offline_at]
        assert late == [], f"{dev}: telemetry while offline"
        assert_backoff(dev, [a for a in seen.attempts[dev] if a.start >= t_fault - 0.05])

    # the healthy device kept its interval while five others failed
    ok = [ts for ts, t, _ in seen.messages if t == f"{P}/{HEALTHY}/telemetry" and t_fault <= ts]
    ok = [ts for ts in ok if ts <= t_end]
    expected = (t_end - t_fault) / INTERVAL
    assert len(ok) >= 0.7 * expected, (len(ok), expected)
    gaps = [b - a for a, b in itertools.pairwise(ok)]
    assert max(gaps) < 4 * INTERVAL, max(gaps)
    assert online(seen, HEALTHY) is True
    assert comm_alarm(seen, HEALTHY) is None


def assert_backoff(dev: str, attempts: list[Attempt]) -> None:
    """Failed attempts are spaced by min(backoff_max, interval * 2**(k-1)) x jitter in
    [0.5, 1]: the spacing grows, never comes early, and is not a fixed multiple."""
    failed = [a for a in attempts if a.error is not None]
    assert len(failed) >= 4, f"{dev}: {len(failed)} failed attempts"
    # the first failure may follow a good poll on its normal interval; count from it
    waits = [b.start - a.end for a, b in itertools.pairwise(failed)]
    ratios = []
    for k, wait in enumerate(waits, start=1):
        nominal = min(BACKOFF_MAX, INTERVAL * 2 ** (k - 1))
        assert wait >= 0.5 * nominal - 0.05, f"{dev}: retry {k} after {wait:.3f} s < {nominal / 2}"
        assert wait <= nominal + 1.5, f"{dev}: retry {k} after {wait:.3f} s (nominal {nominal})"
        ratios.append(wait / nominal)
    assert waits[-1] > waits[0], f"{dev}: spacing did not grow: {waits}"
    assert max(ratios) - min(ratios) > 0.01, f"{dev}: no jitter: {ratios}"
