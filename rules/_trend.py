"""Rate of change: ring buffers of recent samples, least-squares slope, time-to-limit forecast."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._arrays import ACTIVE, F64, I8, U8, BoolArray, IdxArray
from ._binding import Binding, TrendSpec

__all__ = ["TrendBlock", "least_squares_slope"]


def least_squares_slope(
    n: float, sum_t: float, sum_v: float, sum_tt: float, sum_tv: float
) -> float:
    """Slope of the least-squares line through ``n`` samples from their sums (``t`` relative to
    the evaluation time). The one formula both implementations use; NaN when undefined."""
    den = n * sum_tt - sum_t * sum_t
    if not den > 0:
        return float("nan")
    return (n * sum_tv - sum_t * sum_v) / den


class TrendBlock:
    """Rate-of-change rows with one ring buffer (row × ``max_samples``) each.

    A sample enters a row's ring when the engine sees a new ``sample_ts`` for its point with good
    quality. At each tick the samples with ``t >= now - window_s`` give the least-squares slope
    (per minute); the alarm is raised when the slope reaches ``rise_per_min`` (or falls to
    ``-fall_per_min``), or when the forecast time until the current value, moving at that slope,
    reaches the forecast limit is within ``within_s``. Fewer than ``min_samples`` samples in the
    window means no trend (level NONE); a not-good current sample holds the level.
    """

    def __init__(self, bindings: Sequence[Binding]) -> None:
        n = len(bindings)
        self.size = n
        specs: list[TrendSpec] = []
        for binding in bindings:
            assert isinstance(binding.spec, TrendSpec)
            specs.append(binding.spec)
        width = max((s.max_samples for s in specs), default=1)
        self.point_index: IdxArray = np.array([s.point_index for s in specs], dtype=np.intp)
        self._window = np.array([s.window_s for s in specs], dtype=np.float64)
        self._min_samples = np.array([s.min_samples for s in specs], dtype=np.int64)
        self._capacity = np.array([s.max_samples for s in specs], dtype=np.intp)
        nan = np.nan
        self._rise = np.array(
            [nan if s.rise_per_min is None else s.rise_per_min for s in specs], dtype=np.float64
        )
        self._fall = np.array(
            [nan if s.fall_per_min is None else -s.fall_per_min for s in specs],
            dtype=np.float64,
        )
        self._fc_limit = np.array(
            [nan if s.forecast_limit is None else s.forecast_limit for s in specs],
            dtype=np.float64,
        )
        self._fc_dir = np.array([s.forecast_direction for s in specs], dtype=np.float64)
        self._fc_within = np.array([s.forecast_within_s for s in specs], dtype=np.float64)
        self._fc_alarm = self._fc_within > 0
        self._ring_t = np.full((n, width), np.nan)
        self._ring_v = np.zeros((n, width))
        self._head = np.zeros(n, dtype=np.intp)
        self.forecast: F64 = np.full(n, np.nan)

    def push(self, new_sample: BoolArray, values: F64, quality: U8, sample_ts: F64) -> None:
        """Append the new good samples (``new_sample`` is per point) to their rows' rings."""
        if self.size == 0:
            return
        p = self.point_index
        v = values[p]
        take = new_sample[p] & (quality[p] == 0) & ~np.isnan(v)
        rows = np.flatnonzero(take)
        if rows.size == 0:
            return
        pos = self._head[rows]
        self._ring_t[rows, pos] = sample_ts[p[rows]]
        self._ring_v[rows, pos] = v[rows]
        self._head[rows] = (pos + 1) % self._capacity[rows]

    def evaluate(
        self, now: float, values: F64, quality: U8, *, eff: I8, raw: I8, value_out: F64
    ) -> None:
        """Raw level per row into ``raw``, slope per minute into ``value_out``, forecast seconds
        into :attr:`forecast` (NaN where there is none)."""
        if self.size == 0:
            return
        ring_t = self._ring_t
        inside = ring_t >= (now - self._window)[:, None]
        dt = np.where(inside, ring_t - now, 0.0)
        vv = np.where(inside, self._ring_v, 0.0)
        n = inside.sum(axis=1)
        sum_t = dt.sum(axis=1)
        sum_v = vv.sum(axis=1)
        sum_tt = np.einsum("ij,ij->i", dt, dt)
        sum_tv = np.einsum("ij,ij->i", dt, vv)
        den = n * sum_tt - sum_t * sum_t
        ok = (n >= self._min_samples) & (den > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope_s = np.where(ok, (n * sum_tv - sum_t * sum_v) / den, np.nan)
        slope_min = slope_s * 60.0
        p = self.point_index
        current = values[p]
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = (self._fc_limit - current) / slope_s
        toward = np.sign(slope_s) == self._fc_dir
        eta = np.where(toward, np.maximum(eta, 0.0), np.nan)
        hit = (slope_min >= self._rise) | (slope_min <= self._fall)
        hit |= self._fc_alarm & (eta <= self._fc_within)
        level = np.where(hit, ACTIVE, np.int8(0)).astype(np.int8)
        hold = (quality[p] != 0) | np.isnan(current)
        np.copyto(raw, np.where(hold, eff, level))
        np.copyto(value_out, slope_min)
        self.forecast = eta
