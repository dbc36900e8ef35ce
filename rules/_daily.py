"""The daily report's accumulators (24-hour report of a mine monitoring system): vectorized.

Per *sensor* — a point with a threshold rule, or the feed point of a feed check — one day (local
midnight to midnight in the site's time zone) accumulates:

* ``samples``, ``mean``, ``max``, ``min`` of the good samples read outside maintenance;
* ``over_count`` / ``over_s``: over-limit episodes (any threshold level active, outside
  maintenance) and their duration;
* ``power_off_count`` / ``power_off_s``: episodes at a power-off level and their duration;
* ``feed_abnormal_count``: feed-abnormal episodes of a feed point;
* ``maintenance_s``: time the sensor's device spent in maintenance (calibration);
* a chart series: per ``bin_s`` bin the max, min and mean of those samples, and whether the
  device was in maintenance during the bin.

An episode counts once, when it starts (or at midnight when it runs over into the new day).
Durations add the time between ticks while the condition holds; a gap between ticks longer than
``max_gap_s`` (the gateway was stopped) adds nothing, and ``covered_s`` says how much of the day
was observed. Every update is a fixed sequence of array operations over all sensors; no Python
loop over sensors runs per tick.

:meth:`DailyAccumulator.snapshot` gives the day so far as a :class:`DailyStats` (plain arrays,
saved and loaded with :meth:`DailyStats.to_arrays` / :meth:`DailyStats.from_arrays`), and
:meth:`DailyAccumulator.restore` continues a day after a restart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fieldmodel.quality import GOOD

from ._arrays import F64, U8, BoolArray, IdxArray

__all__ = [
    "DAILY_FIELDS",
    "DEFAULT_BIN_S",
    "DailyAccumulator",
    "DailyStats",
    "SensorRef",
    "day_bounds",
]

#: Chart resolution: one bin per 5 minutes (288 a day).
DEFAULT_BIN_S: Final = 300.0
#: A gap between ticks longer than this is downtime, not duration.
DEFAULT_MAX_GAP_S: Final = 60.0
#: Per-sensor statistics, in report order: name -> "int" | "float".
DAILY_FIELDS: Final[Mapping[str, str]] = {
    "samples": "int",
    "mean": "float",
    "max": "float",
    "min": "float",
    "over_count": "int",
    "over_s": "float",
    "power_off_count": "int",
    "power_off_s": "float",
    "feed_abnormal_count": "int",
    "maintenance_s": "float",
}
_FORMAT: Final = 1  # version of the saved arrays


@dataclass(frozen=True, slots=True)
class SensorRef:
    """One sensor of the report: its point row, device (index and id), point name and unit."""

    point_index: int
    device_index: int
    device: str
    point: str
    unit: str = ""


def day_bounds(day: dt.date, zone: dt.tzinfo) -> tuple[float, float]:
    """Epoch seconds of ``day``'s local midnight and of the next one (23-25 h apart with DST)."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + dt.timedelta(days=1)
    end = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return start.timestamp(), end.timestamp()


def local_day(ts: float, zone: dt.tzinfo) -> dt.date:
    """The local date of epoch seconds ``ts`` in ``zone``."""
    return dt.datetime.fromtimestamp(ts, tz=zone).date()


@dataclass(slots=True)
class DailyStats:
    """One day's report data (finished, or so far). Arrays have one entry per sensor; the chart
    arrays are (bins, sensors), NaN where a bin had no sample."""

    day: dt.date
    start: float
    end: float
    bin_s: float
    sensors: tuple[SensorRef, ...]
    covered_s: float
    complete: bool
    stats: dict[str, npt.NDArray[Any]]
    chart_max: npt.NDArray[np.float32]
    chart_min: npt.NDArray[np.float32]
    chart_mean: npt.NDArray[np.float32]
    #: Per bin and sensor: the sensor's device was in maintenance at some time in the bin.
    chart_maintenance: BoolArray
    #: Episodes running at the snapshot (so a restart does not count them again).
    running: dict[str, BoolArray] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Plain arrays for ``np.savez`` (no pickles)."""
        out: dict[str, npt.NDArray[Any]] = {
            "format": np.array(_FORMAT),
            "day": np.array(self.day.isoformat()),
            "bounds": np.array([self.start, self.end, self.bin_s, self.covered_s]),
            "complete": np.array(self.complete),
            "sensor_point": np.array([s.point_index for s in self.sensors], dtype=np.int64),
            "sensor_device_index": np.array([s.device_index for s in self.sensors], dtype=np.int64),
            "sensor_device": np.array([s.device for s in self.sensors], dtype=np.str_),
            "sensor_name": np.array([s.point for s in self.sensors], dtype=np.str_),
            "sensor_unit": np.array([s.unit for s in self.sensors], dtype=np.str_),
            "chart_max": self.chart_max,
            "chart_min": self.chart_min,
            "chart_mean": self.chart_mean,
            "chart_maintenance": self.chart_maintenance,
        }
        for name, values in self.stats.items():
            out[f"stat_{name}"] = values
        for name, mask in self.running.items():
            out[f"running_{name}"] = mask
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> DailyStats:
        """The inverse of :meth:`to_arrays`; raises ValueError for another format."""
        if int(arrays["format"]) != _FORMAT:
            raise ValueError(f"daily report data of format {int(arrays['format'])}, not {_FORMAT}")
        start, end, bin_s, covered = (float(x) for x in arrays["bounds"])
        sensors = tuple(
            SensorRef(int(p), int(d), str(dev), str(name), str(unit))
            for p, d, dev, name, unit in zip(
                arrays["sensor_point"],
                arrays["sensor_device_index"],
                arrays["sensor_device"],
                arrays["sensor_name"],
                arrays["sensor_unit"],
                strict=True,
            )
        )
        return cls(
            day=dt.date.fromisoformat(str(arrays["day"])),
            start=start,
            end=end,
            bin_s=bin_s,
            sensors=sensors,
            covered_s=covered,
            complete=bool(arrays["complete"]),
            stats={name: np.asarray(arrays[f"stat_{name}"]) for name in DAILY_FIELDS},
            chart_max=np.asarray(arrays["chart_max"], dtype=np.float32),
            chart_min=np.asarray(arrays["chart_min"], dtype=np.float32),
            chart_mean=np.asarray(arrays["chart_mean"], dtype=np.float32),
            chart_maintenance=np.asarray(arrays["chart_maintenance"], dtype=np.bool_),
            running={
                key.removeprefix("running_"): np.asarray(arrays[key], dtype=np.bool_)
                for key in arrays
                if key.startswith("running_")
            },
        )


class DailyAccumulator:
    """Accumulates one local day at a time over the sensors given.

    ``over_rows``/``over_sensor``: alarm rows whose active level is an over-limit of a sensor;
    ``power_rows``/``power_code``/``power_sensor``: rows that demand power-off at or above level
    code ``power_code`` (levels as in :class:`rules.Level`, compared on severity by the caller's
    codes: HH = 4); ``feed_rows``/``feed_sensor``: feed-check rows and their feed sensor.
    """

    def __init__(
        self,
        sensors: Sequence[SensorRef],
        *,
        over_rows: IdxArray,
        over_sensor: IdxArray,
        power_rows: IdxArray,
        power_code: npt.NDArray[np.int8],
        power_sensor: IdxArray,
        feed_rows: IdxArray,
        feed_sensor: IdxArray,
        zone: dt.tzinfo,
        bin_s: float = DEFAULT_BIN_S,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
    ) -> None:
        self.sensors = tuple(sensors)
        n = len(self.sensors)
        self.size = n
        self.zone = zone
        self.bin_s = float(bin_s)
        self.max_gap_s = float(max_gap_s)
        self._point = np.array([s.point_index for s in self.sensors], dtype=np.intp)
        self._device = np.array([s.device_index for s in self.sensors], dtype=np.intp)
        self._over_rows, self._over_sensor = over_rows, over_sensor
        self._power_rows, self._power_code, self._power_sensor = (
            power_rows,
            power_code,
            power_sensor,
        )
        self._feed_rows, self._feed_sensor = feed_rows, feed_sensor
        self._prev_over: BoolArray = np.zeros(n, dtype=np.bool_)
        self._prev_power: BoolArray = np.zeros(n, dtype=np.bool_)
        self._prev_feed: BoolArray = np.zeros(n, dtype=np.bool_)
        self._maintenance: BoolArray = np.zeros(n, dtype=np.bool_)
        self._last: float | None = None
        self.day: dt.date | None = None
        self.start = self.end = math.nan
        self._reset_day()

    # -- the day's arrays -------------------------------------------------------------------
    def _reset_day(self) -> None:
        n = self.size
        bins = self._n_bins()
        self.covered_s = 0.0
        self._samples = np.zeros(n, dtype=np.int64)
        self._sum = np.zeros(n)
        self._max = np.full(n, -np.inf)
        self._min = np.full(n, np.inf)
        self._over_count = np.zeros(n, dtype=np.int64)
        self._over_s = np.zeros(n)
        self._power_count = np.zeros(n, dtype=np.int64)
        self._power_s = np.zeros(n)
        self._feed_count = np.zeros(n, dtype=np.int64)
        self._maint_s = np.zeros(n)
        # chart bins in float32 (about 5 kB per sensor and day at 5-minute bins)
        self._bin_max = np.full((bins, n), -np.inf, dtype=np.float32)
        self._bin_min = np.full((bins, n), np.inf, dtype=np.float32)
        self._bin_sum = np.zeros((bins, n), dtype=np.float32)
        self._bin_n = np.zeros((bins, n), dtype=np.int32)
        self._bin_maint = np.zeros((bins, n), dtype=np.bool_)
        # episodes running at midnight count again in the new day
        self._prev_over[:] = False
        self._prev_power[:] = False
        self._prev_feed[:] = False

    def _n_bins(self) -> int:
        return math.ceil(25 * 3600 / self.bin_s)  # a 25-hour day (DST) at most

    def _begin(self, now: float) -> None:
        self.day = local_day(now, self.zone)
        self.start, self.end = day_bounds(self.day, self.zone)
        self._reset_day()

    # -- per tick ---------------------------------------------------------------------------
    def update(  # noqa: PLR0917 (the engine's tick arrays, passed through)
        self,
        now: float,
        values: F64,
        quality: U8,
        new_sample: BoolArray,
        eff: npt.NDArray[np.int8],
        device_maintenance: BoolArray,
    ) -> DailyStats | None:
        """Add one tick. Returns the finished previous day when ``now`` is past its midnight."""
        finished = None
        if self.day is None:
            self._begin(now)
        elif now >= self.end:
            if self._last is not None and self.end - self._last <= self.max_gap_s:
                self._add_durations(self.end - self._last)
                self._last = self.end
            finished = self.snapshot(complete=True)
            self._begin(now)
            if self._last is not None and self._last < self.start:
                self._last = None  # the gateway was down over midnight
        dt_s = 0.0 if self._last is None else now - self._last
        if not 0.0 <= dt_s <= self.max_gap_s:
            dt_s = 0.0
        self._last = now

        maintenance = device_maintenance[self._device]
        over = np.zeros(self.size, dtype=np.bool_)
        over[self._over_sensor[eff[self._over_rows] != 0]] = True
        power = np.zeros(self.size, dtype=np.bool_)
        at_power = (eff[self._power_rows] >= self._power_code) & (self._power_code > 0)
        power[self._power_sensor[at_power]] = True
        feed = np.zeros(self.size, dtype=np.bool_)
        feed[self._feed_sensor[eff[self._feed_rows] != 0]] = True
        over &= ~maintenance
        power &= ~maintenance
        feed &= ~maintenance

        self._over_count += over & ~self._prev_over
        self._power_count += power & ~self._prev_power
        self._feed_count += feed & ~self._prev_feed
        self._prev_over, self._prev_power, self._prev_feed = over, power, feed
        self._maintenance = maintenance
        self._add_durations(dt_s)
        b = min(int((now - self.start) // self.bin_s), self._bin_n.shape[0] - 1)
        self._bin_maint[b] |= maintenance

        v = values[self._point]
        take = new_sample[self._point] & (quality[self._point] == GOOD) & ~maintenance
        take &= np.isfinite(v)
        if take.any():
            v = np.where(take, v, 0.0)
            self._samples += take
            self._sum += v
            np.maximum(self._max, np.where(take, v, -np.inf), out=self._max)
            np.minimum(self._min, np.where(take, v, np.inf), out=self._min)
            np.maximum(self._bin_max[b], np.where(take, v, -np.inf), out=self._bin_max[b])
            np.minimum(self._bin_min[b], np.where(take, v, np.inf), out=self._bin_min[b])
            self._bin_sum[b] += v
            self._bin_n[b] += take
        return finished

    def _add_durations(self, dt_s: float) -> None:
        if dt_s <= 0.0:
            return
        self.covered_s += dt_s
        self._over_s += self._prev_over * dt_s
        self._power_s += self._prev_power * dt_s
        self._maint_s += self._maintenance * dt_s

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self, *, complete: bool = False) -> DailyStats:
        """The day so far (``complete`` marks a day that reached its midnight)."""
        if self.day is None:
            raise ValueError("no tick yet: the accumulator has no day")
        n_bins = max(1, math.ceil((self.end - self.start) / self.bin_s))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._samples > 0, self._sum / np.maximum(self._samples, 1), np.nan)
            bin_n = self._bin_n[:n_bins]
            chart_mean = np.where(
                bin_n > 0, self._bin_sum[:n_bins] / np.maximum(bin_n, 1), np.float32(np.nan)
            )
        has = self._samples > 0
        return DailyStats(
            day=self.day,
            start=self.start,
            end=self.end,
            bin_s=self.bin_s,
            sensors=self.sensors,
            covered_s=self.covered_s,
            complete=complete,
            stats={
                "samples": self._samples.copy(),
                "mean": mean,
                "max": np.where(has, self._max, np.nan),
                "min": np.where(has, self._min, np.nan),
                "over_count": self._over_count.copy(),
                "over_s": self._over_s.copy(),
                "power_off_count": self._power_count.copy(),
                "power_off_s": self._power_s.copy(),
                "feed_abnormal_count": self._feed_count.copy(),
                "maintenance_s": self._maint_s.copy(),
            },
            chart_max=np.where(bin_n > 0, self._bin_max[:n_bins], np.float32(np.nan)),
            chart_min=np.where(bin_n > 0, self._bin_min[:n_bins], np.float32(np.nan)),
            chart_mean=chart_mean.astype(np.float32),
            chart_maintenance=self._bin_maint[:n_bins].copy(),
            running={
                "over": self._prev_over.copy(),
                "power_off": self._prev_power.copy(),
                "feed_abnormal": self._prev_feed.copy(),
            },
        )

    def restore(self, saved: DailyStats, now: float) -> DailyStats | None:
        """Continue the saved day after a restart. Sensors are matched by (device, point); new
        sensors start empty. Returns the saved day, marked complete, when ``now`` is past its
        midnight (the caller reports it), else None."""
        if now >= saved.end:
            saved.complete = True
            return saved
        self.day, self.start, self.end = saved.day, saved.start, saved.end
        self._reset_day()
        self.covered_s = saved.covered_s
        where = {(s.device, s.point): i for i, s in enumerate(saved.sensors)}
        mine = np.array([where.get((s.device, s.point), -1) for s in self.sensors], dtype=np.intp)
        ok = mine >= 0
        src = mine[ok]
        st = saved.stats
        self._samples[ok] = st["samples"][src]
        self._sum[ok] = np.nan_to_num(st["mean"][src]) * st["samples"][src]
        self._max[ok] = np.where(np.isnan(st["max"][src]), -np.inf, st["max"][src])
        self._min[ok] = np.where(np.isnan(st["min"][src]), np.inf, st["min"][src])
        for name, arr in (
            ("over_count", self._over_count),
            ("over_s", self._over_s),
            ("power_off_count", self._power_count),
            ("power_off_s", self._power_s),
            ("feed_abnormal_count", self._feed_count),
            ("maintenance_s", self._maint_s),
        ):
            arr[ok] = st[name][src]
        for name, mask in (
            ("over", self._prev_over),
            ("power_off", self._prev_power),
            ("feed_abnormal", self._prev_feed),
        ):
            if name in saved.running:
                mask[ok] = saved.running[name][src]
        if saved.bin_s == self.bin_s:
            bins = min(saved.chart_max.shape[0], self._bin_max.shape[0])
            cmax, cmin, cmean = (
                a[:bins, src] for a in (saved.chart_max, saved.chart_min, saved.chart_mean)
            )
            seen = ~np.isnan(cmean)
            cols = np.flatnonzero(ok)
            self._bin_max[:bins, cols] = np.where(seen, cmax, -np.inf)
            self._bin_min[:bins, cols] = np.where(seen, cmin, np.inf)
            self._bin_n[:bins, cols] = seen  # the mean is kept as one sample of it
            self._bin_sum[:bins, cols] = np.where(seen, cmean, 0.0)
            self._bin_maint[:bins, cols] = saved.chart_maintenance[:bins, src]
        return None
