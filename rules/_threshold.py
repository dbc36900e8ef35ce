"""Vectorized multi-level threshold evaluation (LL/L/H/HH with reset values)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fieldmodel.quality import GOOD

from ._arrays import F64, I8, U8, IdxArray
from ._binding import Binding, ThresholdSpec
from ._model import Level

__all__ = ["ThresholdBlock"]


class ThresholdBlock:
    """Threshold rows, compiled into per-level limit and reset arrays.

    The comparison threshold of each level depends on the alarm's effective level (hysteresis):
    a level the alarm is in is left only below (above, for low levels) its reset value. Those
    thresholds are kept in ``_t_*`` arrays and updated only for rows whose level changed, so a tick
    costs one gather and four comparisons per row.

    Missing levels are filled so the arithmetic stays branch-free: a missing H takes the HH values
    (so H is true whenever HH is), a missing HH never triggers (+inf); likewise on the low side.
    """

    def __init__(self, bindings: Sequence[Binding]) -> None:
        n = len(bindings)
        self.size = n
        self.point_index: IdxArray = np.zeros(n, dtype=np.intp)
        inf = np.inf
        lim = {code: np.full(n, inf if code >= Level.H else -inf) for code in range(1, 5)}
        rst = {code: np.full(n, inf if code >= Level.H else -inf) for code in range(1, 5)}
        for i, binding in enumerate(bindings):
            spec = binding.spec
            assert isinstance(spec, ThresholdSpec)
            self.point_index[i] = spec.point_index
            levels = dict(spec.levels)
            for outer, inner in ((Level.H, Level.HH), (Level.L, Level.LL)):
                if outer not in levels and inner in levels:
                    levels[outer] = levels[inner]
            for code, (limit, reset) in levels.items():
                lim[code][i] = limit
                rst[code][i] = reset
        self._lim_l, self._lim_ll, self._lim_h, self._lim_hh = (lim[c] for c in range(1, 5))
        self._rst_l, self._rst_ll, self._rst_h, self._rst_hh = (rst[c] for c in range(1, 5))
        self._t_l = self._lim_l.copy()
        self._t_ll = self._lim_ll.copy()
        self._t_h = self._lim_h.copy()
        self._t_hh = self._lim_hh.copy()
        other = np.array([b.spec.magnitude_index for b in bindings], dtype=np.intp)  # type: ignore[union-attr]
        self._mag_rows: IdxArray = np.flatnonzero(other >= 0)
        self._mag_other: IdxArray = other[self._mag_rows]
        self._b = np.empty(n, dtype=np.bool_)
        self._acc = np.empty(n, dtype=np.int8)
        self._q = np.empty(n, dtype=np.uint8)

    def retune(self, rows: IdxArray, eff: I8) -> None:
        """Update comparison thresholds of ``rows`` (block-local) for their new levels ``eff``."""
        in_h = (eff == Level.H) | (eff == Level.HH)
        in_l = (eff == Level.L) | (eff == Level.LL)
        self._t_h[rows] = np.where(in_h, self._rst_h[rows], self._lim_h[rows])
        self._t_hh[rows] = np.where(eff == Level.HH, self._rst_hh[rows], self._lim_hh[rows])
        self._t_l[rows] = np.where(in_l, self._rst_l[rows], self._lim_l[rows])
        self._t_ll[rows] = np.where(eff == Level.LL, self._rst_ll[rows], self._lim_ll[rows])

    def evaluate(self, values: F64, quality: U8, *, eff: I8, raw: I8, value_out: F64) -> None:
        """Write the raw level of every row into ``raw`` and the compared value into
        ``value_out``; rows whose point is not good (or NaN) hold their effective level."""
        v = value_out
        np.take(values, self.point_index, out=v)
        mag = self._mag_rows
        if mag.size:  # two-axis rows compare the magnitude; a bad second axis holds the row
            second = values[self._mag_other]
            second = np.where(quality[self._mag_other] == GOOD, second, np.nan)
            v[mag] = np.hypot(v[mag], second)
        b, acc, q = self._b, self._acc, self._q
        # acc = 3*(v >= t_h) + (v >= t_hh) + (v <= t_l) + (v <= t_ll)  →  codes L=1 LL=2 H=3 HH=4
        np.greater_equal(v, self._t_h, out=b)
        np.multiply(b, np.int8(3), out=acc)
        np.greater_equal(v, self._t_hh, out=b)
        np.add(acc, b, out=acc)
        np.less_equal(v, self._t_l, out=b)
        np.add(acc, b, out=acc)
        np.less_equal(v, self._t_ll, out=b)
        np.add(acc, b, out=acc)
        # hold where the sample is not good: quality not GOOD, or NaN
        np.take(quality, self.point_index, out=q)
        np.not_equal(q, GOOD, out=b)
        b |= np.isnan(v)
        np.copyto(raw, acc)
        np.copyto(raw, eff, where=b)
