"""Rate of change: ring buffers of recent samples, least-squares slope, time-to-limit forecast."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fieldmodel.quality import GOOD

from ._arrays import ACTIVE, F64, I8, U8, BoolArray, IdxArray
from ._binding import Binding, TrendSpec
from ._condition import PredicateTable

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

    A sample enters a row's window when the engine sees a new ``sample_ts`` for its point with
    good quality; it leaves when it is older than ``now - window_s`` or when the ring is full and a
    newer sample takes its slot (the window holds at most ``max_samples`` samples). A sample that
    has left never returns, even if the clock is stepped back.

    The least-squares sums (count, Σt, Σv, Σt², Σtv, with t relative to an origin re-based every
    hour) are kept up to date as samples enter and leave, so a tick costs a few operations per row
    rather than per sample. The slope is the same whatever the origin: numerator and denominator
    of the least-squares formula do not change when every t is shifted by the same amount.

    The alarm is raised when the slope (per minute) reaches ``rise_per_min`` or falls to
    ``-fall_per_min``, or when the forecast time until the current value, moving at that slope,
    reaches the forecast limit is within ``within_s`` — and every test of the rule's
    ``conditions`` holds (a row whose condition points are not good holds its level). Fewer than
    ``min_samples`` samples in the window means no trend (level NONE); a not-good current sample
    holds the level.
    """

    REBASE_S = 3600.0

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
        self._conditions = PredicateTable([s.conditions for s in specs])
        self._ring_t = np.zeros((n, width))
        self._ring_v = np.zeros((n, width))
        self._head = np.zeros(n, dtype=np.intp)
        self._tail = np.zeros(n, dtype=np.intp)
        self._count = np.zeros(n, dtype=np.int64)
        self._sum_t = np.zeros(n)
        self._sum_v = np.zeros(n)
        self._sum_tt = np.zeros(n)
        self._sum_tv = np.zeros(n)
        self._origin: float | None = None
        self.forecast: F64 = np.full(n, np.nan)

    def _add(self, rows: IdxArray, t: F64, v: F64, sign: float) -> None:
        assert self._origin is not None
        tau = t - self._origin
        self._sum_t[rows] += sign * tau
        self._sum_v[rows] += sign * v
        self._sum_tt[rows] += sign * (tau * tau)
        self._sum_tv[rows] += sign * (tau * v)

    def _drop_oldest(self, rows: IdxArray) -> None:
        slots = self._tail[rows]
        self._add(rows, self._ring_t[rows, slots], self._ring_v[rows, slots], -1.0)
        self._tail[rows] = (slots + 1) % self._capacity[rows]
        self._count[rows] -= 1
        empty = rows[self._count[rows] == 0]
        for sums in (self._sum_t, self._sum_v, self._sum_tt, self._sum_tv):
            sums[empty] = 0.0

    def push(
        self, now: float, new_sample: BoolArray, values: F64, quality: U8, sample_ts: F64
    ) -> None:
        """Enter new good samples (``new_sample`` is per point), then drop samples that left
        the window."""
        if self.size == 0:
            return
        if self._origin is None:
            self._origin = now
        elif abs(now - self._origin) > self.REBASE_S:
            self._rebase(now)
        p = self.point_index
        v = values[p]
        rows = np.flatnonzero(new_sample[p] & (quality[p] == GOOD) & ~np.isnan(v))
        if rows.size:
            full = rows[self._count[rows] == self._capacity[rows]]
            if full.size:
                self._drop_oldest(full)
            t = sample_ts[p[rows]]
            v = v[rows]
            pos = self._head[rows]
            self._ring_t[rows, pos] = t
            self._ring_v[rows, pos] = v
            self._head[rows] = (pos + 1) % self._capacity[rows]
            self._count[rows] += 1
            self._add(rows, t, v, 1.0)
        horizon = now - self._window
        rows = np.flatnonzero(self._count > 0)
        while rows.size:  # at most max_samples rounds; usually one
            rows = rows[self._ring_t[rows, self._tail[rows]] < horizon[rows]]
            if rows.size == 0:
                break
            self._drop_oldest(rows)
            rows = rows[self._count[rows] > 0]

    def _rebase(self, origin: float) -> None:
        """Move the time origin and recompute the sums from the samples in the windows."""
        self._origin = origin
        width = self._ring_t.shape[1]
        slot = np.arange(width)[None, :]
        cap = self._capacity[:, None]
        inside = (slot < cap) & ((slot - self._tail[:, None]) % cap < self._count[:, None])
        tau = np.where(inside, self._ring_t - origin, 0.0)
        v = np.where(inside, self._ring_v, 0.0)
        self._sum_t = tau.sum(axis=1)
        self._sum_v = v.sum(axis=1)
        self._sum_tt = (tau * tau).sum(axis=1)
        self._sum_tv = (tau * v).sum(axis=1)

    def evaluate(self, values: F64, quality: U8, *, eff: I8, raw: I8, value_out: F64) -> None:
        """Raw level per row into ``raw``, slope per minute into ``value_out``, forecast seconds
        into :attr:`forecast` (NaN where there is none)."""
        if self.size == 0:
            return
        n = self._count
        sum_t, sum_v = self._sum_t, self._sum_v
        den = n * self._sum_tt - sum_t * sum_t
        ok = (n >= self._min_samples) & (den > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope_s = np.where(ok, (n * self._sum_tv - sum_t * sum_v) / den, np.nan)
        slope_min = slope_s * 60.0
        p = self.point_index
        current = values[p]
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = (self._fc_limit - current) / slope_s
        toward = np.sign(slope_s) == self._fc_dir
        eta = np.where(toward, np.maximum(eta, 0.0), np.nan)
        hit = (slope_min >= self._rise) | (slope_min <= self._fall)
        hit |= self._fc_alarm & (eta <= self._fc_within)
        conditions_hold, conditions_good = self._conditions.evaluate(values, quality)
        hit &= conditions_hold
        level = np.where(hit, ACTIVE, np.int8(0)).astype(np.int8)
        hold = (quality[p] != GOOD) | np.isnan(current) | ~conditions_good
        np.copyto(raw, np.where(hold, eff, level))
        np.copyto(value_out, slope_min)
        self.forecast = eta
