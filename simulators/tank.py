"""Storage-tank gauge model (hazardous-chemicals tank farm).

The level integrates inflow minus outflow over the tank's cross-section; in normal operation a
level controller trims the outflow so the level holds near its setpoint for hours. The product
temperature drifts slowly (daily cycle plus a slow random walk); the vapour-space pressure follows
the temperature (breathing) and the filling rate. Independent level switches trip at the
high-high and low-low levels (GB 17681: HH interlock cuts the feed, LL cuts the outflow).

Parameters (per device): ``height`` m, ``diameter`` m, ``level0_pct`` % (initial level),
``setpoint_pct`` %, ``inflow`` and ``outflow`` m3/h (nominal rates), ``flow_noise`` m3/h,
``level_control`` (1: the outflow holds the setpoint, 0: fixed outflow), ``temp_base`` °C,
``temp_phase`` rad, ``pressure_base`` kPa, ``pressure_per_degc`` kPa/°C, ``hh_pct`` and
``ll_pct`` % (switch points), ``gauge_status`` (0 ok, 1 gauge fault, 2 echo lost),
``total_in0`` m3, ``leak_at`` s (inf: never) and ``leak_rate`` m3/h: from ``leak_at`` product
leaves the tank past the flow meters (a leak) at ``leak_rate``, or, when negative, arrives past
them (a passing inlet valve).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from simulators.signals import F64, Bools, SignalModel, ou_step

__all__ = ["TankGaugeModel"]

_DAY = 86400.0
_CONTROL_TAU = 1800.0  # s: the level controller pulls a level error back over about half an hour


class TankGaugeModel(SignalModel):
    """Level, temperature, pressure, flows and level switches of a fleet of storage tanks."""

    kind = "tank"
    dt = 1.0
    normals = 4
    defaults: ClassVar[Mapping[str, float]] = {
        "height": 15.0,
        "diameter": 15.0,
        "level0_pct": 50.0,
        "setpoint_pct": 50.0,
        "inflow": 120.0,
        "outflow": 120.0,
        "flow_noise": 4.0,
        "level_control": 1.0,
        "temp_base": 20.0,
        "temp_phase": 0.0,
        "pressure_base": 1.5,
        "pressure_per_degc": 0.12,
        "hh_pct": 95.0,
        "ll_pct": 5.0,
        "gauge_status": 0.0,
        "total_in0": 0.0,
        "leak_at": math.inf,
        "leak_rate": 0.0,
    }

    def randomize(self, i: int, rng: np.random.Generator) -> None:
        p = self.params
        p["height"][i] = round(rng.uniform(12.0, 18.0), 1)
        p["diameter"][i] = round(rng.uniform(10.0, 20.0), 1)
        level = rng.uniform(35.0, 65.0)
        p["level0_pct"][i] = level
        p["setpoint_pct"][i] = level
        flow = rng.uniform(60.0, 200.0)
        p["inflow"][i] = flow
        p["outflow"][i] = flow
        p["temp_base"][i] = rng.uniform(12.0, 28.0)
        p["temp_phase"][i] = rng.uniform(0.0, 2 * math.pi)
        p["pressure_base"][i] = rng.uniform(0.8, 2.0)
        p["total_in0"][i] = float(rng.integers(10_000, 2_000_000))

    @property
    def area(self) -> F64:
        """Cross-section in m²."""
        return np.asarray(math.pi / 4.0 * self.params["diameter"] ** 2, dtype=np.float64)

    def start(self) -> None:
        p = self.params
        self.level = p["level0_pct"] / 100.0 * p["height"]
        self.total_in = p["total_in0"].copy()
        self._ou = np.zeros((self.n, 4))
        self._t = 0.0
        self._derive()

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        p = self.params
        self._ou[:, :2] = ou_step(self._ou[:, :2], z[:, :2], dt, 60.0, p["flow_noise"][:, None])
        self._ou[:, 2] = ou_step(self._ou[:, 2], z[:, 2], dt, 3600.0, 0.3)
        self._ou[:, 3] = ou_step(self._ou[:, 3], z[:, 3], dt, 30.0, 0.02)
        area = self.area
        inflow = np.maximum(p["inflow"] + self._ou[:, 0], 0.0)
        error = self.level - p["setpoint_pct"] / 100.0 * p["height"]
        trim = np.where(p["level_control"] != 0, error * area * 3600.0 / _CONTROL_TAU, 0.0)
        outflow = np.maximum(p["outflow"] + self._ou[:, 1] + trim, 0.0)
        unmetered = np.where(t >= p["leak_at"], p["leak_rate"], 0.0)
        net = inflow - outflow - unmetered
        self.level = np.clip(self.level + net / 3600.0 * dt / area, 0, p["height"])
        self.total_in = self.total_in + inflow / 3600.0 * dt
        self.inflow, self.outflow = inflow, outflow
        self._t = t
        self._derive()

    def _derive(self) -> None:
        p, t = self.params, self._t
        if t == 0.0:
            self.inflow = p["inflow"].copy()
            self.outflow = p["outflow"].copy()
        self.level_pct = self.level / p["height"] * 100.0
        self.temperature = (
            p["temp_base"] + 1.5 * np.sin(2 * math.pi * t / _DAY + p["temp_phase"]) + self._ou[:, 2]
        )
        filling = (self.inflow - self.outflow) / np.maximum(self.area, 1.0)  # m/h of level
        self.pressure = (
            p["pressure_base"]
            + p["pressure_per_degc"] * (self.temperature - p["temp_base"])
            + 0.05 * filling
            + self._ou[:, 3]
        )

    def outputs(self) -> Mapping[str, F64 | Bools]:
        p = self.params
        return {
            "level": self.level,
            "temperature": self.temperature,
            "pressure": self.pressure,
            "level_pct": self.level_pct,
            "inflow": self.inflow,
            "outflow": self.outflow,
            "status": p["gauge_status"],
            "volume": self.level * self.area,
            "total_in": self.total_in,
            "high_switch": self.level_pct >= p["hh_pct"],
            "low_switch": self.level_pct <= p["ll_pct"],
        }
