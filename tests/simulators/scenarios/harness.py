"""Run a site through a simulator scenario and the rules engine on simulated time, no sockets.

The simulator steps on a fake clock; each device is polled on the gateway's own schedule (its
``poll_interval``, first polls staggered over one interval as :class:`gateway.app.Gateway` does)
by the gateway's own reader (:class:`~gateway.drivers.modbus.adaptive.AdaptiveReader`: read plan,
coalesced requests, vectorised decoder) over an in-memory link that answers from the simulator's
registers. Results go into a :class:`~gateway.points.PointTable`, and after every poll instant
the gateway's :class:`~gateway.alarm_service.AlarmService` ticks the engine and produces the
very MQTT messages the gateway would publish. The scenario's operator commands (maintenance, …)
go through the service's command entry at their time, before that instant's tick. Nothing
sleeps: an hour of site time takes seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.alarm_service import AlarmService, build_engine
from gateway.config import SiteConfig
from gateway.drivers.modbus.adaptive import ILLEGAL_DATA_ADDRESS, AdaptiveReader
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceError, DeviceException, DeviceOffline
from gateway.messages import OutboundMessage
from gateway.points import PointTable
from gateway.rescue import RescueBook
from gateway.topics import Topics
from rules import AlarmTransition, DailyStats, State
from simulators import SiteSimulator
from tests.harness.simulators import FakeClock

__all__ = ["EPOCH", "Raised", "ScenarioRun", "SimulatorRegisters", "run_scenario"]

#: Wall-clock reading at scenario start (any fixed epoch; alarm timestamps are relative to it).
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class SimulatorRegisters:
    """A :class:`~gateway.drivers.modbus.adaptive.RegisterReader` answering from a simulator.

    Reads past a register kind's end answer exception 2, as the simulator's servers do; a
    device with an injected exception, drop or silence fault fails the way a client sees it.
    """

    def __init__(self, sim: SiteSimulator) -> None:
        self.sim = sim
        self._images: dict[str, dict[str, list[int] | list[bool]]] = {}
        self._at = float("nan")

    def _image(self, device: str) -> dict[str, list[int] | list[bool]]:
        if self.sim.time != self._at:  # the models moved: every image is new
            self._images.clear()
            self._at = self.sim.time
        image = self._images.get(device)
        if image is None:
            image = self._images[device] = self.sim.registers(device)
        return image

    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]:
        faults = self.sim.faults(device)
        if faults.drop or faults.silence:
            raise DeviceOffline(device, "no answer (simulated fault)")
        if faults.exception is not None:
            raise DeviceException(
                device, "exception reply (simulated fault)", code=faults.exception
            )
        image = self._image(device).get(req.kind, [])
        if req.end > len(image):
            raise DeviceException(
                device, "illegal data address", address=req.address, code=ILLEGAL_DATA_ADDRESS
            )
        return image[req.address : req.end]


@dataclass(frozen=True, slots=True)
class Raised:
    """One alarm raised to UNACK_ACTIVE at one level: when first, and how many times."""

    id: str
    level: str
    at_s: float
    activations: int


@dataclass(slots=True)
class ScenarioRun:
    """What a run produced: every transition, every published alarm message, and the end state."""

    scenario: str
    seed: int
    duration_s: float
    transitions: list[AlarmTransition] = field(default_factory=list)
    messages: list[OutboundMessage] = field(default_factory=list)
    active_at_end: set[str] = field(default_factory=set)
    ticks: int = 0
    polls: int = 0
    failed_polls: int = 0
    replies: list[dict[str, Any]] = field(default_factory=list)
    #: The daily report's data at the end of the run (the day so far).
    daily: DailyStats | None = None

    def events(self) -> list[dict[str, Any]]:
        """The ``P/events/alarm`` payloads, in publication order (flood events included)."""
        return [json.loads(m.payload) for m in self.messages if m.topic.endswith("/events/alarm")]

    def floods(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if "flood" in e]

    def raised(self) -> list[Raised]:
        """Alarms raised (transitions to UNACK_ACTIVE), one per (id, level), by first time."""
        first: dict[tuple[str, str], float] = {}
        count: dict[tuple[str, str], int] = {}
        for tr in self.transitions:
            if tr.to_state is not State.UNACK_ACTIVE:
                continue
            key = (tr.id, tr.level)
            first.setdefault(key, round(tr.ts - EPOCH, 2))
            count[key] = count.get(key, 0) + 1
        return [
            Raised(alarm_id, level, at, count[alarm_id, level])
            for (alarm_id, level), at in sorted(first.items(), key=lambda kv: (kv[1], kv[0]))
        ]


def run_scenario(
    site: SiteConfig,
    scenario: str,
    *,
    seed: int,
    duration_s: float,
    prefix: str = "hazard",
    operator: bool = True,
) -> ScenarioRun:
    """Play ``scenario`` on ``site`` for ``duration_s`` simulated seconds (``operator=False``:
    without the scenario's operator commands)."""
    return asyncio.run(_run(site, scenario, seed, duration_s, prefix, operator))


async def _run(  # noqa: PLR0917
    site: SiteConfig, scenario: str, seed: int, duration_s: float, prefix: str, operator: bool
) -> ScenarioRun:
    clock = FakeClock(EPOCH)
    sim = SiteSimulator(site, scenario=scenario, seed=seed, clock=clock)
    link = SimulatorRegisters(sim)
    table = PointTable(site.devices)
    out = ScenarioRun(scenario, seed, duration_s)
    service = AlarmService(
        build_engine(site, table),
        table,
        Topics(prefix, site.site.id),
        out.messages.append,
        clock=clock,
        on_transition=out.transitions.append,
        rescue=RescueBook.for_site(site, Topics(prefix, site.site.id).base),
    )
    daily = service.engine.enable_daily(site.site.zone)  # the daily report's accumulators
    readers = [AdaptiveReader(rows.device) for rows in table.devices]
    n = max(1, len(table.devices))
    # (time, device index, polls done): phase of the gateway's stagger, then every interval
    due = [
        (EPOCH + rows.device.poll_interval * rows.index / n, rows.index, 0)
        for rows in table.devices
    ]
    commands = list(sim.operator_commands) if operator else []
    topics = Topics(prefix, site.site.id)
    heapq.heapify(due)
    end = EPOCH + duration_s
    while due and due[0][0] <= end:
        now = due[0][0]
        clock.now = now
        sim.step(now)
        while due and due[0][0] == now:
            _, index, k = heapq.heappop(due)
            if not await _poll(readers[index], link, table, index, now):
                out.failed_polls += 1
            service.poll_arrived(index, now)
            out.polls += 1
            rows = table.devices[index]
            start = EPOCH + rows.device.poll_interval * index / n
            heapq.heappush(due, (start + (k + 1) * rows.device.poll_interval, index, k + 1))
        while commands and EPOCH + commands[0].at <= now:
            cmd = commands.pop(0)
            topic = f"{topics.base}/cmd/{cmd.command}"
            replies = service.handle_command(topic, json.dumps(dict(cmd.payload)).encode())
            out.messages.extend(replies)
            out.replies.extend(json.loads(r.payload) for r in replies)
        service.tick()  # its transitions, and those of commands, reach out.transitions
        out.ticks += 1
    active = (State.UNACK_ACTIVE, State.ACK_ACTIVE)
    out.active_at_end = {s.id for s in service.engine.active_alarms() if s.state in active}
    out.daily = daily.snapshot() if daily.day is not None else None
    return out


async def _poll(
    reader: AdaptiveReader, link: SimulatorRegisters, table: PointTable, index: int, now: float
) -> bool:
    """One poll, stored as :meth:`gateway.app.Gateway.on_poll` stores it; False if it failed."""
    try:
        values, good, _ = await reader.read(link)
    except DeviceError:
        table.mark_bad(index, now)
        table.device_online[index] = False
        return False
    table.update(index, values, good, now)
    table.device_online[index] = True
    return bool(good.all())
