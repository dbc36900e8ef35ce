"""SiteSimulator: every device of a site config, served on its own endpoints.

::

    sim = SiteSimulator(site, scenario="gas-leak", seed=1)
    async with sim:                 # one pymodbus server per endpoint, units share lines
        await sim.wait_closed()     # until cancelled

Devices of one point list form a fleet whose model steps in fixed increments of simulated time
(``clock() - start``). Servers refresh lazily: a read advances the models to the current time
(at most one re-encode per model step) and copies the device's image into the server's block.
Tests drive time instead: give a fake ``clock`` and call :meth:`SiteSimulator.step`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Final

from pymodbus.constants import ExcCodes

from fieldmodel.model import Device
from fieldmodel.registers import BIT_KINDS
from gateway.config import SiteConfig
from simulators._fleet import Fleet
from simulators._methane import relay_settings
from simulators._noise import FAULTS, device_rng
from simulators.crane import TowerCraneModel
from simulators.elevator import ElevatorModel
from simulators.errors import ScenarioError, UnknownDevice
from simulators.faults import DeviceFaults, Drop, Fault, Freeze, Spikes
from simulators.gas import GasDetectorModel
from simulators.lines import Endpoint, Line, check_endpoints
from simulators.scenarios import SCENARIOS, ModelHandle, ScenarioContext
from simulators.signals import SignalModel
from simulators.tank import TankGaugeModel

__all__ = ["MODELS", "SiteSimulator"]

log = logging.getLogger(__name__)

#: Signal model of each profile kind; any other kind gets a random walk per point.
MODELS: Final[dict[str, type[SignalModel]]] = {
    m.kind: m for m in (GasDetectorModel, TankGaugeModel, ElevatorModel, TowerCraneModel)
}

_FC_KIND: Final = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 4: "input"} | dict.fromkeys(
    (3, 6, 16, 22, 23), "holding"
)


class SiteSimulator:
    """Simulated field devices of one site config (or one shard of it), over Modbus."""

    def __init__(
        self,
        site: SiteConfig,
        scenario: str = "normal",
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        shard: tuple[int, int] | None = None,
        *,
        bind: str | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ScenarioError(
                f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}"
            )
        if seed < 0:
            raise ScenarioError(f"seed must be >= 0, got {seed}")
        if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ScenarioError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        self.site = site
        self.scenario = SCENARIOS[scenario]
        self.seed = seed
        self.shard = shard
        self.devices: tuple[Device, ...] = tuple(
            d for i, d in enumerate(site.devices) if shard is None or i % shard[1] == shard[0]
        )
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self._time = 0.0
        self._where: dict[str, tuple[Fleet, int]] = {}
        self._fleets: list[Fleet] = []
        groups: dict[tuple[str, object], list[Device]] = {}
        for device in self.devices:
            groups.setdefault((device.kind, device.points), []).append(device)
        for (kind, _), members in groups.items():
            fleet = Fleet(members, MODELS.get(kind), seed)
            self._fleets.append(fleet)
            for row, device in enumerate(members):
                self._where[device.id] = (fleet, row)
        self._faults = {d.id: DeviceFaults() for d in self.devices}
        self._garbage_rngs = {d.id: device_rng(seed, d.id, FAULTS) for d in self.devices}
        self._copied: dict[tuple[str, str], int] = {}
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._event_seq = itertools.count()
        self._lines = [
            Line(
                endpoint,
                units=units,
                sizes={d.id: self._where[d.id][0].layout.size for d in units.values()},
                access=self._access,
                faults=self._faults.__getitem__,
                garbage=self._garbage,
            )
            for endpoint, units in check_endpoints(list(self.devices), bind).items()
        ]
        self._line_of = {d.id: line for line in self._lines for d in line.units.values()}
        self._closed = asyncio.Event()
        self._running = False
        ctx = ScenarioContext(
            devices=self.devices,
            models={
                d.id: ModelHandle(d, fleet.model, row) for d, (fleet, row) in self._iter_rows()
            },
            schedule=self._schedule,
            inject=self.inject,
            clear=self.clear_faults,
            seed=seed,
        )
        relays = relay_settings(site)
        for device in self.devices:
            handle = ctx.model(device.id)
            settings = relays.get(device.id, {})
            if settings and set(settings) <= set(handle.names):
                handle.set(**settings)
        self.scenario.setup(ctx)
        #: What the scenario's operator sends to the gateway, by time (see ``OperatorCommand``).
        self.operator_commands = tuple(sorted(ctx.operator_commands, key=lambda c: c.at))
        for fleet in self._fleets:
            fleet.start()
        self._run_events(0.0)

    def _iter_rows(self) -> Iterator[tuple[Device, tuple[Fleet, int]]]:
        for device in self.devices:
            yield device, self._where[device.id]

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SiteSimulator:
        started: list[Line] = []
        try:
            for line in self._lines:
                await line.start()
                started.append(line)
                log.debug("serving %s", line)
        except BaseException:
            for line in started:
                await line.stop()
            raise
        self._running = True
        self._closed.clear()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every server (also what leaving ``async with`` does)."""
        self._running = False
        for line in self._lines:
            await line.stop()
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until the simulator is closed (or the waiting task is cancelled)."""
        await self._closed.wait()

    @property
    def lines(self) -> tuple[Line, ...]:
        """The served lines: endpoint and units of each."""
        return tuple(self._lines)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint served."""
        return tuple(line.endpoint for line in self._lines)

    # ------------------------------------------------------------------ time

    @property
    def time(self) -> float:
        """Simulated seconds since scenario start that the models have reached."""
        return self._time

    def step(self, now: float | None = None) -> float:
        """Advance every model to clock reading ``now`` (default: the clock); return sim time.

        Scheduled scenario actions run in order, each at its own time. Time never runs
        backwards, and a static scenario never moves the models (its actions still run).
        """
        t = (self._clock() if now is None else now) - self._start
        self._run_events(t)
        self._advance(t)
        return self._time

    def _advance(self, t: float) -> None:
        if t <= self._time:
            return
        self._time = t
        if self.scenario.static:
            return
        for fleet in self._fleets:
            fleet.advance(t)

    def _schedule(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (at, next(self._event_seq), action))

    def _run_events(self, t: float) -> None:
        while self._events and self._events[0][0] <= t:
            at, _, action = heapq.heappop(self._events)
            self._advance(at)
            action()

    # ------------------------------------------------------------------ registers

    def _device(self, device_id: str) -> tuple[Fleet, int]:
        try:
            return self._where[device_id]
        except KeyError:
            raise UnknownDevice(device_id) from None

    def registers(self, device_id: str) -> dict[str, list[int] | list[bool]]:
        """The device's current raw image per register kind, indexed by address from 0."""
        fleet, row = self._device(device_id)
        image = fleet.image()
        out: dict[str, list[int] | list[bool]] = {}
        for kind, array in image.items():
            out[kind] = array[row].tolist()  # bools for bit kinds, ints for words
        return out

    def values(self, device_id: str) -> dict[str, float]:
        """Engineering values decoded from the current registers (what a gateway must read)."""
        fleet, _ = self._device(device_id)
        return fleet.layout.decode(self.registers(device_id))

    def model(self, device_id: str) -> ModelHandle:
        """The device's model parameters (change them at runtime, as a scenario does)."""
        fleet, row = self._device(device_id)
        return ModelHandle(fleet.devices[row], fleet.model, row)

    async def _access(  # noqa: PLR0917 (pymodbus' action arguments, passed through)
        self,
        device_id: str,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Server hook on every access: faults, lazy refresh, writes."""
        faults = self._faults[device_id]
        if faults.exception is not None:
            return ExcCodes(faults.exception)
        kind = _FC_KIND.get(function_code)
        if kind is None:
            return ExcCodes.ILLEGAL_FUNCTION
        fleet, row = self._where[device_id]
        size = fleet.layout.size[kind]
        if size == 0 or (kind in BIT_KINDS and address >= size):
            return ExcCodes.ILLEGAL_ADDRESS
        if not self.scenario.static or self._events:
            self.step()
        if values is not None:
            fleet.hold(row, kind, address, values)
            return None
        fleet.image()
        key = (device_id, kind)
        if self._copied.get(key) != fleet.version:
            words = fleet.words(row, kind)
            registers[start_address : start_address + len(words)] = words
            self._copied[key] = fleet.version
        return None

    # ------------------------------------------------------------------ faults

    def inject(self, device_id: str, fault: Fault) -> None:
        """Activate a fault on a device now (see :mod:`simulators.faults`)."""
        fleet, row = self._device(device_id)
        faults = self._faults[device_id]
        point = fault.point if isinstance(fault, Freeze | Spikes) else None
        if point is not None and point not in fleet.layout.index:
            known = ", ".join(fleet.layout.names)
            raise ScenarioError(f"device {device_id!r} has no point {point!r}; points: {known}")
        fleet.image()  # freeze the values clients see now
        faults.add(fault)
        fleet.apply_faults(row, faults)
        if isinstance(fault, Drop):
            self._line_of[device_id].refuse()
        log.info("%s: fault %s injected", device_id, fault)

    def clear_faults(self, device_id: str) -> None:
        """Clear every fault of a device, and values clients wrote to it."""
        fleet, row = self._device(device_id)
        self._faults[device_id] = faults = DeviceFaults()
        fleet.apply_faults(row, faults)
        fleet.release(row)
        line = self._line_of[device_id]
        if line.refusing and not any(self._faults[d.id].drop for d in line.units.values()):
            line.restore()
        log.info("%s: faults cleared", device_id)

    def faults(self, device_id: str) -> DeviceFaults:
        """The faults active on a device."""
        self._device(device_id)
        return self._faults[device_id]

    def _garbage(self, device_id: str, size: int) -> bytes:
        return self._garbage_rngs[device_id].bytes(size)
