"""Multi-gas detector model (coal-mine methane sensor / 6-in-1 detector).

Signals (profile ``gas_detector``): CH4 %vol around its baseline (0.1-0.3) with slow
Ornstein-Uhlenbeck noise; %LEL from CH4 (LEL of methane 5 %vol); O2 ~20.9 %vol diluted by the
methane; CO and H2S ppm near zero; sensor temperature with a daily drift. The status word and the
alarm bits follow the values the way a detector latches them: low alarm at ``alarm_low``, high
alarm (power-off) at ``alarm_high`` held until CH4 falls back below ``restore`` (《煤矿安全规程》
art. 498 by sensor position: the site simulator sets the three from the site's methane table).
The power-off relay follows the high alarm; the feed sensor reports the power of the device's
area (``area``: detectors sharing a value share a supply), off one step after any relay of the
area cuts.

Parameters (per device): ``ch4_base`` %vol, ``co_base`` ppm, ``h2s_base`` ppm, ``temp_base`` °C,
``supply_v`` V, ``ch4_range`` %vol, ``prealarm``/``alarm_low``/``alarm_high``/``restore`` %vol,
``area`` (index of the power-off area; -1: the detector's own supply only), ``lockout_s`` s
(a detector with a power-off level whose status stays warm-up, fault or over-range this long
cuts its relay: fault lockout, 故障闭锁, as the monitoring substation executes it),
``toxic_start`` s (inf: none) and ``toxic_tau`` s: a toxic release, each gas of
``TOXIC_GASES`` rising towards its ``{gas}_peak`` ppm (0: none) with that time constant,
``leak_start`` s (inf: no leak), ``leak_peak`` %vol added at full leak, ``leak_tau`` s (time
constant of the rise), ``leak_end`` s (ventilation restored: the leak dilutes away with time
constant ``clear_tau`` s), ``sensor_fault`` (1: the cell reports a fault), ``warmup_s`` s,
``runtime_h0`` h, ``temp_phase`` rad (of the daily drift), ``cal_start``/``cal_end`` s (a
calibration: test gas of ``cal_gas`` %vol on the sensor head from ``cal_start`` to ``cal_end``,
reading it with the first-order response ``cal_tau`` s; the detector is in calibration mode until
5 ``cal_tau`` after ``cal_end`` and does not drive its power-off relay meanwhile).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from simulators.signals import F64, Bools, SignalModel, ou_step

__all__ = ["STATUS", "GasDetectorModel"]

#: Status word codes of the detector (reg5 of common 6-in-1 detectors).
STATUS: Mapping[str, int] = {
    "warm-up": 0,
    "normal": 1,
    "fault": 3,
    "pre-alarm": 4,
    "low-alarm": 5,
    "high-alarm": 6,
    "over-range": 8,
}

#: Gases of the toxic_gas_detector profile (ppm), zero unless a scenario releases them.
TOXIC_GASES = ("nh3", "cl2", "so2", "no2", "hcn", "benzene", "methanol")
_CH4_LEL = 5.0  # %vol of methane at 100 %LEL
_DAY = 86400.0


class GasDetectorModel(SignalModel):
    """CH4, CO, O2, H2S, %LEL and temperature of a fleet of gas detectors."""

    kind = "gas"
    dt = 0.5
    normals = 5
    defaults: ClassVar[Mapping[str, float]] = {
        "ch4_base": 0.2,
        "co_base": 3.0,
        "h2s_base": 0.2,
        "temp_base": 24.0,
        "supply_v": 18.0,
        "ch4_range": 4.0,
        "prealarm": 0.8,
        "alarm_low": 1.0,
        "alarm_high": 1.5,
        "restore": 1.0,
        "area": -1.0,
        "lockout_s": 2.0,
        "toxic_start": math.inf,
        "toxic_tau": 60.0,
        **{f"{gas}_peak": 0.0 for gas in TOXIC_GASES},
        "leak_start": math.inf,
        "leak_peak": 2.2,
        "leak_tau": 100.0,
        "leak_end": math.inf,
        "clear_tau": 40.0,
        "sensor_fault": 0.0,
        "warmup_s": 0.0,
        "runtime_h0": 5000.0,
        "temp_phase": 0.0,
        "cal_start": math.inf,
        "cal_end": math.inf,
        "cal_gas": 2.0,
        "cal_tau": 10.0,
    }

    def randomize(self, i: int, rng: np.random.Generator) -> None:
        p = self.params
        p["ch4_base"][i] = rng.uniform(0.12, 0.28)
        p["co_base"][i] = rng.uniform(1.0, 6.0)
        p["h2s_base"][i] = rng.uniform(0.0, 0.5)
        # daily swing (±0.8) and noise stay below the 26 °C face limit of the coal-mine pack
        p["temp_base"][i] = rng.uniform(20.0, 24.5)
        p["supply_v"][i] = rng.uniform(17.6, 18.4)
        p["runtime_h0"][i] = float(rng.integers(500, 20000))
        p["temp_phase"][i] = rng.uniform(0.0, 2 * math.pi)

    def start(self) -> None:
        self._ou = np.zeros((self.n, 4))
        self._turbulence = np.zeros(self.n)
        self._high = np.zeros(self.n, dtype=np.bool_)
        self._cut = np.zeros(self.n, dtype=np.bool_)
        self._feed = np.ones(self.n, dtype=np.bool_)
        self._failing_since = np.full(self.n, np.inf)
        self._t = 0.0
        self._derive()

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        p = self.params
        ones = np.ones(self.n)
        sigma = np.stack([0.015 * ones, 0.1 * p["co_base"] + 0.2, 0.05 * ones, 0.1 * ones], axis=1)
        self._ou = ou_step(self._ou, z[:, :4], dt, 30.0, sigma)
        self._turbulence = ou_step(self._turbulence, z[:, 4], dt, 5.0, 0.04)
        self._feed = self._area_power()  # the feed sensor sees a cut one step after the relay
        self._t = t
        self._derive()

    def _area_power(self) -> Bools:
        """Power on the supply of each detector: off when its relay, or any relay of its area,
        has cut."""
        area = self.params["area"].astype(np.int64)
        shared = area >= 0
        if not shared.any():
            return ~self._cut
        cut_in = np.bincount(area[shared], weights=self._cut[shared], minlength=area.max() + 1)
        return np.where(shared, cut_in[np.maximum(area, 0)] == 0, ~self._cut)

    def _derive(self) -> None:
        p, t = self.params, self._t
        # rise towards leak_peak from leak_start; once ventilation is restored at leak_end
        # the accumulated methane is diluted away with time constant clear_tau
        rising = np.maximum(np.minimum(t, p["leak_end"]) - p["leak_start"], 0.0)
        clearing = np.maximum(t - p["leak_end"], 0.0)
        leak = np.where(
            t >= p["leak_start"],
            p["leak_peak"]
            * -np.expm1(-rising / p["leak_tau"])
            * np.exp(-clearing / p["clear_tau"]),
            0.0,
        )
        air = np.maximum(p["ch4_base"] + self._ou[:, 0] + leak * (1 + self._turbulence), 0.0)
        # calibration gas: the reading approaches cal_gas while it flows, then returns to the air
        # (the detector stays in calibration mode until the reading has recovered: 5 tau)
        calibrating = (t >= p["cal_start"]) & (t < p["cal_end"] + 5.0 * p["cal_tau"])
        on = np.maximum(np.minimum(t, p["cal_end"]) - p["cal_start"], 0.0)
        off = np.maximum(t - p["cal_end"], 0.0)
        reached = -np.expm1(-on / p["cal_tau"]) * np.exp(-off / p["cal_tau"])
        self.ch4 = np.where(t >= p["cal_start"], air + (p["cal_gas"] - air) * reached, air)
        self.co = np.maximum(p["co_base"] + self._ou[:, 1], 0.0)
        self.h2s = np.maximum(p["h2s_base"] + self._ou[:, 2], 0.0)
        self.temperature = (
            p["temp_base"] + 0.8 * np.sin(2 * math.pi * t / _DAY + p["temp_phase"]) + self._ou[:, 3]
        )
        self.o2 = 20.9 * (1.0 - self.ch4 / 100.0)
        self.lel = self.ch4 / _CH4_LEL * 100.0
        shown = np.round(self.ch4, 2)  # the detector alarms on the value it displays
        low = shown >= p["alarm_low"]
        self._high = (shown >= p["alarm_high"]) | (self._high & (shown >= p["restore"]))
        self.alarm_low = low
        fault = p["sensor_fault"] != 0
        status = np.full(self.n, STATUS["normal"], dtype=np.float64)
        status[shown >= p["prealarm"]] = STATUS["pre-alarm"]
        status[low] = STATUS["low-alarm"]
        status[self._high] = STATUS["high-alarm"]
        status[shown > p["ch4_range"]] = STATUS["over-range"]
        status[fault] = STATUS["fault"]
        status[t < p["warmup_s"]] = STATUS["warm-up"]
        self.status = status
        failing = np.isin(status, (STATUS["warm-up"], STATUS["fault"], STATUS["over-range"]))
        self._failing_since = np.where(failing, np.minimum(self._failing_since, t), np.inf)
        locked = np.isfinite(p["alarm_high"]) & (t - self._failing_since >= p["lockout_s"])
        self._cut = (self._high | locked) & ~calibrating
        self.fault = fault

    def outputs(self) -> Mapping[str, F64 | Bools]:
        p = self.params
        ch4 = np.minimum(self.ch4, p["ch4_range"])
        rise = np.where(
            self._t >= p["toxic_start"],
            -np.expm1(-np.maximum(self._t - p["toxic_start"], 0.0) / p["toxic_tau"]),
            0.0,
        )
        return {
            "status": self.status,
            "ch4": ch4,
            "co": self.co,
            "o2": self.o2,
            "h2s": self.h2s,
            "lel": self.lel,
            "temperature": self.temperature,
            # a mine_environment station's air points (its cell temperature is the air's here)
            "air_temperature": self.temperature,
            "co2": np.full(self.n, 0.05) + 0.1 * self.ch4,
            "h2": np.zeros(self.n),
            "humidity": np.full(self.n, 85.0),
            "wind_speed": np.full(self.n, 1.5),
            # a toxic_gas_detector's cells: zero until a release rises towards each gas's peak
            **{gas: rise * p[f"{gas}_peak"] for gas in TOXIC_GASES},
            "fault": self.fault,
            "alarm_low": self.alarm_low,
            "alarm_high": self._high,
            "ch4_range": p["ch4_range"],
            "ch4_precise": ch4,
            "runtime_h": np.floor(p["runtime_h0"] + self._t / 3600.0),
            "supply_v": p["supply_v"],
            "feed_on": self._feed,
            "relay_cut": self._cut,
        }
