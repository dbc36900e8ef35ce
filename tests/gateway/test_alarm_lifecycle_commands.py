"""Unshelve, out-of-service and return-to-service commands through the alarm service: the reply,
the event with user and reason, the retained state; a refused command changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.messages import OutboundMessage
from tests.gateway.badinput.alarm_fixture import BASE, FACE_CH4, REPLY, SHELVE, Alarms, live_alarms

UNSHELVE = f"{BASE}/cmd/alarm/unshelve"
OUT = f"{BASE}/cmd/alarm/out_of_service"
BACK = f"{BASE}/cmd/alarm/return_to_service"
EVENTS = f"{BASE}/events/alarm"


Sent = tuple[dict[str, Any], list[OutboundMessage]]


def send(alarms: Alarms, topic: str, **command: Any) -> Sent:
    """The parsed reply and everything else published for one command."""
    alarms.published.clear()
    (reply,) = alarms.service.handle_command(topic, json.dumps(command).encode())
    assert reply.topic == REPLY
    return json.loads(reply.payload), list(alarms.published)


def event_and_retained(published: list[OutboundMessage]) -> tuple[dict[str, Any], dict[str, Any]]:
    (event,) = [json.loads(m.payload) for m in published if m.topic == EVENTS]
    (retained,) = [m for m in published if m.topic == f"{BASE}/alarms/{FACE_CH4}"]
    assert retained.retain
    return event, json.loads(retained.payload)


def test_out_of_service_then_return_publish_events_with_user_and_reason() -> None:
    alarms = live_alarms()
    assert alarms.state(FACE_CH4) == "UNACK_ACTIVE"
    reply, published = send(alarms, OUT, id=FACE_CH4, user="li.na", reason="head replaced")
    assert reply["ok"] is True
    event, retained = event_and_retained(published)
    assert (event["from"], event["to"], event["user"], event["reason"]) == (
        "UNACK_ACTIVE",
        "OUT_OF_SERVICE",
        "li.na",
        "head replaced",
    )
    assert retained["state"] == "OUT_OF_SERVICE"
    assert retained["power_off"] is True  # removal silences the annunciation, not the interlock

    reply, published = send(alarms, BACK, id=FACE_CH4, user="li.na", reason="head tested")
    assert reply["ok"] is True
    event, retained = event_and_retained(published)
    assert (event["from"], event["to"], event["user"], event["reason"]) == (
        "OUT_OF_SERVICE",
        "UNACK_ACTIVE",  # still over the limit: the operator sees it again
        "li.na",
        "head tested",
    )
    assert retained["state"] == "UNACK_ACTIVE"


def test_unshelve_ends_the_shelve_now() -> None:
    alarms = live_alarms()
    assert send(alarms, SHELVE, id=FACE_CH4, user="zhang", minutes=30)[0]["ok"] is True
    assert alarms.state(FACE_CH4) == "SHELVED"
    reply, published = send(alarms, UNSHELVE, id=FACE_CH4, user="zhang")
    assert reply["ok"] is True
    event, retained = event_and_retained(published)
    assert (event["from"], event["to"], event["user"]) == ("SHELVED", "UNACK_ACTIVE", "zhang")
    assert "reason" not in event
    assert "shelved_until" not in retained


@pytest.mark.parametrize(
    ("topic", "command", "error"),
    [
        (OUT, {"id": FACE_CH4, "user": "li"}, "'reason' must be a non-empty string"),
        (OUT, {"id": FACE_CH4, "user": "li", "reason": "  "}, "'reason' must be a non-empty"),
        (OUT, {"id": "face1-gas/ch4/nope", "user": "li", "reason": "x"}, "unknown alarm"),
        (UNSHELVE, {"id": FACE_CH4, "user": "li"}, "alarm is not shelved"),
        (UNSHELVE, {"id": "nope/x/y", "user": "li"}, "unknown alarm"),
        (UNSHELVE, {"id": FACE_CH4, "user": "li", "reason": 5}, "'reason' must be a non-empty"),
        (BACK, {"id": FACE_CH4, "user": "li"}, "alarm is not out of service"),
        (BACK, {"id": FACE_CH4}, "'user' must be a non-empty string"),
    ],
)
def test_a_refused_command_replies_the_error_and_changes_nothing(
    topic: str, command: dict[str, Any], error: str
) -> None:
    alarms = live_alarms()
    before = alarms.snapshot()
    reply, published = send(alarms, topic, **command)
    assert reply["ok"] is False
    assert error in reply["error"]
    assert reply["request"] == command
    assert published == []
    assert alarms.snapshot() == before


def test_out_of_service_twice_is_refused() -> None:
    alarms = live_alarms()
    send(alarms, OUT, id=FACE_CH4, user="li", reason="head replaced")
    before = alarms.snapshot()
    reply, published = send(alarms, OUT, id=FACE_CH4, user="li", reason="again")
    assert (reply["ok"], published) == (False, [])
    assert "already out of service" in reply["error"]
    assert alarms.snapshot() == before
