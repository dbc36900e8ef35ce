"""The console's board: MQTT messages in, browser changes out (pure, no sockets)."""

from __future__ import annotations

import json
from typing import Any

from console import AlarmBoard, TitleBook
from console._board import builtin_packs
from rules import load_packs

P = "hazard/mine-a"


def msg(doc: dict[str, Any] | None) -> bytes:
    return b"" if doc is None else json.dumps(doc).encode()


def alarm(state: str = "UNACK_ACTIVE", priority: int = 1, ts: int = 1000, **extra: Any) -> bytes:
    doc = {"ts": ts, "state": state, "level": "HH", "priority": priority, "value": 1.6,
           "limit": 1.5, "message": "m: x", **extra}  # fmt: skip
    return msg(doc)


def board(**kw: Any) -> AlarmBoard:
    b = AlarmBoard("hazard", titles=TitleBook.from_packs(builtin_packs()), **kw)
    b.link_up(0.0)
    return b


def test_alarm_state_gets_site_title_and_is_deleted_by_an_empty_payload() -> None:
    b = board()
    [d] = b.apply(f"{P}/alarms/face1-gas/ch4/ch4_face", alarm(), retained=True, now=1.0)
    assert d.kind == "alarm" and d.key == "mine-a/face1-gas/ch4/ch4_face"
    assert d.doc is not None
    assert (d.doc["site"], d.doc["device"], d.doc["rule"]) == ("mine-a", "face1-gas", "ch4_face")
    titles = {r.id: r.title for pack in load_packs(builtin_packs()) for r in pack.rules}
    assert d.doc["title"] == titles["ch4_face"] == "甲烷超限（采煤工作面 T1）/ methane, coal face"
    [gone] = b.apply(f"{P}/alarms/face1-gas/ch4/ch4_face", b"", retained=True, now=2.0)
    assert gone.doc is None and b.alarms() == []
    assert b.apply(f"{P}/alarms/face1-gas/ch4/ch4_face", b"", retained=True, now=2.0) == []


def test_unknown_rule_title_comes_from_the_message_and_bad_payloads_are_ignored() -> None:
    b = board()
    [d] = b.apply(f"{P}/alarms/d/p/custom", alarm(message="Pump fault: d/p"), retained=True, now=1)
    assert d.doc is not None and d.doc["title"] == "Pump fault"
    assert b.apply(f"{P}/alarms/d/p/other", b"\xff{not json", retained=True, now=1) == []
    assert b.apply(f"{P}/alarms/d/p/other", b"[1, 2]", retained=True, now=1) == []
    assert b.apply("other-prefix/mine-a/alarms/d/p/r", alarm(), retained=True, now=1) == []


def test_alarms_sort_by_priority_then_newest_first() -> None:
    b = board()
    b.apply(f"{P}/alarms/a/p/r1", alarm(priority=2, ts=3000), retained=True, now=1)
    b.apply(f"{P}/alarms/a/p/r2", alarm(priority=1, ts=1000), retained=True, now=1)
    b.apply(f"{P}/alarms/a/p/r3", alarm(priority=1, ts=2000), retained=True, now=1)
    assert [a["rule"] for a in b.alarms()] == ["r3", "r2", "r1"]


def test_sites_filter_limits_topics_and_subscriptions() -> None:
    b = board(sites=frozenset({"mine-a"}))
    assert "hazard/mine-a/alarms/#" in b.subscriptions()
    assert all("/+/alarms" not in s for s in b.subscriptions())
    assert b.apply("hazard/mine-b/alarms/d/p/r", alarm(), retained=True, now=1) == []
    assert board().subscriptions()[0] == "hazard/+/alarms/#"


def test_interlock_gives_alarms_their_area_and_devices_their_state() -> None:
    b = board()
    b.apply(f"{P}/alarms/face1-gas/ch4/ch4_face", alarm(), retained=True, now=1)
    il = {"ts": 1, "power_off": True, "causes": ["face1-gas/ch4/ch4_face"], "feed": "off"}
    deltas = b.apply(f"{P}/interlock/face-1", msg(il), retained=True, now=1)
    assert [d.kind for d in deltas] == ["interlock", "alarm"]
    assert b.get("alarm", "mine-a/face1-gas/ch4/ch4_face")["area"] == "face-1"  # type: ignore[index]
    status = {"ts": 1, "online": False, "error": "timeout"}
    [d] = b.apply(f"{P}/face1-gas/status", msg(status), retained=True, now=1)
    assert d.kind == "device" and d.doc == {**status, "site": "mine-a", "device": "face1-gas"}
    [r] = b.apply(f"{P}/rescue/lift-1", msg({"ts": 1, "code": "R1"}), retained=True, now=1)
    assert r.kind == "rescue" and r.key == "mine-a/lift-1"


def test_transitions_go_to_the_journal_with_the_user() -> None:
    b = board()
    event = {"type": "transition", "id": "d/p/r", "from": "UNACK_ACTIVE", "to": "ACK_ACTIVE",
             "level": "HH", "ts": 5, "user": "wang"}  # fmt: skip
    [d] = b.apply(f"{P}/events/alarm", msg(event), retained=False, now=1)
    assert d.kind == "journal" and d.doc is not None
    assert (d.doc["user"], d.doc["to"], d.doc["site"]) == ("wang", "ACK_ACTIVE", "mine-a")
    assert list(b.journal) == [d.doc]


def test_broker_loss_keeps_state_stale_and_rebuild_drops_what_is_gone() -> None:
    b = board()
    b.apply(f"{P}/gateway/status", msg({"ts": 1, "online": True}), retained=True, now=1)
    b.apply(f"{P}/alarms/a/p/kept", alarm(), retained=True, now=1)
    b.apply(f"{P}/alarms/a/p/gone", alarm(), retained=True, now=1)
    b.apply("hazard/mine-b/alarms/a/p/quiet", alarm(), retained=True, now=1)
    b.finish_rebuild()
    [down] = b.link_down(10.0, "broker unreachable")
    assert down.doc is not None and down.doc["stale"] and not down.doc["connected"]
    assert down.doc["since"] == 10_000 and len(b.alarms()) == 3  # nothing forgotten
    [up] = b.link_up(20.0)
    assert up.doc is not None and up.doc["stale"] and up.doc["rebuilding"]
    b.apply(f"{P}/gateway/status", msg({"ts": 2, "online": True}), retained=True, now=21)
    b.apply(f"{P}/alarms/a/p/kept", alarm(state="ACK_ACTIVE"), retained=True, now=21)
    [snap] = b.finish_rebuild()
    assert snap.kind == "snapshot" and snap.doc is not None
    # mine-a's gateway came back: what it no longer holds is gone; mine-b has not: kept
    assert sorted(snap.doc["alarms"]) == ["mine-a/a/p/kept", "mine-b/a/p/quiet"]
    assert snap.doc["link"] == {**snap.doc["link"], "stale": False, "connected": True}
