"""Alarm lifecycle: deadband, delays, acknowledgement, shelving, suppression, floods."""

from __future__ import annotations

from typing import Any

import pytest

from rules import (
    FLOOD_START_ABOVE,
    InvalidCommand,
    PointRef,
    RulePack,
    State,
    UnknownAlarm,
    parse_pack,
)
from tests.rules.harness import Site


def pack(*rules: dict[str, Any]) -> RulePack:
    return parse_pack({"pack": "t", "title": "test", "rules": list(rules)}, "test.yaml")


def temperature_rule(**extra: Any) -> dict[str, Any]:
    return {
        "id": "temp",
        "type": "threshold",
        "title": "temperature",
        "kind": "probe",
        "point": "t",
        "levels": {
            "H": {"limit": 40.0, "priority": 3, "source": "test"},
            "HH": {"limit": 50.0, "priority": 1, "source": "test"},
        },
        **extra,
    }


COMM = {
    "id": "link",
    "type": "comm",
    "title": "link",
    "kind": "probe",
    "priority": 2,
    "source": "test",
}
ALARM = "p1/t/temp"


def probe_site(*rules: dict[str, Any], devices: int = 1) -> Site:
    points = [PointRef(f"p{d + 1}", d, "t", "probe", {}, "°C") for d in range(devices)]
    site = Site(points, [pack(*rules)])
    for d in range(devices):
        site.set(f"p{d + 1}", t=20.0)
    site.tick()
    return site


def series(site: Site, *values: float, step: float = 1.0) -> list[tuple[str, State]]:
    out = []
    for v in values:
        site.set("p1", t=v)
        out += [(t.level, t.to_state) for t in site.tick(step)]
    return out


def test_deadband_prevents_chatter() -> None:
    without = probe_site(temperature_rule())
    with_band = probe_site(temperature_rule(deadband=2.0))
    noisy = (40.5, 39.5, 40.2, 39.8, 40.4, 39.0, 37.9)
    assert len(series(without, *noisy)) == 6
    assert series(with_band, *noisy) == [("H", State.UNACK_ACTIVE), ("H", State.RTN_UNACK)]


def test_on_delay_needs_the_condition_to_hold() -> None:
    site = probe_site(temperature_rule(on_delay_s=5))
    assert series(site, 45, 45, 39, 45, 45, 45, 45, 45) == []  # the dip restarts the delay
    assert series(site, 45) == [("H", State.UNACK_ACTIVE)]  # 5 s above the limit


def test_off_delay_keeps_the_alarm_through_short_returns() -> None:
    site = probe_site(temperature_rule(off_delay_s=3))
    assert series(site, 45) == [("H", State.UNACK_ACTIVE)]
    assert series(site, 30, 30, 45, 30, 30, 30) == []  # 45 restarts the off-delay
    assert series(site, 30) == [("H", State.RTN_UNACK)]


def test_escalation_requires_a_new_acknowledgement() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    (t,) = site.engine.ack(ALARM, "op", site.now)
    assert (t.from_state, t.to_state, t.user) == (State.UNACK_ACTIVE, State.ACK_ACTIVE, "op")
    assert series(site, 55) == [("HH", State.UNACK_ACTIVE)]
    site.engine.ack(ALARM, "op", site.now)
    assert series(site, 45) == [("H", State.ACK_ACTIVE)]  # de-escalation keeps the ack
    assert series(site, 20) == [("H", State.NORMAL)]  # cleared and acknowledged


def test_ack_after_return_goes_to_normal() -> None:
    site = probe_site(temperature_rule())
    series(site, 45, 20)
    assert site.state(ALARM).state is State.RTN_UNACK
    (t,) = site.engine.ack(ALARM, "op", site.now)
    assert t.to_state is State.NORMAL
    assert site.engine.active_alarms() == []


def test_ack_errors_change_nothing() -> None:
    site = probe_site(temperature_rule())
    with pytest.raises(UnknownAlarm):
        site.engine.ack("p1/t/nope", "op", site.now)
    with pytest.raises(InvalidCommand):
        site.engine.ack(ALARM, "op", site.now)  # NORMAL: nothing to acknowledge
    series(site, 45)
    site.engine.ack(ALARM, "op", site.now)
    with pytest.raises(InvalidCommand):
        site.engine.ack(ALARM, "op", site.now)  # already acknowledged
    assert site.state(ALARM).state is State.ACK_ACTIVE


def test_shelve_hides_the_alarm_until_it_expires() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    (t,) = site.engine.shelve(ALARM, "op", 10, site.now)
    assert t.to_state is State.SHELVED
    assert site.state(ALARM).shelved_until == site.now + 600
    assert series(site, 55, 45) == []  # changes while shelved are not announced
    site.now += 597  # 599 s after shelving
    assert site.tick() == []
    (t,) = site.tick(1)  # expiry: still active, so unacknowledged
    assert (t.from_state, t.to_state, t.level) == (State.SHELVED, State.UNACK_ACTIVE, "H")


def test_shelve_expiry_of_a_cleared_alarm_returns_to_normal() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    site.engine.shelve(ALARM, "op", 1, site.now)
    series(site, 20)
    (t,) = site.tick(60)
    assert t.to_state is State.NORMAL


@pytest.mark.parametrize("minutes", [0, -5, 1441, float("nan"), float("inf"), True, "10", None])
def test_shelve_rejects_bad_minutes(minutes: Any) -> None:
    site = probe_site(temperature_rule())
    with pytest.raises(InvalidCommand):
        site.engine.shelve(ALARM, "op", minutes, site.now)
    assert site.engine.active_alarms() == []


LOW_PRIORITY_ONLY = {"H": {"limit": 40.0, "priority": 3, "source": "test"}}


def test_point_alarms_are_suppressed_while_the_device_is_offline() -> None:
    site = probe_site(temperature_rule(levels=LOW_PRIORITY_ONLY), COMM)
    series(site, 45)
    site.online[0] = False
    out = site.tick(1)
    assert [(t.id, t.to_state) for t in out] == [
        ("p1/t/temp", State.SUPPRESSED),
        ("p1/_device/link", State.UNACK_ACTIVE),
    ]
    site.online[0] = True
    out = site.tick(1)
    assert [(t.id, t.to_state) for t in out] == [
        ("p1/t/temp", State.UNACK_ACTIVE),
        ("p1/_device/link", State.RTN_UNACK),
    ]


def test_an_alarm_with_a_priority_one_level_is_never_suppressed() -> None:
    site = probe_site(temperature_rule(), COMM)  # HH is priority 1
    series(site, 45)
    site.online[0] = False
    out = site.tick(1)
    assert [(t.id, t.to_state, t.stale) for t in out] == [
        ("p1/t/temp", State.UNACK_ACTIVE, True),
        ("p1/_device/link", State.UNACK_ACTIVE, False),
    ]


def test_without_a_comm_rule_nothing_is_suppressed() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    site.online[0] = False
    (t,) = site.tick(1)  # still active, its value marked stale
    assert (t.from_state, t.to_state, t.stale) == (State.UNACK_ACTIVE, State.UNACK_ACTIVE, True)
    assert site.state(ALARM).state is State.UNACK_ACTIVE and site.state(ALARM).stale
    site.online[0] = True
    (t,) = site.tick(1)
    assert (t.to_state, t.stale) == (State.UNACK_ACTIVE, False)


def test_flood_starts_above_ten_per_ten_minutes_and_ends_below_five() -> None:
    site = probe_site(temperature_rule(), devices=12)
    engine = site.engine
    for d in range(FLOOD_START_ABOVE):
        site.set(f"p{d + 1}", t=45.0)
        site.tick(1)
    assert not engine.in_flood and engine.take_flood_events() == []
    site.set("p11", t=45.0)
    out = site.tick(1)
    assert len(out) == 1  # every alarm is still delivered
    (start,) = engine.take_flood_events()
    assert start.started and start.count == 11 and engine.in_flood
    site.set("p12", t=45.0)
    site.tick(1)
    assert engine.take_flood_events() == []  # one announcement per flood
    site.tick(600 - 12)  # the first activations leave the window; 12 - … remain
    assert engine.in_flood
    site.tick(8)
    (end,) = engine.take_flood_events()
    assert not end.started and end.count < 5 and not engine.in_flood
    assert "flood ended" in end.message


def test_active_alarms_lists_everything_not_normal() -> None:
    site = probe_site(temperature_rule(), devices=3)
    site.set("p1", t=45.0)
    site.set("p2", t=55.0)
    site.tick(1)
    site.set("p2", t=20.0)
    site.tick(1)
    site.engine.shelve("p3/t/temp", "op", 5, site.now)
    got = {(a.id, a.state, a.level) for a in site.engine.active_alarms()}
    assert got == {
        ("p1/t/temp", State.UNACK_ACTIVE, "H"),
        ("p2/t/temp", State.RTN_UNACK, "HH"),
        ("p3/t/temp", State.SHELVED, ""),
    }
