"""Alarms in the gateway: the rules engine over the point table, its MQTT topics and commands.

Each poll wakes the alarm task; it ticks the engine over the whole point table (one vectorised
pass, at most every ``min_tick`` seconds, and at least once a second for time-based rules) and
publishes every transition: retained state on ``P/alarms/{device}/{point}/{rule}`` (an empty
retained payload deletes a cleared, acknowledged alarm) and the transition on
``P/events/alarm``, both at QoS 1; in the same tick, the retained power-off state of every area
that changed on ``P/interlock/{area}`` and unexpected power losses on ``P/events/alarm``. Alarm
commands arrive on ``P/cmd/alarm/{ack,shelve,unshelve,out_of_service,return_to_service}``,
maintenance commands
on ``P/cmd/device/maintenance`` (and ``/end``); each gets a reply on ``P/cmd/reply`` and a bad
one changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from fieldmodel.registers import FLOAT_TYPES
from gateway.aio import wait_event
from gateway.alarms import (
    MAX_COMMAND_BYTES,
    flood_message,
    handle_command,
    interlock_message,
    power_loss_message,
    transition_messages,
)
from gateway.config import SiteConfig
from gateway.maintenance import (
    calibration_due,
    calibration_due_message,
    handle_maintenance_command,
    maintenance_message,
)
from gateway.messages import OutboundMessage
from gateway.points import PointTable
from gateway.rescue import RescueBook
from gateway.topics import Topics
from rules import (
    AlarmTransition,
    AreaInterlock,
    DailyStats,
    FloodEvent,
    MaintenanceEvent,
    PointRef,
    RuleEngine,
    RulesConfigError,
    State,
    load_packs,
)

__all__ = ["MAX_COMMAND_BYTES", "AlarmService", "build_engine"]

log = logging.getLogger(__name__)


def build_engine(site: SiteConfig, table: PointTable) -> RuleEngine:
    """Bind the site's rule packs to its point table (raises RulesConfigError)."""
    refs = [
        PointRef(
            device=rows.device.id,
            device_index=rows.index,
            point=p.name,
            kind=rows.device.kind,
            tags=dict(rows.device.tags),
            unit=p.unit,
            # a scaled integer reads in steps of its scale; a float is continuous
            resolution=0.0 if p.type in FLOAT_TYPES else abs(p.scale),
        )
        for rows in table.devices
        for p in rows.device.points
    ]
    overrides = {d.id: d.limits for d in site.devices if d.limits}
    reasons = {d.id: d.limits_reason for d in site.devices if d.limits_reason}
    engine = RuleEngine(
        refs,
        load_packs(list(site.rules)),
        overrides=overrides,
        n_devices=len(site.devices),
        limits_reasons=reasons,
        shifts=site.exposure.schedule(site.site.timezone),
    )
    _check_feed_polling(site, engine)
    for lo in engine.plan.loosened:
        log.warning(
            "%s: %s %s %s %g is looser than the table's %g (limits_reason: %s)",
            lo.device,
            lo.rule,
            lo.level,
            lo.key,
            lo.value,
            lo.table,
            lo.reason,
        )
    for gap in engine.plan.missing_points:
        log.warning(
            "%s: rule %s selects this device but it lacks point %s: the alarm does not exist "
            "on this device",
            gap.device,
            gap.rule,
            ", ".join(gap.points),
        )
    return engine


def _check_feed_polling(site: SiteConfig, engine: RuleEngine) -> None:
    """A feed sensor polled less often than its feed check's ``for_s`` shows a power cut only
    after the check has raised feed-abnormal (priority 1): a false alarm on every power-off,
    which teaches operators to ignore the one that matters. Refused, naming the way out."""
    devices = {dev.id: (i, dev) for i, dev in enumerate(site.devices)}
    for b in engine.plan.bindings:
        if not b.checks_feed:
            continue
        i, dev = devices[b.device]
        if dev.poll_interval > b.on_delay_s:
            raise RulesConfigError(
                "site",
                f"devices[{i}].poll_interval (device {dev.id!r})",
                dev.poll_interval,
                f"at most {b.on_delay_s:g} s, the for_s of its feed check {b.rule_id!r} on "
                f"{b.point!r}: a feed point read less often shows the power cut only after the "
                "check has raised a false feed-abnormal alarm; poll the device faster, or give "
                f"it `limits: {{{b.rule_id}: {{for_s: {dev.poll_interval:g}}}}}` (or more)",
            )


#: Transitions into UNACK_ACTIVE that are a fresh raise (not an escalation or a shelve ending).
_RAISED_FROM = frozenset({State.NORMAL, State.RTN_UNACK})


class AlarmService:
    """Owns the engine's ticks and turns its transitions into MQTT messages."""

    def __init__(
        self,
        engine: RuleEngine,
        table: PointTable,
        topics: Topics,
        publish: Callable[[OutboundMessage], None],
        *,
        clock: Callable[[], float] = time.time,
        min_tick: float = 0.005,
        on_transition: Callable[[AlarmTransition], None] | None = None,
        on_interlock: Callable[[AreaInterlock], None] | None = None,
        on_maintenance: Callable[[MaintenanceEvent], None] | None = None,
        on_day: Callable[[DailyStats], None] | None = None,
        rescue: RescueBook | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.topics = topics
        self.publish = publish
        self.clock = clock
        self.min_tick = min_tick
        self.on_transition = on_transition
        self.on_interlock = on_interlock
        self.on_maintenance = on_maintenance
        self.on_day = on_day
        #: Elevator rescue records opened by trapped alarms (None: no rescue records).
        self.rescue = rescue
        #: Last calibration of each device (epoch s; None: unknown), from the site file or a
        #: ``maintenance/end`` command with ``"calibrated": true``.
        self.calibrated_at: dict[str, float | None] = {
            rows.device.id: rows.device.calibrated_at for rows in table.devices
        }
        self.wake = asyncio.Event()
        self.latency_ms: deque[float] = deque(maxlen=10_000)
        self.transitions = 0
        # [ts ms, transitions] of the newest milliseconds (see transitions_through)
        self._recent: deque[list[int]] = deque(maxlen=64)
        self._device_sample_ts = np.zeros(len(table.devices), dtype=np.float64)
        self._device_index = {rows.device.id: rows.index for rows in table.devices}

    # ------------------------------------------------------------------ ticking

    def poll_arrived(self, device_index: int, ts: float) -> None:
        self._device_sample_ts[device_index] = ts
        self.wake.set()

    def take_latency_p99_ms(self) -> float | None:
        """p99 of poll-response-to-alarm latency since the last call (None if no alarm rose)."""
        if not self.latency_ms:
            return None
        p99 = float(np.percentile(np.fromiter(self.latency_ms, dtype=np.float64), 99))
        self.latency_ms.clear()
        return p99

    def tick(self) -> list[AlarmTransition]:
        now = self.clock()
        t = self.table
        t.refresh_stale(now)
        transitions = self.engine.tick(now, t.values, t.quality, t.sample_ts, t.device_online)
        for tr in transitions:
            self._publish_transition(tr)
        for area in self.engine.take_interlock_changes():
            if self.on_interlock is not None:
                self.on_interlock(area)
            self.publish(interlock_message(self.topics.base, area))
            log.log(
                logging.WARNING if area.power_off else logging.INFO,
                "interlock %s: power_off %s, feed %s, causes %s",
                area.area,
                area.power_off,
                area.feed,
                ", ".join(area.causes) or "none",
            )
        for loss in self.engine.take_power_losses():
            log.warning("%s", loss.message)
            self.publish(power_loss_message(self.topics.base, loss))
        for flood in self.engine.take_flood_events():
            self._publish_flood(flood)
        if self.rescue is not None:
            for message in self.rescue.check(now):
                self.publish(message)
        self._publish_maintenance()
        for day in self.engine.take_finished_days():
            if self.on_day is not None:
                self.on_day(day)
            self.warn_calibration_due()
        return transitions

    def _publish_maintenance(self) -> None:
        for event in self.engine.take_maintenance_events():
            log.info(
                "device %s maintenance %s by %s: %s",
                event.device,
                "started" if event.started else "ended",
                event.user,
                event.reason,
            )
            self.publish(maintenance_message(self.topics.base, event))
            if self.on_maintenance is not None:
                self.on_maintenance(event)

    def warn_calibration_due(self) -> None:
        """Log and publish a ``calibration_due`` event for every device calibrated more than 15
        days ago (at start and with each daily report)."""
        now = self.clock()
        for due in calibration_due(self.calibrated_at, now):
            log.warning(
                "device %s: last calibration %.1f days ago (due every 15 days)",
                due.device,
                due.age_days,
            )
            self.publish(calibration_due_message(self.topics.base, due, now))

    def _calibrated(self, device: str, now: float) -> None:
        self.calibrated_at[device] = now

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        self.warn_calibration_due()
        while True:
            await wait_event(self.wake, 1.0)  # time-based rules tick at least once a second
            wait = last + self.min_tick - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.wake.clear()
            last = loop.time()
            self.tick()

    # ------------------------------------------------------------------ messages

    def transitions_through(self, ts_ms: int) -> int:
        """Transitions published so far with ``ts <= ts_ms`` (ms), for ``ts_ms`` at least the
        current millisecond minus one."""
        return self.transitions - sum(n for ms, n in self._recent if ms > ts_ms)

    def _publish_transition(self, tr: AlarmTransition) -> None:
        """Publish one transition: the event on ``P/events/alarm`` and the retained state, as
        :func:`gateway.alarms.transition_messages` builds them (one mapping for the project)."""
        self.transitions += 1
        ms = round(tr.ts * 1000.0)  # as the messages and the database line stamp it
        recent = self._recent
        if recent and recent[-1][0] == ms:
            recent[-1][1] += 1
        else:
            recent.append([ms, 1])
        event, retained = transition_messages(self.topics.base, tr)
        self.publish(retained)
        if self.on_transition is not None:
            self.on_transition(tr)
        self.publish(event)
        if self.rescue is not None:
            for message in self.rescue.observe(tr):
                self.publish(message)
        if tr.to_state is State.UNACK_ACTIVE and tr.from_state in _RAISED_FROM:
            idx = self._device_index.get(tr.device)
            if idx is not None and self._device_sample_ts[idx] > 0:
                self.latency_ms.append((time.time() - self._device_sample_ts[idx]) * 1000.0)
        log.info(
            "alarm %s %s -> %s (%s, value %s)",
            tr.id,
            tr.from_state.value,
            tr.to_state.value,
            tr.level,
            tr.value,
        )

    def _publish_flood(self, flood: FloodEvent) -> None:
        log.warning("%s", flood.message)
        self.publish(flood_message(self.topics.base, flood))

    # ------------------------------------------------------------------ commands

    def handle_command(self, topic: str, payload: bytes) -> list[OutboundMessage]:
        """Validate and apply an alarm or maintenance command; always exactly one reply,
        returned (see :mod:`gateway.maintenance` for the maintenance commands).

        Validation and the reply are :func:`gateway.alarms.handle_command`'s; the transitions a
        good command causes are published here like any other (``on_transition`` sees them). A
        bad command — oversized, not UTF-8, not a JSON object, wrong types, out-of-range
        ``minutes``, unknown alarm or topic — gets ``{"ok": false, ...}`` and changes nothing.
        """
        now = self.clock()
        if self.rescue is not None and topic in (
            self.rescue.arrive_topic,
            self.rescue.release_topic,
        ):
            reply, *records = self.rescue.command(topic, payload, now)
            for message in records:
                self.publish(message)
            return [reply]
        if topic in (self.topics.cmd_maintenance, self.topics.cmd_maintenance_end):
            result = handle_maintenance_command(
                self.topics.base, topic, payload, self.engine, now, on_calibrated=self._calibrated
            )
        else:
            result = handle_command(self.topics.base, topic, payload, self.engine, now)
        for tr in result.transitions:
            self._publish_transition(tr)
        self._publish_maintenance()
        return [result.reply]
