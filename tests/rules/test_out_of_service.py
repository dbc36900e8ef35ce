"""Alarm lifecycle commands: unshelve, out of service and return to service (ISA-18.2)."""

from __future__ import annotations

from typing import Any

import pytest

from rules import InvalidCommand, State, UnknownAlarm
from tests.rules.harness import Site
from tests.rules.test_lifecycle import ALARM, probe_site, series, temperature_rule
from tests.rules.test_maintenance import FACE, two_detectors


def snapshot(site: Site) -> list[Any]:
    return [(a.id, a.state, a.level, a.shelved_until) for a in site.engine.active_alarms()]


def test_unshelve_of_an_active_alarm_shows_it_unacknowledged_now() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    site.engine.ack(ALARM, "op", site.now)
    site.engine.shelve(ALARM, "op", 30, site.now)
    (t,) = site.engine.unshelve(ALARM, "wang", site.now + 5, "back on watch")
    assert (t.from_state, t.to_state, t.user, t.reason) == (
        State.SHELVED,
        State.UNACK_ACTIVE,
        "wang",
        "back on watch",
    )
    assert site.state(ALARM).shelved_until is None
    site.now += 1800  # the old expiry passes: nothing more happens
    assert site.tick() == []


def test_unshelve_of_a_cleared_alarm_returns_to_normal() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    site.engine.shelve(ALARM, "op", 30, site.now)
    series(site, 20)
    (t,) = site.engine.unshelve(ALARM, "op", site.now)
    assert (t.to_state, t.reason) == (State.NORMAL, None)
    assert site.engine.active_alarms() == []


def test_out_of_service_annunciates_nothing_until_returned() -> None:
    site = probe_site(temperature_rule())
    (t,) = site.engine.out_of_service(ALARM, "li", "probe removed for repair", site.now)
    assert (t.from_state, t.to_state, t.user, t.reason) == (
        State.NORMAL,
        State.OUT_OF_SERVICE,
        "li",
        "probe removed for repair",
    )
    assert snapshot(site) == [(ALARM, State.OUT_OF_SERVICE, "", None)]  # never active yet
    assert series(site, 45, 55, 20, 45) == []  # activations, escalation, clearing: silent
    assert site.state(ALARM).state is State.OUT_OF_SERVICE
    (back,) = site.engine.return_to_service(ALARM, "li", site.now, "probe refitted")
    # active at the return: unacknowledged, like a shelve expiry
    assert (back.from_state, back.to_state, back.level, back.user, back.reason) == (
        State.OUT_OF_SERVICE,
        State.UNACK_ACTIVE,
        "H",
        "li",
        "probe refitted",
    )


def test_return_of_a_cleared_alarm_goes_to_normal_and_clears_the_retained_state() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)  # UNACK_ACTIVE when taken out
    site.engine.out_of_service(ALARM, "li", "sensor drift", site.now)
    series(site, 20)
    (back,) = site.engine.return_to_service(ALARM, "li", site.now)
    assert (back.to_state, back.reason) == (State.NORMAL, None)
    assert site.engine.active_alarms() == []


def test_out_of_service_ends_a_shelve_and_refuses_shelve_and_ack() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    site.engine.shelve(ALARM, "op", 30, site.now)
    (t,) = site.engine.out_of_service(ALARM, "li", "sensor drift", site.now)
    assert (t.from_state, t.to_state) == (State.SHELVED, State.OUT_OF_SERVICE)
    before = snapshot(site)
    with pytest.raises(InvalidCommand, match="out of service"):
        site.engine.shelve(ALARM, "op", 30, site.now)
    with pytest.raises(InvalidCommand, match="out of service"):
        site.engine.ack(ALARM, "op", site.now)
    with pytest.raises(InvalidCommand, match="not shelved"):
        site.engine.unshelve(ALARM, "op", site.now)
    assert snapshot(site) == before
    site.now += 1800  # the shelve it had does not expire into an announcement
    assert site.tick() == []


def test_every_command_on_an_alarm_already_shown_out_of_service_is_an_event() -> None:
    site = two_detectors()
    site.engine.start_maintenance("face1-gas", "li", 60, "calibration", site.now)
    site.set("face1-gas", ch4=1.2)
    (t,) = site.run(10)
    assert t.to_state is State.OUT_OF_SERVICE
    (out,) = site.engine.out_of_service(FACE, "li", "head replaced", site.now)
    assert (out.from_state, out.to_state, out.reason) == (
        State.OUT_OF_SERVICE,
        State.OUT_OF_SERVICE,
        "head replaced",
    )
    site.engine.end_maintenance("face1-gas", "li", "done", site.now)
    assert site.state(FACE).state is State.OUT_OF_SERVICE  # still removed by the command
    (back,) = site.engine.return_to_service(FACE, "li", site.now, "head tested")
    assert (back.to_state, back.reason) == (State.UNACK_ACTIVE, "head tested")


def test_an_alarm_out_of_service_still_demands_power_off() -> None:
    site = two_detectors()
    site.engine.out_of_service(FACE, "li", "head replaced", site.now)
    site.set("face1-gas", ch4=2.0)  # past the power-off limit
    assert site.run(30) == []  # nothing annunciated ...
    state = site.state(FACE)
    assert (state.state, state.power_off) == (State.OUT_OF_SERVICE, True)
    demanded = {a.area: a.power_off for a in site.engine.interlocks(site.now)}
    assert demanded["face-1"] is True  # ... but the interlock still acts


@pytest.mark.parametrize("reason", ["", "   ", None, 5])
def test_out_of_service_needs_a_reason(reason: Any) -> None:
    site = probe_site(temperature_rule())
    with pytest.raises(InvalidCommand, match="reason"):
        site.engine.out_of_service(ALARM, "li", reason, site.now)
    assert site.engine.active_alarms() == []


def test_command_errors_change_nothing() -> None:
    site = probe_site(temperature_rule())
    series(site, 45)
    before = snapshot(site)
    with pytest.raises(UnknownAlarm):
        site.engine.unshelve("p1/t/nope", "op", site.now)
    with pytest.raises(UnknownAlarm):
        site.engine.out_of_service("p1/t/nope", "op", "x", site.now)
    with pytest.raises(UnknownAlarm):
        site.engine.return_to_service("p1/t/nope", "op", site.now)
    with pytest.raises(InvalidCommand, match="not shelved"):
        site.engine.unshelve(ALARM, "op", site.now)
    with pytest.raises(InvalidCommand, match="not out of service"):
        site.engine.return_to_service(ALARM, "op", site.now)
    site.engine.out_of_service(ALARM, "li", "sensor drift", site.now)
    with pytest.raises(InvalidCommand, match="already out of service"):
        site.engine.out_of_service(ALARM, "li", "again", site.now)
    site.engine.return_to_service(ALARM, "li", site.now)
    assert snapshot(site) == before
