"""Scenarios: named set-ups of the signal models and faults over simulated time.

A scenario is a function that receives a :class:`ScenarioContext` before the simulator starts.
It adjusts model parameters per device (``ctx.model(device_id).set(...)``), schedules actions at
scenario times (``ctx.at(t, action)``) and injects faults (``ctx.inject(device_id, fault,
at=..., until=...)``). Time is seconds of simulated time from scenario start. Register one with
:func:`scenario`::

    @scenario("leak-at-night", "the gas leak, with the face detector's feed frozen")
    def leak_at_night(ctx: ScenarioContext) -> None:
        gas_leak(ctx)
        ctx.inject("face1-gas", Freeze("feed_on"))

Built-in scenarios are listed in :data:`SCENARIOS` (see docs/simulators.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fieldmodel.model import Device
from simulators.errors import ScenarioError
from simulators.faults import Fault, Freeze
from simulators.signals import SignalModel

__all__ = [
    "SCENARIOS",
    "ModelHandle",
    "OperatorCommand",
    "Scenario",
    "ScenarioContext",
    "scenario",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named scenario: its description, its set-up function, and whether time stands still."""

    name: str
    description: str
    setup: Callable[[ScenarioContext], None]
    #: Static scenarios never advance the models: values stay exactly as they start.
    static: bool = False


#: Every registered scenario by name.
SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, description: str, *, static: bool = False
) -> Callable[[Callable[[ScenarioContext], None]], Callable[[ScenarioContext], None]]:
    """Register the decorated set-up function as scenario ``name``."""

    def register(setup: Callable[[ScenarioContext], None]) -> Callable[[ScenarioContext], None]:
        if name in SCENARIOS:
            raise ScenarioError(f"scenario {name!r} is already registered")
        SCENARIOS[name] = Scenario(name, description, setup, static)
        return setup

    return register


class ModelHandle:
    """One device's parameters in its fleet's signal model."""

    def __init__(self, device: Device, model: SignalModel | None, row: int) -> None:
        self.device = device
        self._model = model
        self._row = row

    @property
    def kind(self) -> str:
        """The device's profile kind (gas, tank, elevator, crane, or another name)."""
        return self.device.kind

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names the model takes (empty for devices on the generic random walk)."""
        return tuple(self._model.params) if self._model is not None else ()

    def get(self, name: str) -> float:
        """The current value of parameter ``name``."""
        return float(self._params(name)[self._row])

    def set(self, **params: float) -> None:
        """Set parameters, e.g. ``set(leak_start=20.0, leak_peak=2.5)``."""
        for name, value in params.items():
            self._params(name)[self._row] = value

    def _params(self, name: str) -> np.ndarray:
        if self._model is None or name not in self._model.params:
            raise ScenarioError(
                f"device {self.device.id!r} ({self.kind}) has no model parameter {name!r}; "
                f"known: {', '.join(self.names) or 'none (generic random walk)'}"
            )
        return self._model.params[name]


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """A command the scenario's operator sends at scenario time ``at``: ``command`` is the topic
    below ``P/cmd/`` (e.g. ``device/maintenance``), ``payload`` its JSON object. The simulator
    only lists them (:attr:`simulators.SiteSimulator.operator_commands`); whoever plays the
    operator (a test, a person with ``mosquitto_pub``) sends them to the gateway."""

    at: float
    command: str
    payload: Mapping[str, object]


class _Scheduler(Protocol):
    def __call__(self, at: float, action: Callable[[], None]) -> None: ...


class ScenarioContext:
    """What a scenario set-up function works with."""

    def __init__(
        self,
        *,
        devices: Sequence[Device],
        models: Mapping[str, ModelHandle],
        schedule: _Scheduler,
        inject: Callable[[str, Fault], None],
        clear: Callable[[str], None],
        seed: int,
    ) -> None:
        self.devices = tuple(devices)
        self.seed = seed
        self._models = models
        self._schedule = schedule
        self._inject = inject
        self._clear = clear
        #: Commands the operator sends during the scenario, in the order they were added.
        self.operator_commands: list[OperatorCommand] = []

    def of_kind(self, kind: str) -> Iterator[Device]:
        """Devices whose profile kind is ``kind``."""
        return (d for d in self.devices if d.kind == kind)

    def model(self, device_id: str) -> ModelHandle:
        """The model parameters of one device."""
        try:
            return self._models[device_id]
        except KeyError:
            raise ScenarioError(f"no simulated device {device_id!r}") from None

    def at(self, t: float, action: Callable[[], None]) -> None:
        """Run ``action`` when simulated time reaches ``t`` seconds."""
        self._schedule(t, action)

    def operator(self, at: float, command: str, payload: Mapping[str, object]) -> None:
        """The operator sends ``P/cmd/{command}`` with ``payload`` at time ``at``."""
        self.operator_commands.append(OperatorCommand(at, command, dict(payload)))

    def inject(
        self, device_id: str, fault: Fault, *, at: float = 0.0, until: float | None = None
    ) -> None:
        """Inject ``fault`` at time ``at``; with ``until``, clear the device's faults then."""
        self.model(device_id)  # fail early on an unknown id
        self.at(at, lambda: self._inject(device_id, fault))
        if until is not None:
            self.at(until, lambda: self._clear(device_id))


# --------------------------------------------------------------------------- built-in scenarios


def _mentions(device: Device, word: str) -> bool:
    return word in device.id or any(word in v for v in device.tags.values())


@scenario("normal", "every signal moves with noise and drift, inside its limits, for hours")
def normal(ctx: ScenarioContext) -> None:
    """Nothing to change: the models' defaults are normal operation."""


@scenario(
    "static",
    "constant values, no noise: registers never change unless a fault or a write changes them",
    static=True,
)
def static(ctx: ScenarioContext) -> None:
    """Nothing to change: a static scenario never advances the models."""


def _gas_position(device: Device) -> str:
    """Where a gas sensor sits: ``face`` (T0/T1), ``return`` (T2) or ``other``."""
    position = device.tags.get("position", "").upper()
    if position in {"T0", "T1"}:
        return "face"
    if position == "T2" or _mentions(device, "return"):
        return "return"
    if not position and _mentions(device, "face"):
        return "face"
    return "other"


#: Scenario time at which gas-leak's ventilation is restored and the methane clears.
VENTILATED = 360.0


@scenario(
    "gas-leak",
    "CH4 at the coal face (T0/T1, or ids/tags naming 'face') rises from t=20 s past 1.0 %vol "
    "(~1 min) and 1.5 %vol (~1.5-2 min); the return airway (T2) follows later past 1.0; other "
    "gas detectors see a diluted rise; ventilation is restored at t=360 s and the methane clears "
    "(below 1.0 %vol by ~7 min)",
)
def gas_leak(ctx: ScenarioContext) -> None:
    """A methane inflow at the face: first-order rise towards base + 2.2 %vol (tau 100 s)."""
    gas = list(ctx.of_kind("gas"))
    where = {d.id: _gas_position(d) for d in gas}
    if "face" not in where.values():
        where = dict.fromkeys(where, "face")  # no face named: every detector is at the face
    for device in gas:
        handle = ctx.model(device.id)
        match where[device.id]:
            case "face":
                handle.set(leak_start=20.0, leak_peak=2.2, leak_tau=100.0, leak_end=VENTILATED)
            case "return":
                handle.set(leak_start=45.0, leak_peak=1.3, leak_tau=120.0, leak_end=VENTILATED)
            case _:
                handle.set(leak_start=60.0, leak_peak=0.4, leak_tau=150.0, leak_end=VENTILATED)


@scenario(
    "tank-overfill",
    "tanks start at 80 %, a receipt fills 1 % of height a minute against a throttled outflow: "
    "H (85 %) at ~5 min, HH (90 %, feed interlock) at ~10 min, the independent high-level switch "
    "(95 %) at ~15 min",
)
def tank_overfill(ctx: ScenarioContext) -> None:
    """Inflow exceeds outflow with the level controller off."""
    for device in ctx.of_kind("tank"):
        handle = ctx.model(device.id)
        height, diameter = handle.get("height"), handle.get("diameter")
        area = np.pi / 4 * diameter**2
        outflow = 0.2 * handle.get("outflow")
        handle.set(
            level0_pct=80.0,
            setpoint_pct=80.0,
            level_control=0.0,
            outflow=outflow,
            inflow=outflow + area * height * 0.01 * 60.0,
        )


#: Level change of tank-leak's leaking and filling tanks, in % of height per minute.
LEAK_PCT_PER_MIN = 0.05


@scenario(
    "tank-leak",
    "every tank stands still (no transfer, flows 0); from t=60 s the first tank leaks and the "
    "second fills past its closed, passing inlet valve, each at 0.05 % of height a minute with the "
    "flow meters at 0; the first tank farm %LEL detector sees the vapour from t=90 s",
)
def tank_leak(ctx: ScenarioContext) -> None:
    """Standing tanks; an unmetered outflow (leak) and an unmetered inflow."""
    tanks = list(ctx.of_kind("tank"))
    for i, device in enumerate(tanks):
        handle = ctx.model(device.id)
        height, diameter = handle.get("height"), handle.get("diameter")
        rate = np.pi / 4 * diameter**2 * height * LEAK_PCT_PER_MIN / 100.0 * 60.0  # m3/h
        sign = {0: 1.0, 1: -1.0}.get(i, 0.0)
        handle.set(inflow=0.0, outflow=0.0, flow_noise=0.0, level_control=0.0)
        handle.set(leak_at=60.0, leak_rate=sign * rate)
    detectors = [d for d in ctx.of_kind("gas") if d.tags.get("position") == "tank_farm"]
    for device in detectors[:1]:
        ctx.model(device.id).set(leak_start=90.0, leak_peak=1.6, leak_tau=60.0)


#: Peak ppm of each gas in toxic-release: the hazchem pack's second level (200 % of the OEL)
#: for NH3, SO2, HCN and methanol, the first level only for Cl2, NO2 and benzene.
TOXIC_PEAKS = {
    "nh3_peak": 70.0,
    "cl2_peak": 0.5,
    "so2_peak": 5.0,
    "no2_peak": 3.5,
    "hcn_peak": 2.5,
    "benzene_peak": 2.5,
    "methanol_peak": 50.0,
}


@scenario(
    "toxic-release",
    "from t=20 s every toxic-gas detector at a loading station (position loading) sees a "
    "release: each gas rises (tau 60 s) towards a peak above its first alarm level, above the "
    "second for NH3, SO2, HCN and methanol",
)
def toxic_release(ctx: ScenarioContext) -> None:
    """A release at the loading station."""
    for device in ctx.of_kind("gas"):
        if device.tags.get("position") == "loading":
            ctx.model(device.id).set(toxic_start=20.0, toxic_tau=60.0, **TOXIC_PEAKS)


@scenario(
    "elevator-trapped",
    "from t=15 s each car's next journey stops between floors, outside the landing zone, doors "
    "closed, a passenger inside, safety circuit open, for 10 minutes",
)
def elevator_trapped(ctx: ScenarioContext) -> None:
    """Arm the trap on every elevator."""
    for device in ctx.of_kind("elevator"):
        ctx.model(device.id).set(trap_at=15.0, trap_for=600.0)


@scenario(
    "elevator-faults",
    "each car in turn: two journeys at 125 % of rated speed (up and down) from t=10 s, a door "
    "stuck half-closed for 60 s from ~70 s, doors that will not open at a landing with a "
    "passenger inside (alarm button after 20 s) from ~140 s for 60 s, an overshoot onto the "
    "final limit (top, bottom for every second car) from ~230 s, a departure with the doors "
    "open from ~290 s, a 40 s power failure at 340 s",
)
def elevator_faults(ctx: ScenarioContext) -> None:
    """Arm the elevator model's faults, one after another, on every elevator (the overshoot
    alternates: the first car overtravels the top landing, the second the bottom one, …)."""
    for i, device in enumerate(ctx.of_kind("elevator")):
        ctx.model(device.id).set(
            overshoot_end=1.0 if i % 2 == 0 else -1.0,
            overspeed_at=10.0,
            door_stuck_at=70.0,
            stuck_for=60.0,
            landing_trap_at=140.0,
            trap_for=60.0,
            button_after=20.0,
            overshoot_at=230.0,
            overshoot_for=20.0,
            door_open_move_at=290.0,
            power_loss_at=340.0,
            power_for=40.0,
        )


@scenario(
    "crane-overload",
    "from t=15 s a heavy lift's load rises 0.5 % of rated a second from 80 %: moment passes "
    "90 % at ~35 s, 100 % at ~55 s, 110 % at ~75 s, holds at 120 %",
)
def crane_overload(ctx: ScenarioContext) -> None:
    """Start the heavy lift on every crane."""
    for device in ctx.of_kind("crane"):
        ctx.model(device.id).set(overload_at=15.0, overload_rate=0.5, overload_peak=120.0)


@scenario(
    "crane-tilt",
    "from t=15 s each tower's foundation settles: it leans 0.5° a minute at 45° between the two "
    "tilt axes (plus the load's lean), so the magnitude passes 0.5° (~65 s) and 1.0° (~125 s) "
    "while each axis alone is still near 0.7°",
)
def crane_tilt(ctx: ScenarioContext) -> None:
    """A settling foundation on every crane."""
    for device in ctx.of_kind("crane"):
        ctx.model(device.id).set(settle_at=15.0, settle_rate=0.5, settle_deg=45.0)


@scenario(
    "high-wind",
    "from t=15 s the mean wind rises to 14 m/s over 2 minutes: gusts pass Beaufort 6 "
    "(10.8 m/s) from about a minute in, the mean by ~100 s",
)
def high_wind(ctx: ScenarioContext) -> None:
    """Raise the wind on every crane."""
    for device in ctx.of_kind("crane"):
        ctx.model(device.id).set(wind_ramp_at=15.0, wind_ramp_to=14.0, wind_ramp_s=120.0)


def _face_detector(ctx: ScenarioContext) -> Device:
    """The coal-face detector (T1, else the first one the gas leak treats as at the face)."""
    gas = list(ctx.of_kind("gas"))
    if not gas:
        raise ScenarioError("this scenario needs a gas detector")
    for device in gas:
        if device.tags.get("position", "").upper() == "T1":
            return device
    return next((d for d in gas if _gas_position(d) == "face"), gas[0])


@scenario(
    "feed-stuck",
    "the gas leak, and the coal-face detector's feed sensor stays on: when the area's power-off "
    "is demanded (~1.5-2 min) its feed still reads on, so the gateway raises feed_abnormal 2 s "
    "later while every other feed of the area goes off",
)
def feed_stuck(ctx: ScenarioContext) -> None:
    """Gas leak plus a feed (馈电) sensor frozen at "on" (a welded contactor, a failed cut)."""
    gas_leak(ctx)
    ctx.inject(_face_detector(ctx).id, Freeze("feed_on"))


#: Scenario time at which sensor-fault's face detector reports a cell fault.
CELL_FAULT_AT = 80.0


@scenario(
    "sensor-fault",
    "the gas leak, and at t=80 s (methane past the 1.0 % alarm, below power-off) the coal-face "
    "detector reports a cell fault: fault lockout demands power-off of its area 2 s later, "
    "before the methane itself reaches the power-off level",
)
def sensor_fault(ctx: ScenarioContext) -> None:
    """Gas leak plus a detector fault (status 3, fault flag) during the rise."""
    gas_leak(ctx)
    handle = ctx.model(_face_detector(ctx).id)
    ctx.at(CELL_FAULT_AT, lambda: handle.set(sensor_fault=1.0))


#: The calibration scenario's timeline (scenario seconds).
CALIBRATION_MAINTENANCE_AT = 30.0
CALIBRATION_GAS_FROM, CALIBRATION_GAS_UNTIL = 60.0, 240.0
CALIBRATION_END_AT = 330.0


@scenario(
    "calibration",
    "calibration (标校) of the coal-face detector (position T1, or the first gas detector): the "
    "operator puts it in maintenance at t=30 s for 15 min (P/cmd/device/maintenance); 2.0 %vol "
    "test gas from t=60 s to t=240 s; the operator ends the maintenance, calibrated, at t=330 s. "
    "No over-limit alarm: the detector's alarms show OUT_OF_SERVICE and its telemetry quality is "
    "'maintenance' meanwhile",
)
def calibration(ctx: ScenarioContext) -> None:
    """2.0 %vol calibration gas on one face detector, inside a maintenance window."""
    gas = list(ctx.of_kind("gas"))
    if not gas:
        raise ScenarioError("scenario 'calibration' needs a gas detector")
    device = next((d for d in gas if d.tags.get("position", "").upper() == "T1"), gas[0])
    ctx.model(device.id).set(
        cal_start=CALIBRATION_GAS_FROM, cal_end=CALIBRATION_GAS_UNTIL, cal_gas=2.0
    )
    ctx.operator(
        CALIBRATION_MAINTENANCE_AT,
        "device/maintenance",
        {"device": device.id, "user": "calibrator", "minutes": 15, "reason": "标校 2.0 % CH4"},
    )
    ctx.operator(
        CALIBRATION_END_AT,
        "device/maintenance/end",
        {"device": device.id, "user": "calibrator", "reason": "calibrated", "calibrated": True},
    )
