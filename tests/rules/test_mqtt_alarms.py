"""gateway.alarms: MQTT messages for alarms and the ack/shelve command handler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.alarms import (
    MAX_COMMAND_BYTES,
    flood_message,
    handle_command,
    interlock_message,
    power_loss_message,
    state_message,
    state_messages,
    transition_messages,
)
from gateway.messages import OutboundMessage
from rules import FloodEvent, PowerLossEvent, State, load_packs
from tests.rules.harness import PACKS, Site, device_points

P = "hazard/xinmi-mine-01"
ALARM = "face1-gas/ch4/ch4_face"


def site_with_alarm() -> Site:
    site = Site(
        device_points("face1-gas", 0, "gas", {"position": "T1", "area": "face-1"}),
        load_packs([PACKS / "coal_mine.yaml"]),
    )
    site.set("face1-gas", ch4=0.2, co=0, o2=20.9, h2s=0, temperature=20, status=1, fault=0)
    site.tick()
    site.set("face1-gas", ch4=1.62)
    site.tick(1)
    return site


def doc(message: OutboundMessage) -> dict[str, Any]:
    parsed = json.loads(message.payload)
    assert isinstance(parsed, dict)
    return parsed


def test_transition_gives_event_and_retained_state() -> None:
    site = site_with_alarm()
    (t,) = site.log[-1:]
    event, retained = transition_messages(P, t)
    assert (event.topic, event.qos, event.retain) == (f"{P}/events/alarm", 1, False)
    assert (retained.topic, retained.qos, retained.retain) == (f"{P}/alarms/{ALARM}", 1, True)
    e = doc(event)
    assert e["id"] == ALARM and (e["from"], e["to"]) == ("NORMAL", "UNACK_ACTIVE")
    assert (e["device"], e["point"], e["rule"]) == ("face1-gas", "ch4", "ch4_face")
    assert e["ts"] == round(site.now * 1000) and isinstance(e["ts"], int)
    r = doc(retained)
    assert {k: r[k] for k in ("state", "level", "priority", "value", "limit")} == {
        "state": "UNACK_ACTIVE",
        "level": "HH",
        "priority": 1,
        "value": 1.62,
        "limit": 1.5,
    }
    assert "甲烷" in r["message"]


def test_cleared_and_acknowledged_alarm_deletes_its_retained_topic() -> None:
    site = site_with_alarm()
    site.set("face1-gas", ch4=0.5)
    (rtn,) = site.tick(1)
    assert doc(transition_messages(P, rtn)[1])["state"] == "RTN_UNACK"
    (normal,) = site.engine.ack(ALARM, "zhang", site.now)
    event, retained = transition_messages(P, normal)
    assert retained == OutboundMessage(f"{P}/alarms/{ALARM}", b"", 1, True, "alarm")
    assert doc(event)["user"] == "zhang" and doc(event)["to"] == "NORMAL"


def test_nan_values_are_null_and_states_republish() -> None:
    site = site_with_alarm()
    site.online[0] = False
    site.tick(1)
    site.tick(2)  # comm on-delay 2 s
    states = site.engine.active_alarms()
    messages = state_messages(P, states)
    comm = next(m for m in messages if m.topic.endswith("/_device/fault_lockout_comm"))
    assert doc(comm)["limit"] is None and comm.retain
    # a power-off alarm is never suppressed by the lost link: still active, value marked stale
    methane = doc(state_message(P, site.engine.state(ALARM)))
    assert (methane["state"], methane["power_off"], methane["stale"]) == (
        "UNACK_ACTIVE",
        True,
        True,
    )


def test_flood_event_message() -> None:
    msg = flood_message(P, FloodEvent(True, 1_700_000_000.5, 11, 600.0, 10, 5))
    d = doc(msg)
    assert msg.topic == f"{P}/events/alarm" and not msg.retain
    assert (d["type"], d["to"], d["count"], d["ts"]) == ("flood", "FLOOD", 11, 1_700_000_000_500)


def command(site: Site, verb: str, payload: Any) -> tuple[bool, dict[str, Any], int]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    result = handle_command(P, f"{P}/cmd/alarm/{verb}", raw, site.engine, site.now)
    assert result.reply.topic == f"{P}/cmd/reply" and result.reply.qos == 1
    assert result.messages[-1] == result.reply
    return result.ok, doc(result.reply), len(result.transitions)


def test_ack_command_acknowledges_and_replies() -> None:
    site = site_with_alarm()
    ok, reply, moved = command(site, "ack", {"id": ALARM, "user": "zhang"})
    assert ok and reply["ok"] and reply["error"] is None and moved == 1
    assert reply["request"] == {"id": ALARM, "user": "zhang"}
    assert site.engine.state(ALARM).state is State.ACK_ACTIVE


def test_shelve_command() -> None:
    site = site_with_alarm()
    co = "face1-gas/co/co_limit"
    site.set("face1-gas", co=30)
    site.tick(1)
    ok, _, moved = command(site, "shelve", {"id": co, "user": "li", "minutes": 30})
    assert ok and moved == 1
    assert site.engine.state(co).state is State.SHELVED


def test_a_shelved_power_off_alarm_keeps_its_area_in_power_off() -> None:
    site = site_with_alarm()
    ok, _, moved = command(site, "shelve", {"id": ALARM, "user": "li", "minutes": 30})
    assert ok and moved == 1 and site.engine.state(ALARM).state is State.SHELVED
    site.set("face1-gas", ch4=1.7)
    site.tick(1)
    (area,) = site.engine.interlocks(site.now)
    assert area.power_off and area.causes == (ALARM,)


@pytest.mark.parametrize(
    ("verb", "payload", "error"),
    [
        ("ack", {"id": "face1-gas/ch4/nope", "user": "zhang"}, "unknown alarm"),
        ("ack", {"id": ALARM}, "'user' must be a non-empty string"),
        ("ack", {"id": 7, "user": "zhang"}, "'id' must be a non-empty string"),
        ("ack", b"{not json", "not UTF-8 JSON"),
        ("ack", b"\xff\xfe", "not UTF-8 JSON"),
        ("ack", [ALARM], "must be a JSON object"),
        ("ack", b"[" * 3000 + b"]" * 3000, "command larger than"),
        ("ack", b"[" * 2000 + b"]" * 2000, "nested too deeply"),
        ("ack", {"id": ALARM, "user": "zhang", "pad": "x" * MAX_COMMAND_BYTES}, "larger than"),
        ("shelve", {"id": ALARM, "user": "li"}, "'minutes' must be a number"),
        ("shelve", {"id": ALARM, "user": "li", "minutes": 0}, "(0, 1440]"),
        ("shelve", {"id": ALARM, "user": "li", "minutes": 10**400}, "(0, 1440]"),
        ("shelve", {"id": ALARM, "user": "li", "minutes": "30"}, "must be a number"),
        ("shelve", {"id": ALARM, "user": "li", "minutes": True}, "must be a number"),
        ("shelve", b'{"id": "x", "user": "li", "minutes": NaN}', "(0, 1440]"),
        ("delete", {"id": ALARM, "user": "li"}, "unknown command topic"),
        ("unshelve", {"id": ALARM, "user": "li"}, "alarm is not shelved"),
    ],
)
def test_malformed_or_unknown_commands_change_nothing(verb: str, payload: Any, error: str) -> None:
    site = site_with_alarm()
    before = site.engine.active_alarms()
    ok, reply, moved = command(site, verb, payload)
    assert not ok and reply["ok"] is False and error in reply["error"]
    assert moved == 0
    assert site.engine.active_alarms() == before


def test_second_ack_is_refused() -> None:
    site = site_with_alarm()
    assert command(site, "ack", {"id": ALARM, "user": "a"})[0]
    ok, reply, _ = command(site, "ack", {"id": ALARM, "user": "b"})
    assert not ok and "not awaiting acknowledgement" in reply["error"]


def test_interlock_and_power_loss_messages_keep_to_the_contract() -> None:
    site = site_with_alarm()  # ch4 1.62 at T1: area face-1 demanded off
    (area,) = site.engine.interlocks(site.now)
    msg = interlock_message(P, area)
    assert (msg.topic, msg.qos, msg.retain) == (f"{P}/interlock/face-1", 1, True)
    d = doc(msg)
    assert list(d) == ["ts", "power_off", "causes", "feed", "since"]
    assert (d["power_off"], d["causes"], d["ts"]) == (True, [ALARM], round(site.now * 1000))
    assert d["feed"] in ("on", "off", "unknown") and isinstance(d["since"], int)
    loss = power_loss_message(P, PowerLossEvent("face-2", 1_700_000_000.25, ("d/feed_on",)))
    e = doc(loss)
    assert (loss.topic, loss.retain) == (f"{P}/events/alarm", False)
    assert (e["type"], e["area"], e["points"], e["ts"]) == (
        "unexpected_power_loss",
        "face-2",
        ["d/feed_on"],
        1_700_000_000_250,
    )
