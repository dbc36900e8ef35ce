"""Tower-crane safety monitor model (GB 5144 load/moment limiter and anemometer).

Each crane works lift cycles: hook a load at a pick point, hoist, slew and trolley to the drop
point, lower, unhook, return. The rated load curve is flat at ``max_load`` out to ``knee_radius``
and falls as constant moment beyond it (``max_load * knee_radius / r``); the moment in percent is
``load × radius`` against ``rated(radius) × radius``. Loads are chosen below 75 % of rated for
the cycle's outermost radius, so normal work stays clear of the 90 % pre-alarm.

Wind at the jib is a mean speed with Ornstein-Uhlenbeck turbulence and decaying gusts; the
Beaufort force is looked up from the speed. Tilt follows wind pressure and moment. Alarm bits and
pre-alarm flags follow moment (90 %, 100 %), wind (``wind_alarm``, default Beaufort 6 =
10.8 m/s; pre-alarm at 90 % of it), height and radius limits and tilt.

Scenarios: ``overload_at`` s starts a heavy lift at the current radius whose load rises from 80 %
of rated by ``overload_rate`` % per second up to ``overload_peak`` %; ``wind_ramp_at`` s raises
the mean wind to ``wind_ramp_to`` m/s over ``wind_ramp_s`` s; ``settle_at`` s starts the
foundation settling: the tower leans by ``settle_rate`` ° per minute towards ``settle_deg`` (°,
from the x axis) up to ``settle_max`` °.

Parameters (per device): ``max_load`` t, ``knee_radius`` m, ``jib`` m, ``min_radius`` m,
``max_height`` m, ``reeving``, ``wind_mean`` m/s, ``wind_alarm`` m/s, ``tilt0`` °,
``tilt_alarm`` °, ``sensor_fault``, ``cycles0``, and the scenario parameters above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from simulators.signals import F64, Bools, SignalModel, ou_step

__all__ = ["ALARM_BITS", "BEAUFORT_MS", "TowerCraneModel", "beaufort"]

#: Lower wind-speed bound (m/s) of Beaufort forces 1..12.
BEAUFORT_MS = np.array([0.3, 1.6, 3.4, 5.5, 8.0, 10.8, 13.9, 17.2, 20.8, 24.5, 28.5, 32.7])

#: Bits of the ``alarm_bits`` word.
ALARM_BITS: Mapping[str, int] = {
    "moment": 0,
    "wind": 1,
    "height": 2,
    "radius": 3,
    "slew": 4,
    "tilt": 5,
    "no-go": 6,
    "anti-collision": 7,
}

# work-cycle phases
HOOK, HOIST, TRAVEL, LOWER, UNHOOK, RETURN, HEAVY = range(7)
_RATES = {"radius": 0.8, "slew": 3.0, "height": 0.6, "load": 0.5}  # per second
_GUST_RATE = 1 / 40.0  # gusts per second


def beaufort(speed: F64) -> F64:
    """Beaufort force of wind speeds in m/s."""
    return np.searchsorted(BEAUFORT_MS, speed, side="right").astype(np.float64)


def _toward(value: F64, target: F64, rate: float, dt: float) -> F64:
    return np.asarray(value + np.clip(target - value, -rate * dt, rate * dt), dtype=np.float64)


class TowerCraneModel(SignalModel):
    """Load, radius, height, slew, moment, wind and tilt of a fleet of tower cranes."""

    kind = "crane"
    dt = 0.25
    normals = 4
    uniforms = 6
    defaults: ClassVar[Mapping[str, float]] = {
        "max_load": 6.0,
        "knee_radius": 15.0,
        "jib": 55.0,
        "min_radius": 2.5,
        "max_height": 45.0,
        "reeving": 2.0,
        "wind_mean": 3.0,
        "wind_alarm": 10.8,
        "tilt0": 0.0,
        "tilt_alarm": 1.0,
        "sensor_fault": 0.0,
        "cycles0": 0.0,
        "overload_at": math.inf,
        "overload_rate": 0.5,
        "overload_peak": 120.0,
        "wind_ramp_at": math.inf,
        "settle_at": math.inf,
        "settle_rate": 0.5,
        "settle_deg": 45.0,
        "settle_max": 2.0,
        "wind_ramp_to": 14.0,
        "wind_ramp_s": 120.0,
    }

    def randomize(self, i: int, rng: np.random.Generator) -> None:
        p = self.params
        model = int(rng.integers(0, 3))
        p["max_load"][i] = (6.0, 8.0, 10.0)[model]
        p["knee_radius"][i] = (15.0, 16.0, 18.0)[model]
        p["jib"][i] = (55.0, 60.0, 65.0)[model]
        p["max_height"][i] = float(rng.integers(35, 60))
        p["reeving"][i] = float(rng.choice([2, 4]))
        p["wind_mean"][i] = rng.uniform(2.0, 4.0)
        p["tilt0"][i] = rng.uniform(-0.05, 0.05)
        p["cycles0"][i] = float(rng.integers(1_000, 90_000))

    def rated(self, radius: F64) -> F64:
        """Rated load (t) at a working radius (m) from the crane's load curve."""
        p = self.params
        r = np.maximum(radius, 1e-3)
        return np.asarray(np.minimum(p["max_load"], p["max_load"] * p["knee_radius"] / r))

    def start(self) -> None:
        p = self.params
        self.radius = np.full(self.n, 10.0)
        self.slew = np.zeros(self.n)
        self.height = np.full(self.n, 5.0)
        self.load = np.zeros(self.n)
        self.phase = np.full(self.n, HOOK, dtype=np.int64)
        self.cycles = p["cycles0"].copy()
        self.pick = np.stack([self.radius, self.slew], axis=1)
        self.drop = np.stack([np.full(self.n, 30.0), np.full(self.n, 90.0)], axis=1)
        self.lift = np.full(self.n, 20.0)
        self.cargo = 0.5 * self.rated(np.maximum(self.radius, self.drop[:, 0]))
        self.targets = np.stack([self.radius, self.slew, self.height, self.cargo], axis=1)
        self._turbulence = np.zeros(self.n)
        self._gust = np.zeros(self.n)
        self._load_noise = np.zeros(self.n)
        self._tilt_noise = np.zeros(self.n)
        self._heavy_since = np.full(self.n, math.nan)
        self._t = 0.0
        self._derive()

    def _new_cycle(self, mask: Bools, u: F64) -> None:
        p = self.params
        lo, hi = p["min_radius"] + 2.0, p["jib"] - 3.0
        pick_r = lo + u[:, 0] * (hi - lo)
        drop_r = lo + u[:, 1] * (hi - lo)
        drop_s = np.mod(self.slew + 30.0 + u[:, 2] * 150.0, 360.0)
        self.pick = np.where(mask[:, None], np.stack([pick_r, self.slew], axis=1), self.pick)
        self.drop = np.where(mask[:, None], np.stack([drop_r, drop_s], axis=1), self.drop)
        self.lift = np.where(
            mask, np.minimum(10.0 + u[:, 3] * 25.0, p["max_height"] - 3), self.lift
        )
        share = 0.3 + 0.45 * u[:, 4]
        self.cargo = np.where(mask, share * self.rated(np.maximum(pick_r, drop_r)), self.cargo)

    def _targets(self) -> None:
        """Targets of radius, slew, height and load for each crane's phase."""
        r, s, h, q = self.radius, self.slew, self.height, self.load
        lift, low, top = self.lift, np.full(self.n, 2.0), np.full(self.n, 3.0)
        zero = np.zeros(self.n)
        # one column per phase: HOOK, HOIST, TRAVEL, LOWER, UNHOOK, RETURN, HEAVY
        table = np.stack(
            [
                np.stack([r, r, self.drop[:, 0], r, r, self.pick[:, 0], r], axis=1),
                np.stack([s, s, self.drop[:, 1], s, s, self.pick[:, 1], s], axis=1),
                np.stack([h, lift, lift, low, h, top, lift], axis=1),
                np.stack([self.cargo, q, q, q, zero, zero, q], axis=1),
            ],
            axis=1,
        )
        self.targets = table[np.arange(self.n), :, self.phase]

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        p = self.params
        heavy_start = (t >= p["overload_at"]) & (self.phase != HEAVY)
        self._heavy_since = np.where(heavy_start, t, self._heavy_since)
        self.phase = np.where(heavy_start, HEAVY, self.phase)
        self._targets()
        tr = self.targets
        self.radius = _toward(self.radius, tr[:, 0], _RATES["radius"], dt)
        turn = np.mod(tr[:, 1] - self.slew + 180.0, 360.0) - 180.0
        self.slew = np.mod(
            self.slew + np.clip(turn, -_RATES["slew"] * dt, _RATES["slew"] * dt), 360
        )
        self.height = _toward(self.height, tr[:, 2], _RATES["height"], dt)
        self.load = _toward(self.load, tr[:, 3], _RATES["load"], dt)
        heavy = self.phase == HEAVY
        share = np.minimum(80.0 + p["overload_rate"] * (t - self._heavy_since), p["overload_peak"])
        self.load = np.where(
            heavy, np.nan_to_num(share) / 100.0 * self.rated(self.radius), self.load
        )

        reached = (
            (np.abs(self.radius - tr[:, 0]) < 1e-6)
            & (np.abs(np.mod(self.slew - tr[:, 1] + 180.0, 360.0) - 180.0) < 1e-6)
            & (np.abs(self.height - tr[:, 2]) < 1e-6)
            & (np.abs(self.load - tr[:, 3]) < 1e-6)
            & ~heavy
        )
        self.cycles = self.cycles + (reached & (self.phase == UNHOOK))
        renew = reached & (self.phase == UNHOOK)
        self._new_cycle(renew, u)
        self.phase = np.where(reached, (self.phase + 1) % HEAVY, self.phase)

        ramp = np.clip((t - p["wind_ramp_at"]) / p["wind_ramp_s"], 0.0, 1.0)
        self._mean = p["wind_mean"] + (p["wind_ramp_to"] - p["wind_mean"]) * ramp
        self._turbulence = ou_step(self._turbulence, z[:, 0], dt, 8.0, 0.15 * self._mean)
        strength = 0.3 + 0.3 * np.minimum(np.abs(z[:, 1]) / 2.0, 1.0)  # gust factor 1.3-1.6
        gust = (u[:, 5] < _GUST_RATE * dt) * strength * self._mean
        self._gust = np.maximum(self._gust * math.exp(-dt / 4.0), gust)
        self._load_noise = ou_step(self._load_noise, z[:, 2], dt, 2.0, 0.003)
        self._tilt_noise = ou_step(self._tilt_noise, z[:, 3], dt, 20.0, 0.01)
        self._t = t
        self._derive()

    def _derive(self) -> None:
        p = self.params
        if self._t == 0.0:
            self._mean = p["wind_mean"].copy()
        # the monitor derives force and alarms from the values it displays (0.1 m/s, 0.01 %)
        self.wind = np.round(
            np.clip(self._mean + self._turbulence + self._gust, 0.0, 36.9), 1
        ).astype(np.float64)
        self.load_measured = np.maximum(self.load * (1.0 + self._load_noise), 0.0)
        rated = self.rated(self.radius)
        self.rated_load = rated
        self.moment = np.round(self.load_measured * self.radius / (rated * self.radius) * 100, 2)
        # two tilt axes: the wind leans the tower along x, the load moment along the jib (slew)
        jib = np.radians(self.slew)
        lean = 0.002 * self.moment
        settled = np.minimum(
            np.maximum(self._t - p["settle_at"], 0.0) / 60.0 * p["settle_rate"], p["settle_max"]
        )
        toward = np.radians(p["settle_deg"])
        self.tilt_x = np.clip(
            p["tilt0"]
            + 0.001 * self.wind**2
            + lean * np.cos(jib)
            + settled * np.cos(toward)
            + self._tilt_noise,
            -9.99,
            9.99,
        )
        self.tilt_y = np.clip(
            lean * np.sin(jib) + settled * np.sin(toward) + 0.7 * self._tilt_noise, -9.99, 9.99
        )
        self.tilt = np.hypot(self.tilt_x, self.tilt_y)
        bits = (
            (self.moment >= 100.0) * (1 << ALARM_BITS["moment"])
            + (self.wind >= p["wind_alarm"]) * (1 << ALARM_BITS["wind"])
            + (self.height >= p["max_height"] - 0.5) * (1 << ALARM_BITS["height"])
            + ((self.radius >= p["jib"] - 0.5) | (self.radius <= p["min_radius"] + 0.2))
            * (1 << ALARM_BITS["radius"])
            + (np.abs(self.tilt) >= p["tilt_alarm"]) * (1 << ALARM_BITS["tilt"])
        )
        self.alarm_bits = bits.astype(np.float64)

    def outputs(self) -> Mapping[str, F64 | Bools]:
        p = self.params
        return {
            "moment_pct": self.moment,
            "load_t": self.load_measured,
            "rated_load_t": self.rated_load,
            "radius_m": self.radius,
            "height_m": self.height,
            "slew_deg": self.slew,
            "wind_ms": self.wind,
            "beaufort": beaufort(self.wind),
            "tilt_x_deg": self.tilt_x,
            "tilt_y_deg": self.tilt_y,
            "alarm_bits": self.alarm_bits,
            "moment_prealarm": self.moment >= 90.0,
            "wind_prealarm": self.wind >= 0.9 * p["wind_alarm"],
            "sensor_fault": p["sensor_fault"] != 0,
            "reeving": p["reeving"],
            "hoist_cycles": self.cycles,
        }
