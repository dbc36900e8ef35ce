"""MQTT topic names: the one place that spells them (the contract is README.md's topic table).

Every topic of a site lives under ``P = {topic_prefix}/{site_id}`` (:func:`site_base`). A
device's topics are ``P/{device}/telemetry`` and ``P/{device}/status``; everything else sits
under a first level that is not a device id (:data:`RESERVED_DEVICE_IDS`).

The gateway uses :class:`Topics` (absolute names for one site); code that has only ``P`` at hand
(message builders) uses the functions taking ``base``; readers of other sites' topics (the
console, the ingest decoder, the demo's view) match the relative names (after ``P/``) given here
as constants.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALARMS",
    "ALARM_VERBS",
    "CMD",
    "CMD_ALARM",
    "CMD_DEVICE",
    "CMD_FILTER",
    "CMD_REPLY",
    "CMD_RESCUE",
    "EVENTS",
    "EVENTS_ALARM",
    "EVENTS_MAINTENANCE",
    "GATEWAY",
    "GATEWAY_STATUS",
    "INTERLOCK",
    "REPORT",
    "REPORT_DAILY",
    "RESCUE",
    "RESERVED_DEVICE_IDS",
    "STATUS",
    "TELEMETRY",
    "Topics",
    "alarm_topic",
    "cmd_alarm_topic",
    "cmd_reply_topic",
    "events_alarm_topic",
    "events_maintenance_topic",
    "interlock_topic",
    "is_reply_topic",
    "rescue_topic",
    "site_base",
]

# First levels under P that are not devices.
GATEWAY: Final = "gateway"
CMD: Final = "cmd"
ALARMS: Final = "alarms"
EVENTS: Final = "events"
INTERLOCK: Final = "interlock"
REPORT: Final = "report"
RESCUE: Final = "rescue"

#: First levels of the topic tree under ``P`` that are not devices. A device's topics are
#: ``P/{device}/...``, so a device id equal to one of these would publish into that subtree
#: (``gateway`` overwrites the gateway status, ``cmd`` is answered as a command): the site config
#: refuses them. Add the first level of every new topic here.
RESERVED_DEVICE_IDS: Final = frozenset({GATEWAY, CMD, ALARMS, EVENTS, INTERLOCK, REPORT, RESCUE})

# Last level of a device's two topics: P/{device}/telemetry and P/{device}/status.
TELEMETRY: Final = "telemetry"
STATUS: Final = "status"

# Relative names (after ``P/``).
GATEWAY_STATUS: Final = f"{GATEWAY}/status"
EVENTS_ALARM: Final = f"{EVENTS}/alarm"
EVENTS_MAINTENANCE: Final = f"{EVENTS}/maintenance"
REPORT_DAILY: Final = f"{REPORT}/daily"
CMD_REPLY: Final = f"{CMD}/reply"
#: What the gateway subscribes to: every command, its own replies included (see :func:`is_reply`).
CMD_FILTER: Final = f"{CMD}/#"
#: The verbs of ``P/cmd/alarm/{verb}``.
ALARM_VERBS: Final = ("ack", "shelve", "unshelve", "out_of_service", "return_to_service")
CMD_ALARM: Final = f"{CMD}/alarm/"
CMD_DEVICE: Final = f"{CMD}/device/"
CMD_RESCUE: Final = f"{CMD}/rescue/"


def site_base(prefix: str, site_id: str) -> str:
    """``P``: the root of one site's topics."""
    return f"{prefix.rstrip('/')}/{site_id}"


def alarm_topic(base: str, alarm_id: str) -> str:
    """``P/alarms/{device}/{point}/{rule}`` for an alarm id ``{device}/{point}/{rule}``."""
    return f"{base}/{ALARMS}/{alarm_id}"


def interlock_topic(base: str, area: str) -> str:
    """``P/interlock/{area}``: the retained power-off state of one area."""
    return f"{base}/{INTERLOCK}/{area}"


def rescue_topic(base: str, device: str) -> str:
    """``P/rescue/{device}``: the retained rescue record of one elevator."""
    return f"{base}/{RESCUE}/{device}"


def events_alarm_topic(base: str) -> str:
    return f"{base}/{EVENTS_ALARM}"


def events_maintenance_topic(base: str) -> str:
    return f"{base}/{EVENTS_MAINTENANCE}"


def cmd_reply_topic(base: str) -> str:
    return f"{base}/{CMD_REPLY}"


def cmd_alarm_topic(base: str, verb: str) -> str:
    """``P/cmd/alarm/{verb}`` (one of :data:`ALARM_VERBS`)."""
    return f"{base}/{CMD_ALARM}{verb}"


def is_reply_topic(topic: str) -> bool:
    """True for the ``P/cmd/reply`` topic of any site (what a console watching many sites
    takes as a reply)."""
    return topic.endswith("/" + CMD_REPLY)


class Topics:
    """Absolute topic names of one site, ``P = {topic_prefix}/{site_id}``."""

    __slots__ = (
        "base",
        "cmd_ack",
        "cmd_filter",
        "cmd_maintenance",
        "cmd_maintenance_end",
        "cmd_out_of_service",
        "cmd_reply",
        "cmd_rescue_arrive",
        "cmd_rescue_release",
        "cmd_return_to_service",
        "cmd_shelve",
        "cmd_unshelve",
        "events_alarm",
        "events_maintenance",
        "gateway_status",
        "report_daily",
    )

    def __init__(self, prefix: str, site_id: str) -> None:
        base = self.base = site_base(prefix, site_id)
        self.gateway_status = f"{base}/{GATEWAY_STATUS}"
        self.events_alarm = events_alarm_topic(base)
        self.events_maintenance = events_maintenance_topic(base)
        self.report_daily = f"{base}/{REPORT_DAILY}"
        self.cmd_filter = f"{base}/{CMD_FILTER}"
        self.cmd_reply = cmd_reply_topic(base)
        self.cmd_ack = cmd_alarm_topic(base, "ack")
        self.cmd_shelve = cmd_alarm_topic(base, "shelve")
        self.cmd_unshelve = cmd_alarm_topic(base, "unshelve")
        self.cmd_out_of_service = cmd_alarm_topic(base, "out_of_service")
        self.cmd_return_to_service = cmd_alarm_topic(base, "return_to_service")
        self.cmd_maintenance = f"{base}/{CMD_DEVICE}maintenance"
        self.cmd_maintenance_end = f"{base}/{CMD_DEVICE}maintenance/end"
        self.cmd_rescue_arrive = f"{base}/{CMD_RESCUE}arrive"
        self.cmd_rescue_release = f"{base}/{CMD_RESCUE}release"

    @property
    def commands(self) -> tuple[str, ...]:
        """Every command topic the gateway answers."""
        return (
            self.cmd_ack,
            self.cmd_shelve,
            self.cmd_unshelve,
            self.cmd_out_of_service,
            self.cmd_return_to_service,
            self.cmd_maintenance,
            self.cmd_maintenance_end,
            self.cmd_rescue_arrive,
            self.cmd_rescue_release,
        )

    def is_reply(self, topic: str) -> bool:
        """True for this site's ``P/cmd/reply``: the gateway's own replies come back on its
        ``P/cmd/#`` subscription, and are no command."""
        return topic == self.cmd_reply

    def telemetry(self, device: str) -> str:
        return f"{self.base}/{device}/{TELEMETRY}"

    def status(self, device: str) -> str:
        return f"{self.base}/{device}/{STATUS}"
