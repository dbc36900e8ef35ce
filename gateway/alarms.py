"""Alarm messages on MQTT: transitions, retained state, flood events and operator commands.

Pure functions from the rules engine's records to :class:`OutboundMessage` values, per the MQTT
contract in README.md and docs/rules.md (``P`` = ``{topic_prefix}/{site_id}``, passed in as
``base``):

* ``P/alarms/{device}/{point}/{rule}`` — retained, QoS 1: the alarm's current state; an empty
  retained payload deletes an alarm that is cleared and acknowledged (state NORMAL).
* ``P/events/alarm`` — QoS 1: every transition, with ``id``, ``from`` and ``to``; flood start and
  end are announced here too, as ``{"type": "flood", …}``.
* ``P/cmd/alarm/ack`` and ``P/cmd/alarm/shelve`` — JSON commands ``{"id", "user", "minutes"}``;
  ``P/cmd/alarm/unshelve``, ``…/out_of_service`` and ``…/return_to_service`` — ``{"id", "user",
  "reason"}`` (the reason required out of service); the event of the transition they cause
  carries ``user`` and ``reason``. :func:`handle_command` validates one, applies it to the
  engine and returns the reply for
  ``P/cmd/reply`` (``{"ok", "error", "request"}``). A malformed command or one naming an unknown
  alarm gets an error reply and changes nothing.

Timestamps are Unix epoch milliseconds; NaN values are sent as ``null``. Messages are the
gateway's :class:`gateway.messages.OutboundMessage` (``b""`` payload deletes a retained topic);
there is no MQTT client here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.commands import MAX_COMMAND_BYTES, command_reply
from gateway.messages import OutboundMessage, json_payload
from gateway.topics import (
    ALARM_VERBS,
    alarm_topic,
    cmd_alarm_topic,
    events_alarm_topic,
    interlock_topic,
)
from rules import (
    MAX_SHELVE_MINUTES,
    AlarmCommandError,
    AlarmState,
    AlarmTransition,
    AreaInterlock,
    FloodEvent,
    PowerLossEvent,
    State,
)

__all__ = [
    "MAX_COMMAND_BYTES",
    "AlarmCommandTarget",
    "CommandResult",
    "OutboundMessage",
    "event_message",
    "flood_message",
    "handle_command",
    "interlock_message",
    "power_loss_message",
    "state_message",
    "state_messages",
    "transition_messages",
]

MAX_ID_CHARS: Final = 256
MAX_USER_CHARS: Final = 128
MAX_REASON_CHARS: Final = 512
QOS_ALARM: Final = 1


class AlarmCommandTarget(Protocol):
    """What :func:`handle_command` needs from the engine (``rules.RuleEngine`` has it)."""

    def ack(self, alarm_id: str, user: str, now: float) -> list[AlarmTransition]: ...

    def shelve(
        self, alarm_id: str, user: str, minutes: float, now: float
    ) -> list[AlarmTransition]: ...

    def unshelve(
        self, alarm_id: str, user: str, now: float, reason: str | None = None
    ) -> list[AlarmTransition]: ...

    def out_of_service(
        self, alarm_id: str, user: str, reason: str, now: float
    ) -> list[AlarmTransition]: ...

    def return_to_service(
        self, alarm_id: str, user: str, now: float, reason: str | None = None
    ) -> list[AlarmTransition]: ...


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Outcome of one command: the reply, the transitions it caused and every message to
    publish (transition events and retained states first, then the reply)."""

    ok: bool
    reply: OutboundMessage
    transitions: tuple[AlarmTransition, ...] = ()
    messages: tuple[OutboundMessage, ...] = field(default_factory=tuple)


def _ms(ts: float) -> int:
    return round(ts * 1000.0)


def _num(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _state_fields(record: AlarmTransition | AlarmState, state: State) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ts": _ms(record.ts),
        "state": state.value,
        "level": record.level,
        "priority": record.priority,
        "value": _num(record.value),
        "limit": _num(record.limit),
        "message": record.message,
    }
    if record.forecast_s is not None:
        doc["forecast_s"] = _num(record.forecast_s)
    if record.power_off is not None:
        doc["power_off"] = record.power_off
    if record.stale:
        doc["stale"] = True
    return doc


def state_message(base: str, state: AlarmState) -> OutboundMessage:
    """The retained state of one alarm (empty payload when it is NORMAL)."""
    topic = alarm_topic(base, state.id)
    if state.state is State.NORMAL:
        return OutboundMessage(topic, b"", QOS_ALARM, True, "alarm")
    doc = _state_fields(state, state.state)
    if state.shelved_until is not None:
        doc["shelved_until"] = _ms(state.shelved_until)
    return OutboundMessage(topic, json_payload(doc), QOS_ALARM, True, "alarm")


def state_messages(base: str, states: Iterable[AlarmState]) -> list[OutboundMessage]:
    """Retained messages for ``engine.active_alarms()``, e.g. to republish after a restart."""
    return [state_message(base, s) for s in states]


def event_message(base: str, t: AlarmTransition) -> OutboundMessage:
    """The ``P/events/alarm`` message of one transition."""
    doc = {
        "type": "transition",
        "id": t.id,
        "from": t.from_state.value,
        "to": t.to_state.value,
        "device": t.device,
        "point": t.point,
        "rule": t.rule,
        **_state_fields(t, t.to_state),
    }
    if t.user is not None:
        doc["user"] = t.user
    if t.reason is not None:
        doc["reason"] = t.reason
    return OutboundMessage(events_alarm_topic(base), json_payload(doc), QOS_ALARM, False, "event")


def _retained_of(base: str, t: AlarmTransition) -> OutboundMessage:
    topic = alarm_topic(base, t.id)
    if t.to_state is State.NORMAL:
        return OutboundMessage(topic, b"", QOS_ALARM, True, "alarm")
    doc = _state_fields(t, t.to_state)
    return OutboundMessage(topic, json_payload(doc), QOS_ALARM, True, "alarm")


def transition_messages(base: str, t: AlarmTransition) -> list[OutboundMessage]:
    """The event and the new retained state for one transition (in that order)."""
    return [event_message(base, t), _retained_of(base, t)]


def flood_message(base: str, event: FloodEvent) -> OutboundMessage:
    """A flood start or end, announced on ``P/events/alarm`` with ``"type": "flood"``."""
    doc = {
        "type": "flood",
        "flood": event.started,
        "id": "flood",
        "from": "NORMAL" if event.started else "FLOOD",
        "to": "FLOOD" if event.started else "NORMAL",
        "ts": _ms(event.ts),
        "count": event.count,
        "window_s": event.window_s,
        "message": event.message,
    }
    return OutboundMessage(events_alarm_topic(base), json_payload(doc), QOS_ALARM, False, "event")


def interlock_message(base: str, state: AreaInterlock) -> OutboundMessage:
    """The retained ``P/interlock/{area}`` message:
    ``{"ts", "power_off", "causes": [alarm ids], "feed": "on"|"off"|"unknown", "since"}``."""
    doc = {
        "ts": _ms(state.ts),
        "power_off": state.power_off,
        "causes": list(state.causes),
        "feed": state.feed,
        "since": _ms(state.since),
    }
    return OutboundMessage(
        interlock_topic(base, state.area), json_payload(doc), QOS_ALARM, True, "alarm"
    )


def power_loss_message(base: str, event: PowerLossEvent) -> OutboundMessage:
    """An unexpected power loss (feed off with no power-off demanded), on ``P/events/alarm``
    with ``"type": "unexpected_power_loss"``."""
    doc = {
        "type": "unexpected_power_loss",
        "id": f"interlock/{event.area}",
        "area": event.area,
        "points": list(event.points),
        "ts": _ms(event.ts),
        "message": event.message,
    }
    return OutboundMessage(events_alarm_topic(base), json_payload(doc), QOS_ALARM, False, "event")


# -- commands ----------------------------------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(request: Mapping[str, Any], key: str, limit: int) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Rejected(f"{key!r} must be a non-empty string")
    if len(value) > limit:
        raise _Rejected(f"{key!r} is longer than {limit} characters")
    return value


def _optional_reason(request: Mapping[str, Any]) -> str | None:
    if request.get("reason") is None:
        return None
    return _text(request, "reason", MAX_REASON_CHARS)


def _minutes(request: Mapping[str, Any]) -> float:
    value = request.get("minutes")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Rejected(f"'minutes' must be a number in (0, {MAX_SHELVE_MINUTES}]")
    if not 0 < value <= MAX_SHELVE_MINUTES:  # also rejects NaN and infinities
        raise _Rejected(f"'minutes' must be a number in (0, {MAX_SHELVE_MINUTES}], got {value}")
    return float(value)


def _parse(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_COMMAND_BYTES:
        raise _Rejected(f"command larger than {MAX_COMMAND_BYTES} bytes")
    try:
        request = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Rejected(f"payload is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise _Rejected("payload is nested too deeply") from None
    if not isinstance(request, dict):
        raise _Rejected("payload must be a JSON object")
    try:  # JSON escapes can spell lone surrogates: no reply or event could carry them
        json_payload(request)
    except UnicodeEncodeError:
        raise _Rejected("command text holds lone UTF-16 surrogates") from None
    except ValueError:
        pass  # NaN/Infinity: the fields that matter are checked one by one below
    return request


def _reply(base: str, now: float, request: Any, error: str | None) -> OutboundMessage:
    return command_reply(base, now, request, error)


def handle_command(
    base: str, topic: str, payload: bytes, engine: AlarmCommandTarget, now: float
) -> CommandResult:
    """Validate and apply one alarm command received on ``topic``.

    ``P/cmd/alarm/ack`` takes ``{"id", "user"}``; ``P/cmd/alarm/shelve`` also ``"minutes"``
    (0 < minutes ≤ 1440); ``unshelve``, ``out_of_service`` and ``return_to_service`` take
    ``{"id", "user", "reason"}`` (``reason`` required out of service, optional otherwise). Other
    keys are ignored and echoed back in ``request``. Any problem — size, encoding, JSON, types,
    range, unknown alarm, an alarm not awaiting acknowledgement, not shelved, already or not out
    of service — gives ``{"ok": false, "error": …}`` and leaves the engine unchanged.
    """
    request: Any = None
    try:
        prefix = cmd_alarm_topic(base, "")
        verb = topic.removeprefix(prefix) if topic.startswith(prefix) else ""
        if verb not in ALARM_VERBS:
            raise _Rejected(f"unknown command topic {topic!r}")
        request = _parse(payload)
        alarm_id = _text(request, "id", MAX_ID_CHARS)
        user = _text(request, "user", MAX_USER_CHARS)
        if verb == "ack":
            transitions = engine.ack(alarm_id, user, now)
        elif verb == "shelve":
            transitions = engine.shelve(alarm_id, user, _minutes(request), now)
        elif verb == "out_of_service":
            reason = _text(request, "reason", MAX_REASON_CHARS)
            transitions = engine.out_of_service(alarm_id, user, reason, now)
        elif verb == "unshelve":
            transitions = engine.unshelve(alarm_id, user, now, _optional_reason(request))
        else:
            back = _optional_reason(request)
            transitions = engine.return_to_service(alarm_id, user, now, back)
    except _Rejected as exc:
        reply = _reply(base, now, request, exc.reason)
        return CommandResult(False, reply, (), (reply,))
    except AlarmCommandError as exc:
        reply = _reply(base, now, request, str(exc))
        return CommandResult(False, reply, (), (reply,))
    reply = _reply(base, now, request, None)
    messages = [m for t in transitions for m in transition_messages(base, t)]
    return CommandResult(True, reply, tuple(transitions), (*messages, reply))
