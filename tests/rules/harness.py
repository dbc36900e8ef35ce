"""Test helpers: point tables for the four device kinds, a fake point table that tests drive
tick by tick, and a comparison of transitions that treats NaN as equal to NaN."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple
from typing import Any

import numpy as np

from rules import AlarmState, AlarmTransition, FloodEvent, PointRef, RuleEngine, RulePack
from tests.harness.paths import PACKS  # noqa: F401 (the rules tests import it from here)

#: Point names (and units) of the built-in profiles, by kind (a subset of gateway/profiles;
#: test_packs.py checks every name here and every point a pack uses against those files). A
#: kind's list is the union of its profiles' points (``gas``: gas_detector, mine_environment and
#: toxic_gas_detector), so a test device has every point a pack may judge; :class:`Site` polls
#: them all, as the gateway polls every point of a device.
PROFILE_POINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "gas": (
        ("ch4", "%CH4"),
        ("co", "ppm"),
        ("o2", "%vol"),
        ("h2s", "ppm"),
        ("lel", "%LEL"),
        ("temperature", "°C"),
        ("status", ""),
        ("fault", ""),
        ("alarm_low", ""),
        ("alarm_high", ""),
        ("ch4_range", "%CH4"),
        ("feed_on", ""),
        ("relay_cut", ""),
        ("nh3", "ppm"),
        ("cl2", "ppm"),
        ("so2", "ppm"),
        ("no2", "ppm"),
        ("hcn", "ppm"),
        ("benzene", "ppm"),
        ("methanol", "ppm"),
        ("co2", "%vol"),
        ("h2", "%vol"),
        ("air_temperature", "°C"),
    ),
    "tank": (
        ("level", "m"),
        ("level_pct", "%"),
        ("temperature", "°C"),
        ("pressure", "kPa"),
        ("inflow", "m3/h"),
        ("outflow", "m3/h"),
        ("high_switch", ""),
        ("low_switch", ""),
        ("status", ""),
        ("volume", "m3"),
    ),
    "elevator": (
        ("floor", ""),
        ("direction", ""),
        ("running", ""),
        ("door_open", ""),
        ("door_closed", ""),
        ("leveling", ""),
        ("occupied", ""),
        ("speed", "m/s"),
        ("rated_speed", "m/s"),
        ("fault_code", ""),
        ("safety_circuit", ""),
        ("alarm_button", ""),
        ("car_call", ""),
        ("mains_power", ""),
        ("inspection", ""),
        ("door_opening", ""),
        ("door_closing", ""),
        ("overtravel_up", ""),
        ("overtravel_down", ""),
        ("trips", "count"),
    ),
    "crane": (
        ("load_t", "t"),
        ("rated_load_t", "t"),
        ("moment_pct", "%"),
        ("radius_m", "m"),
        ("height_m", "m"),
        ("slew_deg", "°"),
        ("wind_ms", "m/s"),
        ("beaufort", ""),
        ("tilt_x_deg", "°"),
        ("tilt_y_deg", "°"),
        ("alarm_bits", ""),
        ("moment_prealarm", ""),
        ("wind_prealarm", ""),
        ("sensor_fault", ""),
    ),
}


def device_points(
    name: str,
    index: int,
    kind: str,
    tags: Mapping[str, str] | None = None,
    only: Iterable[str] | None = None,
) -> list[PointRef]:
    """The point refs of one device of a built-in kind (optionally a subset of its points)."""
    keep = None if only is None else set(only)
    return [
        PointRef(name, index, point, kind, dict(tags or {}), unit)
        for point, unit in PROFILE_POINTS[kind]
        if keep is None or point in keep
    ]


class Site:
    """A fake point table: tests set values and advance time; each ``tick`` hands the arrays
    to the engine like the gateway does (new samples carry the current time).

    A device answers a poll with all its points: when a test sets some points of a device, the
    points it never set are sampled too (with no value, NaN), so a stale-data rule judges the
    device's polling, not which readings a test happened to give a value.
    """

    def __init__(
        self,
        points: Sequence[PointRef],
        packs: Sequence[RulePack],
        overrides: Mapping[str, Any] | None = None,
        start: float = 1_700_000_000.0,
        limits_reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.points = list(points)
        self.engine = RuleEngine(self.points, packs, overrides, limits_reasons=limits_reasons)
        n = len(self.points)
        self.index = {(p.device, p.point): i for i, p in enumerate(self.points)}
        self.rows: dict[str, list[int]] = {}
        for i, p in enumerate(self.points):
            self.rows.setdefault(p.device, []).append(i)
        self.polled: set[str] = set()
        self.values = np.full(n, np.nan)
        self.quality = np.zeros(n, dtype=np.uint8)
        self.sample_ts = np.full(n, np.nan)
        self.online = np.ones(self.engine.n_devices, dtype=np.bool_)
        self.now = start
        self.log: list[AlarmTransition] = []

    def set(self, device: str, **values: float) -> None:
        """New samples for points of ``device`` at the current time."""
        for point, value in values.items():
            i = self.index[(device, point)]
            self.values[i] = value
            self.quality[i] = 0
            self.sample_ts[i] = self.now
        self.polled.add(device)
        self._sample_unset(device)

    def _sample_unset(self, device: str) -> None:
        """The device's points no test set were read too (no value)."""
        rows = np.array(self.rows[device], dtype=np.intp)
        self.sample_ts[rows[np.isnan(self.values[rows])]] = self.now

    def refresh(self) -> None:
        """Every point read again (same values) at the current time."""
        self.sample_ts[~np.isnan(self.values)] = self.now
        for device in self.polled:
            self._sample_unset(device)

    def tick(self, advance: float = 0.0) -> list[AlarmTransition]:
        self.now += advance
        out = self.engine.tick(self.now, self.values, self.quality, self.sample_ts, self.online)
        self.log.extend(out)
        return out

    def run(self, seconds: float, step: float = 1.0) -> list[AlarmTransition]:
        """Tick every ``step`` seconds for ``seconds``, re-reading every point each time."""
        out: list[AlarmTransition] = []
        for _ in range(round(seconds / step)):
            self.now += step
            self.refresh()
            out.extend(self.tick())
        return out

    def state(self, alarm_id: str) -> AlarmState:
        return self.engine.state(alarm_id)


def _norm(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def normalized(items: Iterable[AlarmTransition | AlarmState | FloodEvent]) -> list[tuple[Any, ...]]:
    """Tuples of the items' fields with NaN replaced by a marker, for exact comparison."""
    return [tuple(_norm(v) for v in astuple(item)) for item in items]
