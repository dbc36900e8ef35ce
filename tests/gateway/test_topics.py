"""The topic names of gateway.topics against the contract's table (README.md, "MQTT topics")."""

from __future__ import annotations

import pytest

from gateway.topics import (
    RESERVED_DEVICE_IDS,
    Topics,
    alarm_topic,
    interlock_topic,
    is_reply_topic,
    rescue_topic,
    site_base,
)

P = "hazard/site-01"


def test_site_topics_are_the_contracts() -> None:
    t = Topics("hazard/", "site-01")  # a trailing slash of the prefix is not doubled
    assert t.base == P == site_base("hazard", "site-01")
    assert t.telemetry("gas-1") == f"{P}/gas-1/telemetry"
    assert t.status("gas-1") == f"{P}/gas-1/status"
    assert t.gateway_status == f"{P}/gateway/status"
    assert t.events_alarm == f"{P}/events/alarm"
    assert t.events_maintenance == f"{P}/events/maintenance"
    assert t.report_daily == f"{P}/report/daily"
    assert t.cmd_filter == f"{P}/cmd/#"
    assert t.cmd_reply == f"{P}/cmd/reply"
    assert t.commands == (
        f"{P}/cmd/alarm/ack",
        f"{P}/cmd/alarm/shelve",
        f"{P}/cmd/alarm/unshelve",
        f"{P}/cmd/alarm/out_of_service",
        f"{P}/cmd/alarm/return_to_service",
        f"{P}/cmd/device/maintenance",
        f"{P}/cmd/device/maintenance/end",
        f"{P}/cmd/rescue/arrive",
        f"{P}/cmd/rescue/release",
    )
    assert alarm_topic(P, "gas-1/ch4/hh") == f"{P}/alarms/gas-1/ch4/hh"
    assert interlock_topic(P, "face-1") == f"{P}/interlock/face-1"
    assert rescue_topic(P, "lift-1") == f"{P}/rescue/lift-1"


def test_every_non_device_first_level_is_reserved() -> None:
    t = Topics("hazard", "site-01")
    named = [
        t.gateway_status,
        t.events_alarm,
        t.events_maintenance,
        t.report_daily,
        t.cmd_reply,
        *t.commands,
        alarm_topic(P, "d/p/r"),
        interlock_topic(P, "a"),
        rescue_topic(P, "d"),
    ]
    first_levels = {topic.removeprefix(P + "/").split("/")[0] for topic in named}
    assert first_levels == RESERVED_DEVICE_IDS


@pytest.mark.parametrize(
    ("topic", "reply"),
    [
        (f"{P}/cmd/reply", True),
        ("other/site-02/cmd/reply", True),
        (f"{P}/cmd/alarm/ack", False),
        (f"{P}/cmd/replyx", False),
        (f"{P}/reply", False),
    ],
)
def test_is_reply(topic: str, reply: bool) -> None:
    assert is_reply_topic(topic) is reply
    assert Topics("hazard", "site-01").is_reply(topic) is (reply and topic.startswith(P))
