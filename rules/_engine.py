"""The rules engine: compiles bound rules into arrays and evaluates them once per tick."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ._arrays import F64, I8, BoolArray
from ._availability import CommBlock, StaleBlock
from ._binding import BindingPlan, BlockKind, bind
from ._condition import ConditionBlock
from ._errors import InvalidCommand, UnknownAlarm
from ._flood import FloodDetector
from ._interlock import AreaInterlock, InterlockBlock, PowerLossEvent
from ._lifecycle import AlarmBook
from ._model import AlarmState, AlarmTransition, FloodEvent, PointRef, State
from ._pack import RulePack
from ._threshold import ThresholdBlock
from ._trend import TrendBlock

__all__ = ["MAX_SHELVE_MINUTES", "RuleEngine"]

#: Longest shelve an operator may request (one day); shorter shelves are the norm.
MAX_SHELVE_MINUTES: Final = 24 * 60


class RuleEngine:
    """Vectorized alarm evaluation over the gateway's point table.

    ``points[i]`` describes row ``i`` of the arrays passed to :meth:`tick`. Rules from ``packs``
    bind at construction (by profile kind, point name and device tags) and compile into arrays;
    ``overrides`` (``{device: {rule_id: {level_or_key: value}}}``) replace pack limits for one
    device. Raises :class:`RulesConfigError` for an override naming an unknown device, rule or
    level, or one that breaks the level ordering.

    :meth:`tick` runs a fixed sequence of array operations per rule type — no Python loop over
    points or rules — and builds transition objects only for alarms whose state changed. Time is
    given by the caller (``now``, epoch seconds), never read from a clock.
    """

    def __init__(
        self,
        points: Sequence[PointRef],
        packs: Sequence[RulePack],
        overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        n_devices: int | None = None,
        limits_reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.plan: BindingPlan = bind(points, packs, overrides, n_devices, limits_reasons)
        plan = self.plan
        self.n_points = plan.n_points
        self.n_devices = plan.n_devices
        self._slices = {block: plan.block_slice(block) for block in BlockKind.ALL}
        rows = plan.bindings
        self._threshold = ThresholdBlock(rows[self._slices[BlockKind.THRESHOLD]])
        self._trend = TrendBlock(rows[self._slices[BlockKind.TREND]])
        self._stale = StaleBlock(rows[self._slices[BlockKind.STALE]])
        self._condition = ConditionBlock(rows[self._slices[BlockKind.CONDITION]])
        self._comm = CommBlock(rows[self._slices[BlockKind.COMM]])
        self._interlock = InterlockBlock(rows, self._slices[BlockKind.FEED])
        self._before_feed = slice(0, self._slices[BlockKind.FEED].start)
        self._book = AlarmBook(rows, plan.n_devices)
        self._has_comm: BoolArray = np.zeros(plan.n_devices, dtype=np.bool_)
        self._has_comm[self._comm.device_index] = True
        self._online: BoolArray = np.ones(plan.n_devices, dtype=np.bool_)
        self._last_seen: F64 = np.full(plan.n_points, -np.inf)
        self._raw: I8 = np.zeros(len(rows), dtype=np.int8)
        self._row_of = {b.alarm_id: i for i, b in enumerate(rows)}
        self._start: float | None = None
        self._flood = FloodDetector()
        self._flood_events: list[FloodEvent] = []
        self._interlock_changes: list[AreaInterlock] = []
        self._power_losses: list[PowerLossEvent] = []

    # -- introspection ---------------------------------------------------------------------
    @property
    def alarm_ids(self) -> tuple[str, ...]:
        """Ids of every alarm the engine evaluates, in row order."""
        return tuple(b.alarm_id for b in self.plan.bindings)

    @property
    def in_flood(self) -> bool:
        """Whether an alarm flood is in progress."""
        return self._flood.active

    @property
    def areas(self) -> tuple[str, ...]:
        """Power-off areas: ``area`` tags of devices with power-off or feed-check rules."""
        return self._interlock.areas

    def take_interlock_changes(self) -> list[AreaInterlock]:
        """Areas whose power-off state, causes or feed changed since the last call (every area
        after the first tick), oldest first."""
        changes, self._interlock_changes = self._interlock_changes, []
        return changes

    def take_power_losses(self) -> list[PowerLossEvent]:
        """Unexpected power losses (feed off with no demand) since the last call."""
        events, self._power_losses = self._power_losses, []
        return events

    def interlocks(self, now: float) -> list[AreaInterlock]:
        """The current state of every area (e.g. to republish after a reconnect)."""
        return self._interlock.states(now)

    def take_flood_events(self) -> list[FloodEvent]:
        """Flood start/end events since the last call (oldest first)."""
        events, self._flood_events = self._flood_events, []
        return events

    def active_alarms(self) -> list[AlarmState]:
        """Every alarm whose displayed state is not NORMAL (for retained state), in row order."""
        book = self._book
        return [book.state_of(int(r)) for r in np.flatnonzero(book.shown != 0)]

    def state(self, alarm_id: str) -> AlarmState:
        """The current state of one alarm; raises :class:`UnknownAlarm`."""
        return self._book.state_of(self._row(alarm_id))

    # -- the hot path ----------------------------------------------------------------------
    def tick(
        self,
        now: float,
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
        sample_ts: npt.NDArray[np.float64],
        device_online: npt.NDArray[np.bool_],
    ) -> list[AlarmTransition]:
        """Evaluate every rule at time ``now`` and return the alarm transitions, in row order.

        ``values``/``quality``/``sample_ts`` have one entry per point (NaN value where never
        read; quality 0 good, 1 bad, 2 stale; ``sample_ts`` the epoch seconds of each point's
        latest sample), ``device_online`` one per device. New samples (``sample_ts`` greater
        than last seen) enter the trend ring buffers. Flood start/end events are queued for
        :meth:`take_flood_events`.
        """
        values = np.asarray(values, dtype=np.float64)
        quality = np.asarray(quality, dtype=np.uint8)
        sample_ts = np.asarray(sample_ts, dtype=np.float64)
        device_online = np.asarray(device_online, dtype=np.bool_)
        if values.shape != (self.n_points,) or quality.shape != (self.n_points,):
            raise ValueError(f"values and quality must have shape ({self.n_points},)")
        if sample_ts.shape != (self.n_points,) or device_online.shape != (self.n_devices,):
            raise ValueError(
                f"sample_ts must have shape ({self.n_points},), device_online ({self.n_devices},)"
            )
        now = float(now)
        if self._start is None:
            self._start = now
        book = self._book
        raw = self._raw
        s = self._slices

        new_sample = sample_ts > self._last_seen
        np.copyto(self._last_seen, sample_ts, where=new_sample)
        self._trend.push(now, new_sample, values, quality, sample_ts)

        thr = s[BlockKind.THRESHOLD]
        self._threshold.evaluate(
            values, quality, eff=book.eff[thr], raw=raw[thr], value_out=book.value[thr]
        )
        trend = s[BlockKind.TREND]
        self._trend.evaluate(
            values, quality, eff=book.eff[trend], raw=raw[trend], value_out=book.value[trend]
        )
        book.forecast[trend] = self._trend.forecast
        stale = s[BlockKind.STALE]
        self._stale.evaluate(
            now, self._start, quality, sample_ts, raw=raw[stale], value_out=book.value[stale]
        )
        cond = s[BlockKind.CONDITION]
        self._condition.evaluate(
            values, quality, eff=book.eff[cond], raw=raw[cond], value_out=book.value[cond]
        )
        comm = s[BlockKind.COMM]
        self._comm.evaluate(device_online, raw=raw[comm], value_out=book.value[comm])

        head = self._before_feed
        changed, previous = book.apply_delays(raw[head], now, head)
        interlock = self._interlock
        interlock.compute_demand(book.eff)
        feed = s[BlockKind.FEED]
        interlock.evaluate_feed(
            values, quality, eff=book.eff[feed], raw=raw[feed], value_out=book.value[feed]
        )
        fed, fed_previous = book.apply_delays(raw[feed], now, feed)
        if fed.size:
            changed = np.concatenate((changed, fed))
            previous = np.concatenate((previous, fed_previous))
        if changed.size:
            in_thr = changed < thr.stop
            rows = changed[in_thr]
            self._threshold.retune(rows - thr.start, book.eff[rows])
            book.note_level_changes(changed, previous)
        expired = book.expire_shelves(now)
        toggled = book.set_online(device_online, self._has_comm)
        dirty = changed  # sorted: rows come from flatnonzero
        if expired.size or toggled.size:
            dirty = np.unique(np.concatenate((changed, expired, toggled)))
        transitions = book.announce(dirty, now)
        areas, losses = interlock.update(now, values, quality)
        self._interlock_changes.extend(areas)
        self._power_losses.extend(losses)

        activations = sum(
            1
            for t in transitions
            if t.to_state is State.UNACK_ACTIVE and t.from_state is not State.UNACK_ACTIVE
        )
        event = self._flood.record(now, activations)
        if event is not None:
            self._flood_events.append(event)
        return transitions

    # -- operator commands -----------------------------------------------------------------
    def _row(self, alarm_id: str) -> int:
        row = self._row_of.get(alarm_id) if isinstance(alarm_id, str) else None
        if row is None:
            raise UnknownAlarm(str(alarm_id))
        return row

    def ack(self, alarm_id: str, user: str, now: float) -> list[AlarmTransition]:
        """Acknowledge an alarm. Raises :class:`UnknownAlarm`, or :class:`InvalidCommand` when
        the alarm is not awaiting acknowledgement (NORMAL or already acknowledged)."""
        row = self._row(alarm_id)
        now = float(now)
        if not self._book.acknowledge(row):
            raise InvalidCommand(alarm_id, "alarm is not awaiting acknowledgement")
        return self._book.announce(np.array([row], dtype=np.intp), now, user)

    def shelve(self, alarm_id: str, user: str, minutes: float, now: float) -> list[AlarmTransition]:
        """Shelve an alarm for ``minutes`` (0 < minutes ≤ :data:`MAX_SHELVE_MINUTES`).

        Shelving an already shelved alarm sets the new expiry. The shelve ends at the first tick
        at or after ``now + minutes * 60``; the alarm then shows unacknowledged if still active.
        Raises :class:`UnknownAlarm` or :class:`InvalidCommand`.
        """
        row = self._row(alarm_id)
        if self.plan.bindings[row].never_hidden:
            raise InvalidCommand(
                alarm_id, "a power-off or methane alarm cannot be shelved (it is never hidden)"
            )
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not 0 < minutes <= MAX_SHELVE_MINUTES  # also false for NaN and infinities
        ):
            raise InvalidCommand(
                alarm_id, f"shelve minutes must be a number in (0, {MAX_SHELVE_MINUTES}]"
            )
        now = float(now)
        self._book.shelve(row, now + float(minutes) * 60.0)
        return self._book.announce(np.array([row], dtype=np.intp), now, user)
