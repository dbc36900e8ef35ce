"""The rules engine: compiles bound rules into arrays and evaluates them once per tick."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ._arrays import F64, I8, BoolArray, IdxArray
from ._availability import CommBlock, StaleBlock
from ._binding import Binding, BindingPlan, BlockKind, bind
from ._binding._overrides import Overrides
from ._condition import ConditionBlock
from ._daily import DEFAULT_BIN_S, DailyAccumulator, DailyStats, SensorRef
from ._errors import InvalidCommand, RulesConfigError, UnknownAlarm, UnknownDevice
from ._exposure import ExposureBlock, ShiftExposure, ShiftSchedule, load_state, save_state
from ._flood import FloodDetector
from ._interlock import AreaInterlock, InterlockBlock, PowerLossEvent
from ._lifecycle import AlarmBook
from ._model import (
    AlarmState,
    AlarmTransition,
    FloodEvent,
    MaintenanceEvent,
    PointRef,
    State,
)
from ._pack import RulePack
from ._threshold import ThresholdBlock
from ._trend import TrendBlock

__all__ = ["MAX_MAINTENANCE_MINUTES", "MAX_SHELVE_MINUTES", "RuleEngine"]

#: Longest shelve an operator may request (one day); shorter shelves are the norm.
MAX_SHELVE_MINUTES: Final = 24 * 60
#: Longest maintenance an operator may start (one 8-hour shift): a forgotten maintenance must not
#: take a device's alarms out of service for longer than the shift that started it.
MAX_MAINTENANCE_MINUTES: Final = 8 * 60


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
        overrides: Overrides | None = None,
        n_devices: int | None = None,
        *,
        limits_reasons: Mapping[str, str] | None = None,
        shifts: ShiftSchedule | None = None,
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
        self._exposure = ExposureBlock(rows[self._slices[BlockKind.EXPOSURE]], shifts)
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
        self._device_ids: tuple[str, ...] = _device_ids(rows, points, plan.n_devices)
        self._device_of = {d: i for i, d in enumerate(self._device_ids) if d}
        #: Per device: when its maintenance ends by itself (NaN: not in maintenance).
        self.maintenance_until: F64 = np.full(plan.n_devices, np.nan)
        self._maintenance: dict[int, MaintenanceEvent] = {}
        self._maintenance_events: list[MaintenanceEvent] = []
        self._points = tuple(points)
        self.daily: DailyAccumulator | None = None
        self._finished_days: list[DailyStats] = []

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

    @property
    def in_maintenance(self) -> BoolArray:
        """Per device (index as in ``device_online``): in maintenance now. Read-only view."""
        view = self._book.device_maintenance.view()
        view.flags.writeable = False
        return view

    def row_in_maintenance(self) -> BoolArray:
        """Per alarm row: its device is in maintenance, so it is neither an over-limit nor a
        power-off demand (blocks that derive demands from alarm levels mask with this)."""
        return self._book.in_maintenance()

    def maintenance(self, device: str) -> MaintenanceEvent | None:
        """The start event of a device's running maintenance (None when not in maintenance)."""
        return self._maintenance.get(self._device_index(device))

    def take_maintenance_events(self) -> list[MaintenanceEvent]:
        """Maintenance start/end events since the last call (oldest first)."""
        events, self._maintenance_events = self._maintenance_events, []
        return events

    # -- the daily report --------------------------------------------------------------------
    def enable_daily(self, zone: dt.tzinfo, *, bin_s: float = DEFAULT_BIN_S) -> DailyAccumulator:
        """Keep the daily report's accumulators (see :mod:`rules._daily`) from the next tick on:
        one sensor per point with a threshold rule or a feed check. Days run from local
        midnight in ``zone``; finished ones are queued for :meth:`take_finished_days`."""
        self.daily = _daily_accumulator(self.plan.bindings, self._points, zone, bin_s)
        return self.daily

    def take_finished_days(self) -> list[DailyStats]:
        """Days that reached their local midnight since the last call (oldest first)."""
        days, self._finished_days = self._finished_days, []
        return days

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
        read; quality codes of :mod:`fieldmodel.quality`: GOOD, BAD, STALE; ``sample_ts`` the
        epoch seconds of each point's latest sample), ``device_online`` one per device. New
        samples (``sample_ts`` greater than last seen) enter the trend ring buffers. Flood
        start/end events are queued for :meth:`take_flood_events`.
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
        # maintenance that is over ends first: everything this tick sees the device in service
        ended = self._expire_maintenance(now) if self._maintenance else None
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
        exp = s[BlockKind.EXPOSURE]
        self._exposure.evaluate(
            now,
            values,
            quality,
            book.device_maintenance,
            eff=book.eff[exp],
            raw=raw[exp],
            value_out=book.value[exp],
        )
        book.forecast[exp] = self._exposure.forecast

        head = self._before_feed
        changed, previous = book.apply_delays(raw[head], now, head)
        interlock = self._interlock
        in_maintenance = book.in_maintenance()
        interlock.compute_demand(book.eff, in_maintenance)
        feed = s[BlockKind.FEED]
        interlock.evaluate_feed(
            values,
            quality,
            in_maintenance[feed],
            eff=book.eff[feed],
            raw=raw[feed],
            value_out=book.value[feed],
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
        if ended is not None:
            toggled = np.concatenate((toggled, ended))
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
        if self.daily is not None:
            finished = self.daily.update(
                now, values, quality, new_sample, book.eff, book.device_maintenance
            )
            if finished is not None:
                self._finished_days.append(finished)
        return transitions

    # -- occupational exposure -------------------------------------------------------------
    @property
    def exposure_points(self) -> int:
        """Number of (exposure rule, point) pairs whose dose the engine keeps."""
        return self._exposure.n_channels

    @property
    def shifts(self) -> ShiftSchedule:
        """The shift calendar exposure rules close their shifts by."""
        return self._exposure.shifts

    def take_shift_exposures(self) -> list[ShiftExposure]:
        """Exposure of every exposure channel over each shift closed since the last call."""
        return self._exposure.take_closed_shifts()

    def save_exposure(self, path: Path | str) -> None:
        """Write the exposure state (doses, shift, excursions) to ``path`` atomically."""
        if self._exposure.n_channels:
            save_state(path, self._exposure.snapshot())

    def exposure_snapshot(self) -> dict[str, npt.NDArray[Any]]:
        """A copy of the exposure state, for :func:`rules.save_exposure_state` to write
        elsewhere (another thread) while the engine ticks on."""
        return self._exposure.snapshot()

    def load_exposure(self, path: Path | str) -> int:
        """Restore exposure state saved by :meth:`save_exposure` (call before the first tick).

        Returns the number of channels restored (0 when the file does not exist). Raises
        :class:`RulesConfigError` when the file is unreadable or not a state file.
        """
        if not self._exposure.n_channels:
            return 0
        try:
            state = load_state(path)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise RulesConfigError(
                str(path), "", type(exc).__name__, f"an exposure state file ({exc})"
            ) from None
        try:
            return self._exposure.restore(state)
        except ValueError as exc:
            raise RulesConfigError(str(path), "", "exposure state", str(exc)) from None

    # -- maintenance -----------------------------------------------------------------------
    def _device_index(self, device: str) -> int:
        index = self._device_of.get(device) if isinstance(device, str) else None
        if index is None:
            raise UnknownDevice(str(device))
        return index

    def _expire_maintenance(self, now: float) -> IdxArray:
        due = [d for d in self._maintenance if self.maintenance_until[d] <= now]
        rows = [self._end_maintenance(d, None, "", now) for d in sorted(due)]
        return np.concatenate(rows) if rows else np.zeros(0, dtype=np.intp)

    def _end_maintenance(self, device: int, user: str | None, reason: str, now: float) -> IdxArray:
        start = self._maintenance.pop(device)
        expired = user is None
        if expired:
            minutes = (start.until - start.started_at) / 60.0
            reason = f"maintenance time of {minutes:g} min is over"
        self.maintenance_until[device] = np.nan
        self._maintenance_events.append(
            MaintenanceEvent(
                started=False,
                device=start.device,
                user=start.user if user is None else user,
                reason=reason,
                ts=now,
                started_at=start.started_at,
                until=now,
                expired=expired,
            )
        )
        return self._book.set_maintenance(device, False)

    def start_maintenance(
        self, device: str, user: str, minutes: float, reason: str, now: float
    ) -> list[AlarmTransition]:
        """Put ``device`` in maintenance for ``minutes`` (0 < minutes ≤
        :data:`MAX_MAINTENANCE_MINUTES`); it ends by itself at the first tick at or after
        ``now + minutes * 60``. Starting again while in maintenance sets the new end. Queues a
        :class:`MaintenanceEvent`; returns the transitions of the device's alarms (active ones go
        ``OUT_OF_SERVICE``). Raises :class:`UnknownDevice` or :class:`InvalidCommand`.
        """
        index = self._device_index(device)
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not 0 < minutes <= MAX_MAINTENANCE_MINUTES  # also false for NaN and infinities
        ):
            raise InvalidCommand(
                device, f"maintenance minutes must be a number in (0, {MAX_MAINTENANCE_MINUTES}]"
            )
        now = float(now)
        until = now + float(minutes) * 60.0
        running = self._maintenance.get(index)
        event = MaintenanceEvent(
            started=True,
            device=device,
            user=user,
            reason=reason,
            ts=now,
            started_at=now if running is None else running.started_at,
            until=until,
        )
        self._maintenance[index] = event
        self.maintenance_until[index] = until
        self._maintenance_events.append(event)
        rows = self._book.set_maintenance(index, True)
        return self._book.announce(rows, now, user)

    def end_maintenance(
        self, device: str, user: str, reason: str, now: float
    ) -> list[AlarmTransition]:
        """End ``device``'s maintenance now. Queues a :class:`MaintenanceEvent`; returns the
        transitions (alarms still active show unacknowledged again). Raises
        :class:`UnknownDevice`, or :class:`InvalidCommand` when it is not in maintenance."""
        index = self._device_index(device)
        if index not in self._maintenance:
            raise InvalidCommand(device, "device is not in maintenance")
        now = float(now)
        rows = self._end_maintenance(index, user, reason, now)
        return self._book.announce(rows, now, user)

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
        if self._book.removed[row]:
            raise InvalidCommand(alarm_id, "alarm is out of service")
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
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not 0 < minutes <= MAX_SHELVE_MINUTES  # also false for NaN and infinities
        ):
            raise InvalidCommand(
                alarm_id, f"shelve minutes must be a number in (0, {MAX_SHELVE_MINUTES}]"
            )
        if self._book.removed[row]:
            raise InvalidCommand(alarm_id, "alarm is out of service")
        now = float(now)
        self._book.shelve(row, now + float(minutes) * 60.0)
        return self._book.announce(np.array([row], dtype=np.intp), now, user)

    def unshelve(
        self, alarm_id: str, user: str, now: float, reason: str | None = None
    ) -> list[AlarmTransition]:
        """End an alarm's shelve now, with the same result as its expiry (unacknowledged if
        active). Raises :class:`UnknownAlarm`, or :class:`InvalidCommand` when it is not
        shelved."""
        row = self._row(alarm_id)
        if not self._book.unshelve(row):
            raise InvalidCommand(alarm_id, "alarm is not shelved")
        return self._book.announce(np.array([row], dtype=np.intp), float(now), user, reason=reason)

    def out_of_service(
        self, alarm_id: str, user: str, reason: str, now: float
    ) -> list[AlarmTransition]:
        """Remove an alarm from service (``reason`` required): it shows ``OUT_OF_SERVICE`` and
        annunciates nothing until :meth:`return_to_service`; a power-off it demands stays
        demanded. Always returns one transition (the event that records who and why). Raises
        :class:`UnknownAlarm`, or :class:`InvalidCommand` for a blank reason or an alarm already
        out of service."""
        row = self._row(alarm_id)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidCommand(alarm_id, "taking an alarm out of service needs a reason")
        if not self._book.remove_from_service(row):
            raise InvalidCommand(alarm_id, "alarm is already out of service")
        rows = np.array([row], dtype=np.intp)
        return self._book.announce(rows, float(now), user, reason=reason, always=True)

    def return_to_service(
        self, alarm_id: str, user: str, now: float, reason: str | None = None
    ) -> list[AlarmTransition]:
        """Return an alarm removed by :meth:`out_of_service`: like a shelve expiry, it shows
        unacknowledged if active now. Always returns one transition. Raises
        :class:`UnknownAlarm`, or :class:`InvalidCommand` when it is not out of service."""
        row = self._row(alarm_id)
        if not self._book.return_to_service(row):
            raise InvalidCommand(alarm_id, "alarm is not out of service")
        rows = np.array([row], dtype=np.intp)
        return self._book.announce(rows, float(now), user, reason=reason, always=True)


def _device_ids(
    rows: Sequence[Binding], points: Sequence[PointRef], n_devices: int
) -> tuple[str, ...]:
    """Device id by device index (empty where a device has neither points nor alarms)."""
    ids = [""] * n_devices
    for ref in points:
        ids[ref.device_index] = ref.device
    for b in rows:
        ids[b.device_index] = b.device
    return tuple(ids)


def _row_point(b: Binding) -> int:
    """The point row an alarm reports on (-1 for device-level alarms)."""
    spec = b.spec
    index = getattr(spec, "point_index", None)
    if index is None:
        index = getattr(spec, "report_index", None)
    return -1 if index is None else int(index)


def _power_off_code(b: Binding) -> int:
    """The level code from which the alarm demands power-off (the pack's ``power_off`` levels
    and fault-lockout rules; 0: never)."""
    return b.power_off_code


def _is_feed_check(b: Binding) -> bool:
    return b.rule_type == "feed_check" or b.level_name.startswith("FEED")


def _daily_accumulator(
    bindings: Sequence[Binding], points: Sequence[PointRef], zone: dt.tzinfo, bin_s: float
) -> DailyAccumulator:
    over = [(r, _row_point(b)) for r, b in enumerate(bindings) if b.block == BlockKind.THRESHOLD]
    feed = [(r, _row_point(b)) for r, b in enumerate(bindings) if _is_feed_check(b)]
    power = [(r, _row_point(b), _power_off_code(b)) for r, b in enumerate(bindings)]
    power = [(r, p, c) for r, p, c in power if c > 0 and p >= 0]
    sensor_points = sorted({p for _, p in over + feed if p >= 0})
    index = {p: i for i, p in enumerate(sensor_points)}
    sensors = [
        SensorRef(p, points[p].device_index, points[p].device, points[p].point, points[p].unit)
        for p in sensor_points
    ]

    def rows(pairs: Sequence[tuple[int, int]]) -> tuple[IdxArray, IdxArray]:
        kept = [(r, index[p]) for r, p in pairs if p in index]
        return (
            np.array([r for r, _ in kept], dtype=np.intp),
            np.array([s for _, s in kept], dtype=np.intp),
        )

    over_rows, over_sensor = rows(over)
    feed_rows, feed_sensor = rows(feed)
    power_rows, power_sensor = rows([(r, p) for r, p, _ in power])
    power_code = np.array([c for r, p, c in power if p in index], dtype=np.int8)
    return DailyAccumulator(
        sensors,
        over_rows=over_rows,
        over_sensor=over_sensor,
        power_rows=power_rows,
        power_code=power_code,
        power_sensor=power_sensor,
        feed_rows=feed_rows,
        feed_sensor=feed_sensor,
        zone=zone,
        bin_s=bin_s,
    )
