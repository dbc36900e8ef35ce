"""Scalar reference implementation of the rules engine: obvious per-alarm Python code.

It reads the same :class:`rules.BindingPlan` as the vectorized engine and must produce exactly the
same transitions, flood events and command results. Nothing here is vectorized or optimised;
every rule is written out the way the documentation states it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rules import (
    MAX_MAINTENANCE_MINUTES,
    MAX_SHELVE_MINUTES,
    AlarmState,
    AlarmTransition,
    Binding,
    BindingPlan,
    FloodEvent,
    InvalidCommand,
    MaintenanceEvent,
    State,
    UnknownAlarm,
    UnknownDevice,
)
from rules._binding import (
    COMM_POINT,
    BoundPredicate,
    CommSpec,
    ConditionSpec,
    FeedSpec,
    StaleSpec,
    ThresholdSpec,
    TrendSpec,
    format_message,
)
from rules._exposure import ExposureSpec, ShiftSchedule
from tests.rules.exposure_reference import ScalarExposure

NONE, L, LL, H, HH, ACTIVE = range(6)
SEVERITY = {NONE: 0, L: 1, LL: 2, H: 1, HH: 2, ACTIVE: 1}
SIDE = {NONE: "none", L: "low", LL: "low", H: "high", HH: "high", ACTIVE: "active"}
HIGH = (H, HH)


def raises(old: int, new: int) -> bool:
    """Activation or escalation: a level on another side, or more severe on the same side."""
    if new == NONE:
        return False
    return SIDE[new] != SIDE[old] or SEVERITY[new] > SEVERITY[old]


def good(value: float, quality: int) -> bool:
    return quality == 0 and not math.isnan(value)


@dataclass
class Alarm:
    binding: Binding
    level: int = NONE  # effective level, after delays
    candidate: int = NONE
    candidate_since: float = 0.0
    last_level: int = NONE
    acked: bool = True
    shelved_until: float | None = None
    removed: bool = False  # out of service by an operator
    shown: State = State.NORMAL
    shown_level: int = NONE
    stale: bool = False
    shown_stale: bool = False
    state_ts: float = 0.0
    value: float = math.nan
    forecast: float = math.nan
    history: deque[tuple[float, float]] = field(default_factory=deque)


class ScalarEngine:
    """Per-alarm loops over the same bindings as :class:`rules.RuleEngine`."""

    def __init__(self, plan: BindingPlan, shifts: ShiftSchedule | None = None) -> None:
        self.alarms = [Alarm(b) for b in plan.bindings]
        self.exposure = ScalarExposure(plan.bindings, shifts)
        for alarm in self.alarms:
            if isinstance(alarm.binding.spec, TrendSpec):
                alarm.history = deque(maxlen=alarm.binding.spec.max_samples)
        self.by_id = {a.binding.alarm_id: a for a in self.alarms}
        self.has_comm = {
            a.binding.device_index for a in self.alarms if isinstance(a.binding.spec, CommSpec)
        }
        self.n_devices = plan.n_devices
        self.last_seen = [-math.inf] * plan.n_points
        self.device_suppressed = [False] * plan.n_devices
        self.device_offline = [False] * plan.n_devices
        self.start: float | None = None
        self.flood_times: list[tuple[float, int]] = []
        self.flooding = False
        self.flood_events: list[FloodEvent] = []
        self.device_of = {a.binding.device: a.binding.device_index for a in self.alarms}
        self.device_maintenance = [False] * plan.n_devices
        self.maintenance: dict[int, MaintenanceEvent] = {}  # running: its start event
        self.maintenance_events: list[MaintenanceEvent] = []

    # -- evaluation per rule type ----------------------------------------------------------
    @staticmethod
    def threshold_value(spec: ThresholdSpec, values: Sequence[float]) -> float:
        v = values[spec.point_index]
        if spec.magnitude_index >= 0:
            # numpy's hypot, as the engine: math.hypot may differ in the last bit
            v = float(np.hypot(v, values[spec.magnitude_index]))
        return v

    def threshold_level(self, alarm: Alarm, spec: ThresholdSpec, values: Sequence[float]) -> int:
        v = self.threshold_value(spec, values)
        for code in (HH, H, LL, L):
            if code not in spec.levels:
                continue
            limit, reset = spec.levels[code]
            in_level = SIDE[alarm.level] == SIDE[code] and SEVERITY[alarm.level] >= SEVERITY[code]
            bound = reset if in_level else limit
            hit = v >= bound if code in HIGH else v <= bound
            if hit:
                return code
        return NONE

    def trend_level(self, alarm: Alarm, spec: TrendSpec, now: float, current: float) -> int:
        while alarm.history and alarm.history[0][0] < now - spec.window_s:
            alarm.history.popleft()  # left the window: it never comes back
        inside = list(alarm.history)
        n = len(inside)
        sum_t = sum_v = sum_tt = sum_tv = 0.0
        for t, v in inside:
            dt = t - now
            sum_t += dt
            sum_v += v
            sum_tt += dt * dt
            sum_tv += dt * v
        den = n * sum_tt - sum_t * sum_t
        if n >= spec.min_samples and den > 0:
            slope_s = (n * sum_tv - sum_t * sum_v) / den
        else:
            slope_s = math.nan
        slope_min = slope_s * 60.0
        eta = math.nan
        moving = not math.isnan(slope_s) and slope_s != 0
        if moving and (1 if slope_s > 0 else -1) == spec.forecast_direction:
            assert spec.forecast_limit is not None
            eta = (spec.forecast_limit - current) / slope_s
            eta = eta if math.isnan(eta) else max(eta, 0.0)
        alarm.value = slope_min
        alarm.forecast = eta
        hit = False
        if spec.rise_per_min is not None and slope_min >= spec.rise_per_min:
            hit = True
        if spec.fall_per_min is not None and slope_min <= -spec.fall_per_min:
            hit = True
        if spec.forecast_within_s > 0 and eta <= spec.forecast_within_s:
            hit = True
        return ACTIVE if hit else NONE

    @staticmethod
    def predicate(p: BoundPredicate, values: Sequence[float]) -> bool:
        v = values[p.point_index]
        if p.magnitude:
            v = abs(v)
        rhs = values[p.ref_index] * p.factor if p.ref_index >= 0 else p.value
        if p.op == "eq":
            return v == rhs
        if p.op == "ne":
            return v != rhs
        if p.op == "gt":
            return v > rhs
        if p.op == "ge":
            return v >= rhs
        if p.op == "lt":
            return v < rhs
        if p.op == "le":
            return v <= rhs
        as_int = int(v) if abs(v) < 2.0**62 else 0
        if p.op == "bit_set":
            return (as_int >> p.bit) & 1 == 1
        if p.op == "bit_clear":
            return (as_int >> p.bit) & 1 == 0
        if p.op == "in":
            return v in p.values
        assert p.op == "not_in"
        return v not in p.values

    def raw_level(
        self,
        alarm: Alarm,
        now: float,
        *,
        values: Sequence[float],
        quality: Sequence[int],
        sample_ts: Sequence[float],
        online: Sequence[bool],
    ) -> int:
        spec = alarm.binding.spec
        if isinstance(spec, ThresholdSpec):
            p, m = spec.point_index, spec.magnitude_index
            second_bad = m >= 0 and not good(values[m], quality[m])
            alarm.value = math.nan if second_bad else self.threshold_value(spec, values)
            if second_bad or not good(values[p], quality[p]):
                return alarm.level
            return self.threshold_level(alarm, spec, values)
        if isinstance(spec, TrendSpec):
            p = spec.point_index
            level = self.trend_level(alarm, spec, now, values[p])
            if not good(values[p], quality[p]):
                return alarm.level
            for c in spec.conditions:
                if not good(values[c.point_index], quality[c.point_index]):
                    return alarm.level
                if c.ref_index >= 0 and not good(values[c.ref_index], quality[c.ref_index]):
                    return alarm.level
            if not all(self.predicate(c, values) for c in spec.conditions):
                return NONE
            return level
        if isinstance(spec, StaleSpec):
            p = spec.point_index
            assert self.start is not None
            ts = sample_ts[p]
            base = self.start if math.isnan(ts) else max(ts, self.start)
            age = now - base
            alarm.value = age
            return ACTIVE if quality[p] == 2 or age > spec.max_age_s else NONE
        if isinstance(spec, ConditionSpec):
            alarm.value = values[spec.report_index]
            for p in spec.predicates:
                if not good(values[p.point_index], quality[p.point_index]):
                    return alarm.level
                if p.ref_index >= 0 and not good(values[p.ref_index], quality[p.ref_index]):
                    return alarm.level
            tests = [p for p in spec.predicates if not p.alternative]
            alternatives = [p for p in spec.predicates if p.alternative]
            holds = all(self.predicate(p, values) for p in tests)
            if alternatives:
                holds = holds and any(self.predicate(p, values) for p in alternatives)
            return ACTIVE if holds else NONE
        if isinstance(spec, FeedSpec):
            p = spec.point_index
            v = values[p]
            alarm.value = v
            if not self.area_demanded(alarm.binding.area):
                return NONE
            if self.device_maintenance[alarm.binding.device_index]:
                return NONE  # a feed point in maintenance is not checked
            if not good(v, quality[p]):
                return alarm.level
            return ACTIVE if v != 0 else NONE
        if isinstance(spec, ExposureSpec):
            hit, alarm.value, alarm.forecast = self.exposure.row(spec)
            if hit is None:
                return alarm.level
            return ACTIVE if hit else NONE
        assert isinstance(spec, CommSpec)
        up = online[alarm.binding.device_index]
        alarm.value = 1.0 if up else 0.0
        return NONE if up else ACTIVE

    def demands_power_off(self, alarm: Alarm) -> bool:
        code = alarm.binding.power_off_code
        in_maintenance = self.device_maintenance[alarm.binding.device_index]
        return code != 0 and alarm.level >= code and not in_maintenance

    def area_demanded(self, area: str | None) -> bool:
        """Any alarm of ``area`` demanding power-off (levels of this tick: feed rows come last)."""
        return any(a.binding.area == area and self.demands_power_off(a) for a in self.alarms)

    # -- lifecycle -------------------------------------------------------------------------
    def display(self, alarm: Alarm) -> State:
        active = alarm.level != NONE
        b = alarm.binding
        suppressed = b.suppressible and self.device_suppressed[b.device_index]
        if alarm.removed:
            return State.OUT_OF_SERVICE
        if alarm.shelved_until is not None:
            return State.SHELVED
        if self.device_maintenance[b.device_index] and (active or not alarm.acked):
            return State.OUT_OF_SERVICE
        if suppressed and (active or not alarm.acked):
            return State.SUPPRESSED
        if active:
            return State.ACK_ACTIVE if alarm.acked else State.UNACK_ACTIVE
        if not alarm.acked:
            return State.RTN_UNACK
        return State.NORMAL

    def announce(
        self,
        alarm: Alarm,
        now: float,
        user: str | None,
        reason: str | None = None,
        always: bool = False,
    ) -> AlarmTransition | None:
        state = self.display(alarm)
        level_changed = alarm.level != alarm.shown_level
        alarm.shown_level = alarm.level
        stale_changed = alarm.stale != alarm.shown_stale
        alarm.shown_stale = alarm.stale
        in_active = state in (State.UNACK_ACTIVE, State.ACK_ACTIVE)
        if (
            not always
            and state == alarm.shown
            and not (in_active and level_changed)
            and not (state != State.NORMAL and stale_changed)
        ):
            return None
        before = alarm.shown
        alarm.shown = state
        alarm.state_ts = now
        b = alarm.binding
        code = alarm.level or alarm.last_level
        label = b.level_label(code)
        limit = b.limits[code]
        return AlarmTransition(
            id=b.alarm_id,
            device=b.device,
            point=b.point,
            rule=b.rule_id,
            level=label,
            priority=b.priorities[code],
            from_state=before,
            to_state=state,
            value=alarm.value,
            limit=limit,
            message=format_message(b, label, alarm.value, limit),
            ts=now,
            forecast_s=None if math.isnan(alarm.forecast) else alarm.forecast,
            user=user,
            power_off=self.power_off(alarm),
            stale=alarm.stale,
            reason=reason,
        )

    def power_off(self, alarm: Alarm) -> bool | None:
        return None if alarm.binding.power_off_code == 0 else self.demands_power_off(alarm)

    def tick(
        self,
        now: float,
        values: Sequence[float],
        quality: Sequence[int],
        sample_ts: Sequence[float],
        online: Sequence[bool],
    ) -> list[AlarmTransition]:
        values = [float(v) for v in values]
        quality = [int(q) for q in quality]
        sample_ts = [float(t) for t in sample_ts]
        online = [bool(o) for o in online]
        if self.start is None:
            self.start = now
        for d in sorted(self.maintenance):
            if now >= self.maintenance[d].until:
                self.stop_maintenance(d, None, "", now)
        new = [False] * len(values)
        for i, ts in enumerate(sample_ts):
            if ts > self.last_seen[i]:
                new[i] = True
                self.last_seen[i] = ts
        for alarm in self.alarms:
            spec = alarm.binding.spec
            if isinstance(spec, TrendSpec):
                p = spec.point_index
                if new[p] and good(values[p], quality[p]):
                    alarm.history.append((sample_ts[p], values[p]))
        self.exposure.tick(now, values, quality, self.device_maintenance)
        for d in range(self.n_devices):
            self.device_suppressed[d] = d in self.has_comm and not online[d]
            self.device_offline[d] = not online[d]
        for alarm in self.alarms:
            b = alarm.binding
            alarm.stale = b.point != COMM_POINT and self.device_offline[b.device_index]

        out: list[AlarmTransition] = []
        for alarm in self.alarms:
            b = alarm.binding
            raw = self.raw_level(
                alarm, now, values=values, quality=quality, sample_ts=sample_ts, online=online
            )
            if raw != alarm.candidate:
                alarm.candidate = raw
                alarm.candidate_since = now
            if raw != alarm.level:
                delay = b.on_delay_s if raises(alarm.level, raw) else b.off_delay_s
                if now - alarm.candidate_since >= delay:
                    quiet = self.device_maintenance[b.device_index] or alarm.removed
                    if raises(alarm.level, raw) and not quiet:
                        alarm.acked = False
                    alarm.level = raw
                    if raw != NONE:
                        alarm.last_level = raw
            if alarm.shelved_until is not None and now >= alarm.shelved_until:
                alarm.shelved_until = None
                alarm.acked = alarm.level == NONE
            transition = self.announce(alarm, now, None)
            if transition is not None:
                out.append(transition)

        activations = sum(
            1
            for t in out
            if t.to_state == State.UNACK_ACTIVE and t.from_state != State.UNACK_ACTIVE
        )
        self.count_flood(now, activations)
        return out

    def count_flood(self, now: float, activations: int) -> None:
        if activations > 0:
            self.flood_times.append((now, activations))
        while self.flood_times and self.flood_times[0][0] <= now - 600.0:
            self.flood_times.pop(0)
        count = sum(n for _, n in self.flood_times)
        if not self.flooding and count > 10:
            self.flooding = True
            self.flood_events.append(FloodEvent(True, now, count, 600.0, 10, 5))
        elif self.flooding and count < 5:
            self.flooding = False
            self.flood_events.append(FloodEvent(False, now, count, 600.0, 10, 5))

    # -- commands --------------------------------------------------------------------------
    def find(self, alarm_id: str) -> Alarm:
        alarm = self.by_id.get(alarm_id)
        if alarm is None:
            raise UnknownAlarm(alarm_id)
        return alarm

    def ack(self, alarm_id: str, user: str, now: float) -> list[AlarmTransition]:
        alarm = self.find(alarm_id)
        if alarm.removed:
            raise InvalidCommand(alarm_id, "alarm is out of service")
        if alarm.acked:
            raise InvalidCommand(alarm_id, "alarm is not awaiting acknowledgement")
        alarm.acked = True
        transition = self.announce(alarm, float(now), user)
        return [] if transition is None else [transition]

    def shelve(self, alarm_id: str, user: str, minutes: float, now: float) -> list[AlarmTransition]:
        alarm = self.find(alarm_id)
        ok = (
            not isinstance(minutes, bool)
            and isinstance(minutes, int | float)
            and 0 < minutes <= MAX_SHELVE_MINUTES
        )
        if not ok:
            raise InvalidCommand(alarm_id, "bad shelve minutes")
        if alarm.removed:
            raise InvalidCommand(alarm_id, "alarm is out of service")
        alarm.shelved_until = float(now) + float(minutes) * 60.0
        transition = self.announce(alarm, float(now), user)
        return [] if transition is None else [transition]

    def unshelve(
        self, alarm_id: str, user: str, now: float, reason: str | None = None
    ) -> list[AlarmTransition]:
        alarm = self.find(alarm_id)
        if alarm.shelved_until is None:
            raise InvalidCommand(alarm_id, "alarm is not shelved")
        alarm.shelved_until = None
        alarm.acked = alarm.level == NONE
        transition = self.announce(alarm, float(now), user, reason)
        return [] if transition is None else [transition]

    def out_of_service(
        self, alarm_id: str, user: str, reason: str, now: float
    ) -> list[AlarmTransition]:
        alarm = self.find(alarm_id)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidCommand(alarm_id, "no reason")
        if alarm.removed:
            raise InvalidCommand(alarm_id, "already out of service")
        if alarm.shelved_until is not None:
            alarm.shelved_until = None
            alarm.acked = alarm.level == NONE
        alarm.removed = True
        transition = self.announce(alarm, float(now), user, reason, always=True)
        return [] if transition is None else [transition]

    def return_to_service(
        self, alarm_id: str, user: str, now: float, reason: str | None = None
    ) -> list[AlarmTransition]:
        alarm = self.find(alarm_id)
        if not alarm.removed:
            raise InvalidCommand(alarm_id, "not out of service")
        alarm.removed = False
        alarm.acked = alarm.level == NONE
        transition = self.announce(alarm, float(now), user, reason, always=True)
        return [] if transition is None else [transition]

    # -- maintenance -----------------------------------------------------------------------
    def device(self, device: str) -> int:
        index = self.device_of.get(device)
        if index is None:
            raise UnknownDevice(device)
        return index

    def start_maintenance(
        self, device: str, user: str, minutes: float, reason: str, now: float
    ) -> list[AlarmTransition]:
        d = self.device(device)
        ok = (
            not isinstance(minutes, bool)
            and isinstance(minutes, int | float)
            and 0 < minutes <= MAX_MAINTENANCE_MINUTES
        )
        if not ok:
            raise InvalidCommand(device, "bad maintenance minutes")
        now = float(now)
        running = self.maintenance.get(d)
        event = MaintenanceEvent(
            True,
            device,
            user,
            reason,
            now,
            now if running is None else running.started_at,
            now + float(minutes) * 60.0,
        )
        self.maintenance[d] = event
        self.maintenance_events.append(event)
        self.device_maintenance[d] = True
        return self.announce_device(d, now, user)

    def end_maintenance(
        self, device: str, user: str, reason: str, now: float
    ) -> list[AlarmTransition]:
        d = self.device(device)
        if d not in self.maintenance:
            raise InvalidCommand(device, "device is not in maintenance")
        self.stop_maintenance(d, user, reason, float(now))
        return self.announce_device(d, float(now), user)

    def stop_maintenance(self, d: int, user: str | None, reason: str, now: float) -> None:
        """End device ``d``'s maintenance (``user`` None: its time is over); its active alarms
        are unacknowledged again."""
        start = self.maintenance.pop(d)
        if user is None:
            reason = f"maintenance time of {(start.until - start.started_at) / 60.0:g} min is over"
        self.maintenance_events.append(
            MaintenanceEvent(
                False,
                start.device,
                start.user if user is None else user,
                reason,
                now,
                start.started_at,
                now,
                user is None,
            )
        )
        self.device_maintenance[d] = False
        for alarm in self.alarms:
            if alarm.binding.device_index == d and alarm.level != NONE:
                alarm.acked = False

    def announce_device(self, d: int, now: float, user: str | None) -> list[AlarmTransition]:
        out = []
        for alarm in self.alarms:
            if alarm.binding.device_index == d:
                transition = self.announce(alarm, now, user)
                if transition is not None:
                    out.append(transition)
        return out

    def active_alarms(self) -> list[AlarmState]:
        out = []
        for alarm in self.alarms:
            if alarm.shown == State.NORMAL:
                continue
            b = alarm.binding
            code = alarm.level or alarm.last_level
            label = b.level_label(code)
            out.append(
                AlarmState(
                    id=b.alarm_id,
                    device=b.device,
                    point=b.point,
                    rule=b.rule_id,
                    state=alarm.shown,
                    level=label,
                    priority=b.priorities[code],
                    value=alarm.value,
                    limit=b.limits[code],
                    message=format_message(b, label, alarm.value, b.limits[code]),
                    ts=alarm.state_ts,
                    forecast_s=None if math.isnan(alarm.forecast) else alarm.forecast,
                    shelved_until=alarm.shelved_until,
                    power_off=self.power_off(alarm),
                    stale=alarm.stale,
                )
            )
        return out
