"""Alarms in the gateway: the rules engine over the point table, its MQTT topics and commands.

Each poll wakes the alarm task; it ticks the engine over the whole point table (one vectorised
pass, at most every ``min_tick`` seconds, and at least once a second for time-based rules) and
publishes every transition: retained state on ``P/alarms/{device}/{point}/{rule}`` (an empty
retained payload deletes a cleared, acknowledged alarm) and the transition on
``P/events/alarm``, both at QoS 1. Ack and shelve commands arrive on ``P/cmd/alarm/ack`` and
``P/cmd/alarm/shelve``; each gets a reply on ``P/cmd/reply`` and a bad one changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from gateway.aio import wait_event
from gateway.config import SiteConfig
from gateway.messages import OutboundMessage
from gateway.points import PointTable
from gateway.telemetry import Topics, json_payload
from rules import (
    AlarmCommandError,
    AlarmState,
    AlarmTransition,
    FloodEvent,
    PointRef,
    RuleEngine,
    load_packs,
)

__all__ = ["MAX_COMMAND_BYTES", "AlarmService", "build_engine"]

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 4096
MAX_USER_CHARS = 64


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
        )
        for rows in table.devices
        for p in rows.device.points
    ]
    overrides = {d.id: d.limits for d in site.devices if d.limits}
    return RuleEngine(
        refs, load_packs(list(site.rules)), overrides=overrides, n_devices=len(site.devices)
    )


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


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
        min_tick: float = 0.02,
        on_transition: Callable[[AlarmTransition], None] | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.topics = topics
        self.publish = publish
        self.clock = clock
        self.min_tick = min_tick
        self.on_transition = on_transition
        self.wake = asyncio.Event()
        self.latency_ms: deque[float] = deque(maxlen=10_000)
        self.transitions = 0
        self._device_sample_ts = np.zeros(len(table.devices), dtype=np.float64)
        self._device_index = {rows.device.id: rows.index for rows in table.devices}

    # ------------------------------------------------------------------ ticking

    def poll_arrived(self, device_index: int, ts: float) -> None:
        self._device_sample_ts[device_index] = ts
        self.wake.set()

    def tick(self) -> list[AlarmTransition]:
        now = self.clock()
        t = self.table
        t.refresh_stale(now)
        transitions = self.engine.tick(now, t.values, t.quality, t.sample_ts, t.device_online)
        for tr in transitions:
            self._publish_transition(tr)
        for flood in self.engine.take_flood_events():
            self._publish_flood(flood)
        return transitions

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await wait_event(self.wake, 1.0)  # time-based rules tick at least once a second
            wait = last + self.min_tick - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.wake.clear()
            last = loop.time()
            self.tick()

    # ------------------------------------------------------------------ messages

    def _state_doc(self, s: AlarmState | AlarmTransition, state: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ts": int(s.ts * 1000),
            "state": state,
            "level": s.level,
            "priority": s.priority,
            "value": _num(s.value),
            "limit": _num(s.limit),
            "message": s.message,
        }
        if s.forecast_s is not None and math.isfinite(s.forecast_s):
            doc["forecast_s"] = round(s.forecast_s, 1)
        return doc

    def _publish_transition(self, tr: AlarmTransition) -> None:
        self.transitions += 1
        to_state = str(tr.to_state)
        state_topic = self.topics.alarm(tr.device, tr.point, tr.rule)
        if to_state == "NORMAL":
            retained = OutboundMessage(state_topic, b"", qos=1, retain=True, kind="alarm")
        else:
            retained = OutboundMessage(
                state_topic,
                json_payload(self._state_doc(tr, to_state)),
                qos=1,
                retain=True,
                kind="alarm",
            )
        event = self._state_doc(tr, to_state)
        event.update(
            {
                "id": tr.id,
                "from": str(tr.from_state),
                "to": to_state,
                "device": tr.device,
                "point": tr.point,
                "rule": tr.rule,
            }
        )
        if tr.user:
            event["user"] = tr.user
        self.publish(retained)
        if self.on_transition is not None:
            self.on_transition(tr)
        self.publish(
            OutboundMessage(self.topics.events_alarm, json_payload(event), qos=1, kind="event")
        )
        if to_state == "UNACK_ACTIVE" and str(tr.from_state) == "NORMAL":
            idx = self._device_index.get(tr.device)
            if idx is not None and self._device_sample_ts[idx] > 0:
                self.latency_ms.append((time.time() - self._device_sample_ts[idx]) * 1000.0)
        log.info(
            "alarm %s %s -> %s (%s, value %s)", tr.id, tr.from_state, to_state, tr.level, tr.value
        )

    def _publish_flood(self, flood: FloodEvent) -> None:
        doc = {
            "ts": int(flood.ts * 1000),
            "flood": flood.started,
            "count": flood.count,
            "window_s": flood.window_s,
            "message": flood.message,
        }
        log.warning("%s", flood.message)
        self.publish(
            OutboundMessage(self.topics.events_alarm, json_payload(doc), qos=1, kind="event")
        )

    # ------------------------------------------------------------------ commands

    def handle_command(self, topic: str, payload: bytes) -> list[OutboundMessage]:
        """Validate and apply an ack/shelve command; always exactly one reply."""
        request: Any = None
        try:
            if len(payload) > MAX_COMMAND_BYTES:
                raise ValueError(f"command larger than {MAX_COMMAND_BYTES} bytes")
            try:
                request = json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"payload is not JSON: {exc}") from None
            if not isinstance(request, dict):
                raise ValueError("payload must be a JSON object")
            alarm_id = request.get("id")
            user = request.get("user", "")
            if not isinstance(alarm_id, str) or not alarm_id:
                raise ValueError("'id' must be a string '{device}/{point}/{rule}'")
            if not isinstance(user, str) or len(user) > MAX_USER_CHARS:
                raise ValueError(f"'user' must be a string of at most {MAX_USER_CHARS} characters")
            now = self.clock()
            if topic == self.topics.cmd_ack:
                transitions = self.engine.ack(alarm_id, user, now)
            elif topic == self.topics.cmd_shelve:
                minutes = request.get("minutes")
                if isinstance(minutes, bool) or not isinstance(minutes, int | float):
                    raise ValueError("'minutes' must be a number")
                transitions = self.engine.shelve(alarm_id, user, float(minutes), now)
            else:
                raise ValueError(f"unknown command topic {topic}")
        except (ValueError, AlarmCommandError) as exc:
            shown = request if isinstance(request, dict | list | str | int | float) else None
            return [self._reply(False, str(exc), shown)]
        for tr in transitions:
            self._publish_transition(tr)
        return [self._reply(True, None, request)]

    def _reply(self, ok: bool, error: str | None, request: Any) -> OutboundMessage:
        body = json_payload({"ok": ok, "error": error, "request": request})
        return OutboundMessage(self.topics.cmd_reply, body, qos=1, kind="reply")
