"""Device maintenance (calibration, 标校) on MQTT: the commands, their events, calibration dates.

* ``P/cmd/device/maintenance`` — ``{"device", "user", "minutes", "reason"}`` puts a device in
  maintenance for ``minutes`` (0 < minutes ≤ :data:`rules.MAX_MAINTENANCE_MINUTES`); it ends by
  itself then. While it lasts the device's telemetry quality is ``maintenance`` (on MQTT and as
  the ``quality=maintenance`` tag of its database lines), and its alarms show ``OUT_OF_SERVICE``:
  no over-limit, no power-off demand, nothing to acknowledge.
* ``P/cmd/device/maintenance/end`` — ``{"device", "user", "reason"?, "calibrated"?}`` ends it
  now; ``"calibrated": true`` records the end as the device's calibration time.
* ``P/events/maintenance`` — QoS 1: ``{"type": "maintenance", "device", "state": "start" |
  "end", "user", "reason", "since", "until", "expired", "ts"}`` for every start and end, and
  ``{"type": "calibration_due", "device", "calibrated_at", "age_days", "ts"}`` for a device whose
  last calibration is older than :data:`CALIBRATION_INTERVAL_DAYS`.

Each command gets exactly one reply on ``P/cmd/reply``; a bad one (unknown device, minutes out of
range, missing user or reason, not in maintenance) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.alarms import (
    MAX_USER_CHARS,
    CommandResult,
    _ms,
    _parse,
    _Rejected,
    _reply,
    _text,
    transition_messages,
)
from gateway.messages import OutboundMessage, json_payload
from gateway.topics import CMD_DEVICE, events_maintenance_topic
from rules import MAX_MAINTENANCE_MINUTES, AlarmCommandError, AlarmTransition, MaintenanceEvent

__all__ = [
    "CALIBRATION_INTERVAL_DAYS",
    "CalibrationDue",
    "MaintenanceTarget",
    "calibration_due",
    "calibration_due_message",
    "handle_maintenance_command",
    "maintenance_message",
    "maintenance_status",
]

#: Methane sensors are calibrated every 15 days (AQ 1029-2019; DOMAIN.md, coal mine): older
#: calibrations are reported as due.
CALIBRATION_INTERVAL_DAYS: Final = 15
MAX_REASON_CHARS: Final = 512
_DAY_S: Final = 86_400.0


class MaintenanceTarget(Protocol):
    """What the commands need from the engine (``rules.RuleEngine`` has it)."""

    def start_maintenance(
        self, device: str, user: str, minutes: float, reason: str, now: float
    ) -> list[AlarmTransition]: ...

    def end_maintenance(
        self, device: str, user: str, reason: str, now: float
    ) -> list[AlarmTransition]: ...


@dataclass(frozen=True, slots=True)
class CalibrationDue:
    """A device whose last calibration is older than the interval."""

    device: str
    calibrated_at: float
    age_days: float


def _minutes(request: Mapping[str, Any]) -> float:
    value = request.get("minutes")
    allowed = f"'minutes' must be a number in (0, {MAX_MAINTENANCE_MINUTES}]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Rejected(allowed)
    if not 0 < value <= MAX_MAINTENANCE_MINUTES:  # also rejects NaN and infinities
        raise _Rejected(f"{allowed}, got {value}")
    return float(value)


def handle_maintenance_command(
    base: str,
    topic: str,
    payload: bytes,
    engine: MaintenanceTarget,
    now: float,
    *,
    on_calibrated: Callable[[str, float], None] | None = None,
) -> CommandResult:
    """Validate and apply one maintenance command received on ``topic``.

    ``on_calibrated(device, now)`` is called for an end with ``"calibrated": true``. Any problem
    gives ``{"ok": false, "error": …}`` and changes nothing.
    """
    request: Any = None
    try:
        verb = topic.removeprefix(f"{base}/{CMD_DEVICE}")
        if verb not in ("maintenance", "maintenance/end"):
            raise _Rejected(f"unknown command topic {topic!r}")
        request = _parse(payload)
        device = _text(request, "device", 64)
        user = _text(request, "user", MAX_USER_CHARS)
        if verb == "maintenance":
            reason = _text(request, "reason", MAX_REASON_CHARS)
            transitions = engine.start_maintenance(device, user, _minutes(request), reason, now)
        else:
            calibrated = request.get("calibrated", False)
            if not isinstance(calibrated, bool):
                raise _Rejected("'calibrated' must be true or false")
            reason = request.get("reason", "")
            if reason != "":
                reason = _text(request, "reason", MAX_REASON_CHARS)
            transitions = engine.end_maintenance(device, user, reason, now)
            if calibrated and on_calibrated is not None:
                on_calibrated(device, now)
    except (_Rejected, AlarmCommandError) as exc:
        error = exc.reason if isinstance(exc, _Rejected) else str(exc)
        reply = _reply(base, now, request, error)
        return CommandResult(False, reply, (), (reply,))
    reply = _reply(base, now, request, None)
    messages = [m for t in transitions for m in transition_messages(base, t)]
    return CommandResult(True, reply, tuple(transitions), (*messages, reply))


def maintenance_message(base: str, event: MaintenanceEvent) -> OutboundMessage:
    """A start or end of maintenance on ``P/events/maintenance``."""
    doc = {
        "type": "maintenance",
        "device": event.device,
        "state": "start" if event.started else "end",
        "user": event.user,
        "reason": event.reason,
        "since": _ms(event.started_at),
        "until": _ms(event.until),
        "expired": event.expired,
        "ts": _ms(event.ts),
    }
    return OutboundMessage(events_maintenance_topic(base), json_payload(doc), 1, False, "event")


def maintenance_status(event: MaintenanceEvent | None) -> dict[str, Any] | None:
    """The ``maintenance`` member of a device's retained status (None when not in maintenance)."""
    if event is None:
        return None
    return {
        "user": event.user,
        "reason": event.reason,
        "since": _ms(event.started_at),
        "until": _ms(event.until),
    }


def calibration_due(calibrated_at: Mapping[str, float | None], now: float) -> list[CalibrationDue]:
    """Devices whose calibration is older than :data:`CALIBRATION_INTERVAL_DAYS` at ``now``
    (devices with no known calibration date are not listed)."""
    out = []
    for device, when in calibrated_at.items():
        if when is None:
            continue
        age = (now - when) / _DAY_S
        if age > CALIBRATION_INTERVAL_DAYS:
            out.append(CalibrationDue(device, when, age))
    return out


def calibration_due_message(base: str, due: CalibrationDue, now: float) -> OutboundMessage:
    """A calibration-due warning on ``P/events/maintenance``."""
    doc = {
        "type": "calibration_due",
        "device": due.device,
        "calibrated_at": _ms(due.calibrated_at),
        "age_days": round(due.age_days, 2),
        "interval_days": CALIBRATION_INTERVAL_DAYS,
        "ts": _ms(now),
    }
    return OutboundMessage(events_maintenance_topic(base), json_payload(doc), 1, False, "event")
