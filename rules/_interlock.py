"""Power-off interlock per area: demand, feed verification, and what the control room sees.

Alarms whose rule demands power-off (a methane level with ``power_off: true``, a fault-lockout
rule) put their device's ``area`` in power-off while their effective level is at or above the
power-off level. The demand of every area is one ``bincount`` over those rows per tick.

Feed checks (``feed_check`` rules) compare each feed point with its area's demand: power still on
(value 1) while the area is demanded off is raised after ``for_s`` (``feed_abnormal``), whatever
any relay reports. A feed point going from on to off in an area with no demand is an
*unexpected power loss* event.

The state of an area — demanded or not, the alarm ids that demand it, the feed seen, since when —
is reported when it changes (and for every area at the first tick), as :class:`AreaInterlock`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from fieldmodel.quality import GOOD

from ._arrays import ACTIVE, F64, I8, U8, BoolArray, IdxArray
from ._binding import Binding, BlockKind, FeedSpec

__all__ = ["FEED_STATES", "AreaInterlock", "InterlockBlock", "PowerLossEvent"]

#: Feed of an area: some feed point reads on; every feed point reads off; not known.
FEED_STATES: Final = ("off", "on", "unknown")
_FEED_OFF, _FEED_ON, _FEED_UNKNOWN = 0, 1, 2


@dataclass(frozen=True, slots=True)
class AreaInterlock:
    """The power-off state of one area (what ``P/interlock/{area}`` carries).

    ``causes`` are the ids of the alarms demanding power-off, in row order; ``feed`` is ``"on"``
    when any feed point of the area reads on, ``"off"`` when all read off, ``"unknown"`` when
    the area has no feed point or one without a good value and none on; ``since`` is when the
    current ``power_off`` value began (the first tick, for an area never demanded off).
    """

    area: str
    ts: float
    power_off: bool
    causes: tuple[str, ...]
    feed: str
    since: float


@dataclass(frozen=True, slots=True)
class PowerLossEvent:
    """Feed points of an area went from on to off while no power-off was demanded there."""

    area: str
    ts: float
    points: tuple[str, ...]

    @property
    def message(self) -> str:
        return (
            f"unexpected power loss in area {self.area}: feed off at {', '.join(self.points)} "
            "with no power-off demanded"
        )


class InterlockBlock:
    """Per-area power-off demand and feed verification over the engine's rows."""

    def __init__(self, bindings: Sequence[Binding], feed: slice) -> None:
        areas = sorted(
            {
                b.area
                for b in bindings
                if b.area is not None and (b.power_off_code or b.block == BlockKind.FEED)
            }
        )
        self.areas: tuple[str, ...] = tuple(areas)
        index = {a: i for i, a in enumerate(areas)}
        n = len(areas)
        po = [i for i, b in enumerate(bindings) if b.power_off_code and b.area is not None]
        self._po_rows: IdxArray = np.array(po, dtype=np.intp)
        self._po_code: I8 = np.array([bindings[r].power_off_code for r in po], dtype=np.int8)
        self._po_area: IdxArray = np.array([index[bindings[r].area] for r in po], dtype=np.intp)  # type: ignore[index]
        self._po_ids = [bindings[r].alarm_id for r in po]
        order = np.argsort(self._po_area, kind="stable")
        self._area_rows = order  # positions into the po arrays, grouped by area
        self._area_start = np.searchsorted(self._po_area[order], np.arange(n + 1), side="left")
        feed_rows = bindings[feed]
        specs = [b.spec for b in feed_rows]
        assert all(isinstance(s, FeedSpec) for s in specs)
        self.feed_point: IdxArray = np.array(
            [s.point_index for s in specs if isinstance(s, FeedSpec)], dtype=np.intp
        )
        self._feed_area: IdxArray = np.array(
            [index[b.area] for b in feed_rows if b.area is not None], dtype=np.intp
        )
        self._feed_ids = [f"{b.device}/{b.point}" for b in feed_rows]
        self._feed_count = np.bincount(self._feed_area, minlength=n)
        self.demand: BoolArray = np.zeros(n, dtype=np.bool_)
        self._active: BoolArray = np.zeros(len(po), dtype=np.bool_)
        self._shown_active: BoolArray = np.zeros(len(po), dtype=np.bool_)
        self._feed_on: BoolArray = np.zeros(len(feed_rows), dtype=np.bool_)
        self._feed_state: I8 = np.full(n, -1, dtype=np.int8)
        self._shown_demand: BoolArray = np.zeros(n, dtype=np.bool_)
        self._since: F64 = np.full(n, np.nan)
        self._causes: list[tuple[str, ...]] = [()] * n

    @property
    def size(self) -> int:
        return len(self.areas)

    def compute_demand(self, eff: I8, maintenance: BoolArray) -> None:
        """The demand of every area from the alarms' effective levels (after delays); rows whose
        device is in maintenance (``maintenance``, per row: calibration, 标校) demand nothing."""
        if self.size == 0:
            return
        rows = self._po_rows
        self._active = (eff[rows] >= self._po_code) & ~maintenance[rows]
        hits = np.bincount(self._po_area, weights=self._active, minlength=self.size)
        self.demand = hits > 0

    def evaluate_feed(
        self, values: F64, quality: U8, maintenance: BoolArray, *, eff: I8, raw: I8, value_out: F64
    ) -> None:
        """Raw levels of the feed-check rows: active while demanded off and the feed reads on;
        a feed point without a good value holds its level while the demand lasts; a feed row in
        maintenance (``maintenance``, per feed row) is not checked."""
        if self.feed_point.size == 0:
            return
        v = values[self.feed_point]
        good = (quality[self.feed_point] == GOOD) & ~np.isnan(v)
        on = good & (v != 0)
        checked = self.demand[self._feed_area] & ~maintenance
        level = np.where(checked & on, ACTIVE, np.int8(0)).astype(np.int8)
        np.copyto(raw, np.where(checked & ~good, eff, level))
        np.copyto(value_out, v)

    def update(
        self, now: float, values: F64, quality: U8
    ) -> tuple[list[AreaInterlock], list[PowerLossEvent]]:
        """Area states that changed this tick (all of them at the first tick) and the
        unexpected power losses seen."""
        if self.size == 0:
            return [], []
        n = self.size
        v = values[self.feed_point]
        good = (quality[self.feed_point] == GOOD) & ~np.isnan(v)
        on = good & (v != 0)
        off = good & (v == 0)
        any_on = np.bincount(self._feed_area, weights=on, minlength=n) > 0
        all_off = np.bincount(self._feed_area, weights=off, minlength=n) == self._feed_count
        state = np.where(
            any_on, _FEED_ON, np.where(all_off & (self._feed_count > 0), _FEED_OFF, _FEED_UNKNOWN)
        ).astype(np.int8)
        lost = self._feed_on & off & ~self.demand[self._feed_area]
        self._feed_on = on
        events: list[PowerLossEvent] = []
        if lost.any():
            by_area: dict[int, list[str]] = {}
            for row in np.flatnonzero(lost).tolist():
                by_area.setdefault(int(self._feed_area[row]), []).append(self._feed_ids[row])
            events = [
                PowerLossEvent(self.areas[a], now, tuple(points))
                for a, points in sorted(by_area.items())
            ]
        first = np.isnan(self._since)
        flipped = self.demand != self._shown_demand
        dirty = first | flipped | (state != self._feed_state)
        cause_rows = np.flatnonzero(self._active != self._shown_active)
        if cause_rows.size:
            dirty[self._po_area[cause_rows]] = True
        self._since[first | flipped] = now
        self._shown_demand = self.demand.copy()
        self._feed_state = state
        out: list[AreaInterlock] = []
        for a in np.flatnonzero(dirty).tolist():
            rows = self._area_rows[self._area_start[a] : self._area_start[a + 1]]
            causes = tuple(self._po_ids[r] for r in rows.tolist() if self._active[r])
            self._causes[a] = causes
            out.append(
                AreaInterlock(
                    area=self.areas[a],
                    ts=now,
                    power_off=bool(self.demand[a]),
                    causes=causes,
                    feed=FEED_STATES[int(state[a])],
                    since=float(self._since[a]),
                )
            )
        self._shown_active = self._active.copy()
        return out, events

    def states(self, now: float) -> list[AreaInterlock]:
        """The current state of every area (e.g. to republish retained topics)."""
        return [
            AreaInterlock(
                area=area,
                ts=now,
                power_off=bool(self._shown_demand[a]),
                causes=self._causes[a],
                feed=FEED_STATES[int(self._feed_state[a])]
                if self._feed_state[a] >= 0
                else "unknown",
                since=float(self._since[a]) if not np.isnan(self._since[a]) else now,
            )
            for a, (area, state) in enumerate(
                zip(self.areas, self._feed_state.tolist(), strict=True)
            )
        ]
