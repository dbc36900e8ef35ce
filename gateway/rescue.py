"""Elevator rescue records (96333): from the trapped-passenger alarm to the passengers' release.

A trapped-passenger alarm (an alarm of level ``TRAPPED``, e.g. the elevator pack's
``elevator_trapped``) rising on a device with no open rescue opens one. The record lives on the
retained ``P/rescue/{device}`` (QoS 1) and carries the elevator's registration code and
maintenance unit (device tags ``registration_code`` and ``maintenance_unit``) and the time of each
stage:

* ``raised`` — the alarm rose;
* ``acknowledged`` — an operator acknowledged the alarm (``P/cmd/alarm/ack``);
* ``arrived`` — the rescuer reached the car: ``P/cmd/rescue/arrive`` ``{"device", "user"}``;
* ``released`` — the passengers are out: ``P/cmd/rescue/release`` ``{"device", "user"}``.

Each record says how long the rescue has taken against the site's targets (``rescue:
{arrive_within_min: 30, release_within_min: …}`` in the site file; 30 minutes to arrival by
default) and is published again when a target is missed. On release the final record is
published once (not retained) and the retained topic is cleared with an empty payload, so a
board shows open rescues only. Commands are validated here and always get one reply on
``P/cmd/reply``; they enter through :mod:`gateway.commands` like every command.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.alarms import MAX_USER_CHARS, _parse, _Rejected, _text
from gateway.commands import command_reply
from gateway.config import SiteConfig
from gateway.messages import OutboundMessage
from gateway.sinks.lineprotocol import rescue_line
from gateway.topics import CMD_RESCUE, rescue_topic
from rules import AlarmTransition, State

__all__ = [
    "DEFAULT_ARRIVE_WITHIN_MIN",
    "RESCUE_LEVEL",
    "RescueBook",
    "RescueRecord",
    "RescueTargets",
]

#: Alarm level that opens a rescue.
RESCUE_LEVEL: Final = "TRAPPED"
#: Default target from the alarm to the rescuer's arrival (minutes).
DEFAULT_ARRIVE_WITHIN_MIN: Final = 30.0
#: Device tags copied into the record.
REGISTRATION_TAG: Final = "registration_code"
MAINTENANCE_TAG: Final = "maintenance_unit"
STAGES: Final = ("raised", "acknowledged", "arrived", "released")
_QOS: Final = 1


def _ms(ts: float | None) -> int | None:
    return None if ts is None else round(ts * 1000)


@dataclass(frozen=True, slots=True)
class RescueTargets:
    """The site's rescue targets in minutes (``None``: not judged)."""

    arrive_within_min: float | None = DEFAULT_ARRIVE_WITHIN_MIN
    release_within_min: float | None = None


@dataclass(slots=True)
class RescueRecord:
    """One rescue of one elevator."""

    device: str
    alarm: str
    registration_code: str | None
    maintenance_unit: str | None
    times: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(STAGES))
    users: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(STAGES[1:]))
    #: Targets already reported as missed (so each is announced once).
    missed: set[str] = field(default_factory=set)

    @property
    def open(self) -> bool:
        return self.times["released"] is None

    def elapsed_s(self, until: str, now: float) -> float:
        start = self.times["raised"]
        assert start is not None
        end = self.times[until]
        return (now if end is None else end) - start

    def overdue(self, targets: RescueTargets, now: float) -> set[str]:
        """Targets this rescue has missed by ``now``."""
        out = set()
        for stage, minutes in (
            ("arrived", targets.arrive_within_min),
            ("released", targets.release_within_min),
        ):
            if minutes is not None and self.elapsed_s(stage, now) > minutes * 60.0:
                out.add(stage)
        return out

    def line(self, site_id: str, targets: RescueTargets, now: float) -> str:
        """The record as one ``rescue`` line for the database (the elevator board reads it)."""
        reached = [i for i, stage in enumerate(STAGES) if self.times[stage] is not None]
        overdue = self.overdue(targets, now)
        return rescue_line(
            site_id,
            round(now * 1000),
            device=self.device,
            open_=self.open,
            stage=max(reached, default=0),
            to_arrival_s=self.elapsed_s("arrived", now),
            to_release_s=self.elapsed_s("released", now),
            overdue_arrival="arrived" in overdue,
            overdue_release="released" in overdue,
        )

    def doc(self, targets: RescueTargets, now: float) -> dict[str, Any]:
        """The payload of ``P/rescue/{device}``."""
        return {
            "ts": _ms(now),
            "device": self.device,
            "open": self.open,
            "alarm": self.alarm,
            "registration_code": self.registration_code,
            "maintenance_unit": self.maintenance_unit,
            "stages": {stage: _ms(self.times[stage]) for stage in STAGES},
            "users": dict(self.users),
            "elapsed_s": {
                "to_arrival": round(self.elapsed_s("arrived", now), 1),
                "to_release": round(self.elapsed_s("released", now), 1),
            },
            "targets_min": {
                "arrival": targets.arrive_within_min,
                "release": targets.release_within_min,
            },
            "overdue": sorted(self.overdue(targets, now)),
        }


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RescueBook:
    """Open rescues by device, fed with alarm transitions and rescue commands.

    Pure logic with time passed in; :meth:`observe`, :meth:`check` and :meth:`command` return
    the MQTT messages to publish.
    """

    def __init__(
        self,
        base: str,
        device_tags: Mapping[str, Mapping[str, str]],
        targets: RescueTargets | None = None,
    ) -> None:
        self.base = base
        self.device_tags = device_tags
        self.targets = targets or RescueTargets()
        self.open: dict[str, RescueRecord] = {}
        #: Called with one ``rescue`` line each time a record changes (the gateway sends it to
        #: the database through the outbox); None: no database.
        self.write_line: Callable[[str], None] | None = None
        self.site_id = base.rsplit("/", 1)[-1]
        self.arrive_topic = f"{base}/{CMD_RESCUE}arrive"
        self.release_topic = f"{base}/{CMD_RESCUE}release"

    @classmethod
    def for_site(cls, site: SiteConfig, base: str) -> RescueBook:
        """The book of a site: its devices' tags and its ``rescue`` targets."""
        targets = RescueTargets(site.rescue.arrive_within_min, site.rescue.release_within_min)
        book = cls(base, {d.id: dict(d.tags) for d in site.devices}, targets)
        book.site_id = site.site.id
        return book

    def topic(self, device: str) -> str:
        return rescue_topic(self.base, device)

    def _message(self, record: RescueRecord, now: float, *, retain: bool) -> OutboundMessage:
        payload = json.dumps(record.doc(self.targets, now), ensure_ascii=False).encode()
        return OutboundMessage(
            self.topic(record.device), payload, _QOS, retain, "alarm" if retain else "event"
        )

    def _publish(self, record: RescueRecord, now: float) -> list[OutboundMessage]:
        if self.write_line is not None:
            self.write_line(record.line(self.site_id, self.targets, now))
        if record.open:
            return [self._message(record, now, retain=True)]
        # the final record once, then the retained topic cleared: boards show open rescues only
        return [
            self._message(record, now, retain=False),
            OutboundMessage(self.topic(record.device), b"", _QOS, True, "alarm"),
        ]

    def observe(self, tr: AlarmTransition) -> list[OutboundMessage]:
        """Open a rescue when a trapped alarm rises; note its acknowledgement."""
        if tr.level != RESCUE_LEVEL:
            return []
        record = self.open.get(tr.device)
        if record is None:
            raised = tr.to_state is State.UNACK_ACTIVE and tr.from_state in (
                State.NORMAL,
                State.RTN_UNACK,
            )
            if not raised:
                return []
            tags = self.device_tags.get(tr.device, {})
            record = RescueRecord(
                device=tr.device,
                alarm=tr.id,
                registration_code=tags.get(REGISTRATION_TAG),
                maintenance_unit=tags.get(MAINTENANCE_TAG),
            )
            record.times["raised"] = tr.ts
            self.open[tr.device] = record
            return self._publish(record, tr.ts)
        acked = tr.to_state in (State.ACK_ACTIVE, State.NORMAL) and tr.user is not None
        if tr.id == record.alarm and acked and record.times["acknowledged"] is None:
            record.times["acknowledged"] = tr.ts
            record.users["acknowledged"] = tr.user
            return self._publish(record, tr.ts)
        return []

    def check(self, now: float) -> list[OutboundMessage]:
        """Records that have just missed a target, published again."""
        out: list[OutboundMessage] = []
        for record in self.open.values():
            missed = record.overdue(self.targets, now) - record.missed
            if missed:
                record.missed |= missed
                out += self._publish(record, now)
        return out

    def command(self, topic: str, payload: bytes, now: float) -> list[OutboundMessage]:
        """Apply ``P/cmd/rescue/arrive`` or ``…/release``; always exactly one reply (first)."""
        request: Any = None
        try:
            if topic not in (self.arrive_topic, self.release_topic):
                raise _Refused(f"unknown command topic {topic!r}")
            request = _parse(payload)
            device = _text(request, "device", 64)  # device ids: at most 64 characters
            user = _text(request, "user", MAX_USER_CHARS)
            record = self.open.get(device)
            if record is None:
                raise _Refused(f"no open rescue for device {device!r}")
            stage = "arrived" if topic == self.arrive_topic else "released"
            if record.times[stage] is not None:
                raise _Refused(f"rescue of {device!r} already {stage}")
            if stage == "released" and record.times["arrived"] is None:
                record.times["arrived"] = now  # released by whoever is there: they arrived
                record.users["arrived"] = user
            record.times[stage] = now
            record.users[stage] = user
        except (_Refused, _Rejected) as exc:
            return [command_reply(self.base, now, request, exc.reason)]
        if not record.open:
            del self.open[device]
        return [command_reply(self.base, now, request, None), *self._publish(record, now)]
