"""Discrete and duration rules: conjunctions of predicates over the points of one device.

A discrete rule has one predicate (bit set, code equal, code in a set, flag); a duration rule has
several (``all``, plus optionally ``any``: at least one of them) and an on-delay (``for_s``) — the
condition must hold that long. Both compile into one flat predicate table evaluated at once, then
reduced per row with ``logical_and.reduceat`` (and ``logical_or.reduceat`` for ``any``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from fieldmodel.quality import GOOD

from ._arrays import ACTIVE, F64, I8, U8, BoolArray, IdxArray
from ._binding import Binding, BoundPredicate, ConditionSpec

__all__ = ["INT_LIMIT", "ConditionBlock", "PredicateTable"]

#: Values at or beyond this magnitude count as 0 for bit tests (no undefined int casts).
INT_LIMIT: Final = float(2**62)


_COMPARE = {
    "eq": np.equal,
    "ne": np.not_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
}


class PredicateTable:
    """Rows of predicates, evaluated together: a row holds when every test of its ``all`` part
    holds and, if it has alternatives, at least one of those does; a row is good when every
    point it tests (and every referenced point) is good. Rows may be empty (they hold)."""

    def __init__(self, rows: Sequence[Sequence[BoundPredicate]]) -> None:
        self.size = len(rows)
        preds: list[BoundPredicate] = []
        starts: list[int] = []
        nonempty: list[int] = []
        for i, row in enumerate(rows):
            if row:
                nonempty.append(i)
                starts.append(len(preds))
                preds.extend(row)
        self._rows: IdxArray = np.array(nonempty, dtype=np.intp)
        self._starts: IdxArray = np.array(starts, dtype=np.intp)
        self._point = np.array([p.point_index for p in preds], dtype=np.intp)
        ref = np.array([p.ref_index for p in preds], dtype=np.intp)
        self._has_ref = ref >= 0
        self._ref = np.where(self._has_ref, ref, self._point)
        self._value = np.array([p.value for p in preds], dtype=np.float64)
        self._factor = np.array([p.factor for p in preds], dtype=np.float64)
        self._bit = np.array([max(p.bit, 0) for p in preds], dtype=np.int64)
        self._magnitude = np.array([p.magnitude for p in preds], dtype=np.bool_)
        self._alternative = np.array([p.alternative for p in preds], dtype=np.bool_)
        self._row_has_alternative = (
            np.logical_or.reduceat(self._alternative, self._starts)
            if preds
            else np.zeros(0, dtype=np.bool_)
        )
        width = max((len(p.values) for p in preds), default=1) or 1
        self._sets = np.full((len(preds), width), np.nan)
        for i, p in enumerate(preds):
            self._sets[i, : len(p.values)] = p.values
        ops = np.array([p.op for p in preds], dtype=object)
        self._by_op: dict[str, IdxArray] = {
            op: np.flatnonzero(ops == op)
            for op in (*_COMPARE, "bit_set", "bit_clear", "in", "not_in")
            if np.any(ops == op)
        }
        self._holds = np.zeros(len(preds), dtype=np.bool_)

    def evaluate(self, values: F64, quality: U8) -> tuple[BoolArray, BoolArray]:
        """``(holds, good)`` per row."""
        row_holds = np.ones(self.size, dtype=np.bool_)
        row_good = np.ones(self.size, dtype=np.bool_)
        if self._rows.size == 0:
            return row_holds, row_good
        v = values[self._point]
        good = (quality[self._point] == GOOD) & ~np.isnan(v)
        v = np.where(self._magnitude, np.abs(v), v)
        ref_v = values[self._ref]
        good &= ~self._has_ref | ((quality[self._ref] == GOOD) & ~np.isnan(ref_v))
        rhs = np.where(self._has_ref, ref_v * self._factor, self._value)
        holds = self._holds
        for op, idx in self._by_op.items():
            if op in _COMPARE:
                holds[idx] = _COMPARE[op](v[idx], rhs[idx])
            elif op in ("bit_set", "bit_clear"):
                x = v[idx]
                as_int = np.where(np.abs(x) < INT_LIMIT, x, 0.0).astype(np.int64)
                bit = ((as_int >> self._bit[idx]) & 1) == 1
                holds[idx] = bit if op == "bit_set" else ~bit
            else:
                member = (v[idx, None] == self._sets[idx]).any(axis=1)
                holds[idx] = member if op == "in" else ~member
        # every test of `all` holds and, if the row has `any`, one of those does
        all_hold = np.logical_and.reduceat(holds | self._alternative, self._starts)
        any_holds = np.logical_or.reduceat(holds & self._alternative, self._starts)
        row_holds[self._rows] = all_hold & (any_holds | ~self._row_has_alternative)
        row_good[self._rows] = np.logical_and.reduceat(good, self._starts)
        return row_holds, row_good


class ConditionBlock:
    """Condition rows (discrete and duration rules). A row whose points are not all good (or
    whose referenced points are not) holds its level."""

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self.size = len(bindings)
        rows: list[tuple[BoundPredicate, ...]] = []
        report: list[int] = []
        for binding in bindings:
            spec = binding.spec
            assert isinstance(spec, ConditionSpec)
            rows.append(spec.predicates)
            report.append(spec.report_index)
        self._table = PredicateTable(rows)
        self.report_index: IdxArray = np.array(report, dtype=np.intp)

    def evaluate(self, values: F64, quality: U8, *, eff: I8, raw: I8, value_out: F64) -> None:
        if self.size == 0:
            return
        row_holds, row_good = self._table.evaluate(values, quality)
        level = np.where(row_holds, ACTIVE, np.int8(0)).astype(np.int8)
        np.copyto(raw, np.where(row_good, level, eff))
        np.copyto(value_out, values[self.report_index])
