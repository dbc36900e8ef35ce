"""Maintenance (calibration, 标校): a device's alarms go out of service, not over-limit."""

from __future__ import annotations

import math

import pytest

from rules import (
    MAX_MAINTENANCE_MINUTES,
    InvalidCommand,
    State,
    UnknownDevice,
    load_packs,
)
from tests.rules.harness import PACKS, Site, device_points

COAL = load_packs([PACKS / "coal_mine.yaml"])
FACE = "face1-gas/ch4/ch4_face"


def two_detectors() -> Site:
    points = device_points("face1-gas", 0, "gas", {"position": "T1", "area": "face-1"})
    points += device_points("face2-gas", 1, "gas", {"position": "T1", "area": "face-2"})
    site = Site(points, COAL)
    for dev in ("face1-gas", "face2-gas"):
        site.set(dev, ch4=0.3, co=2, o2=20.9, h2s=0, temperature=22, status=1, fault=0)
    site.tick()
    return site


def test_calibration_gas_during_maintenance_shows_out_of_service_and_needs_no_ack() -> None:
    site = two_detectors()
    assert site.engine.start_maintenance("face1-gas", "li", 10, "calibration", site.now) == []
    assert site.engine.in_maintenance.tolist() == [True, False]
    (start,) = site.engine.take_maintenance_events()
    assert (start.started, start.device, start.user, start.reason) == (
        True,
        "face1-gas",
        "li",
        "calibration",
    )
    assert start.until == site.now + 600

    site.set("face1-gas", ch4=2.0)  # calibration gas: past the power-off limit
    (t,) = site.run(30)
    assert (t.id, t.level, t.to_state) == (FACE, "HH", State.OUT_OF_SERVICE)
    rows = site.engine.row_in_maintenance()
    assert (
        rows.any()
        and not rows[
            [i for i, b in enumerate(site.engine.plan.bindings) if b.device == "face2-gas"]
        ].any()
    )
    # the other detector still alarms as usual
    site.set("face2-gas", ch4=1.2)
    (t2,) = site.tick(1)
    assert (t2.id, t2.to_state) == ("face2-gas/ch4/ch4_face", State.UNACK_ACTIVE)

    site.set("face1-gas", ch4=0.3)  # gas off: back to NORMAL, nothing to acknowledge
    (t,) = site.run(5)
    assert (t.id, t.from_state, t.to_state) == (FACE, State.OUT_OF_SERVICE, State.NORMAL)


def test_maintenance_ends_by_itself_and_a_still_active_alarm_is_unacknowledged() -> None:
    site = two_detectors()
    site.engine.start_maintenance("face1-gas", "li", 2, "calibration", site.now)
    site.engine.take_maintenance_events()
    site.set("face1-gas", ch4=1.2)
    (t,) = site.run(10)
    assert t.to_state is State.OUT_OF_SERVICE
    assert site.run(109) == []  # 119 s < 120 s
    (t,) = site.run(1)  # 120 s: over
    assert (t.id, t.from_state, t.to_state) == (FACE, State.OUT_OF_SERVICE, State.UNACK_ACTIVE)
    (end,) = site.engine.take_maintenance_events()
    assert (end.started, end.expired, end.user) == (False, True, "li")
    assert "2 min" in end.reason
    assert not site.engine.in_maintenance.any()
    assert math.isnan(site.engine.maintenance_until[0])


def test_end_command_and_errors_change_nothing() -> None:
    site = two_detectors()
    engine = site.engine
    with pytest.raises(UnknownDevice, match="unknown device"):
        engine.start_maintenance("no-such", "li", 10, "x", site.now)
    for minutes in (0, -1, MAX_MAINTENANCE_MINUTES + 1, float("nan"), float("inf"), True, "5"):
        with pytest.raises(InvalidCommand, match="minutes"):
            engine.start_maintenance("face1-gas", "li", minutes, "x", site.now)  # type: ignore[arg-type]
    with pytest.raises(InvalidCommand, match="not in maintenance"):
        engine.end_maintenance("face1-gas", "li", "done", site.now)
    assert engine.take_maintenance_events() == []
    assert not engine.in_maintenance.any()

    engine.start_maintenance("face1-gas", "li", 10, "calibration", site.now)
    engine.end_maintenance("face1-gas", "wang", "calibrated", site.now + 60)
    start, end = engine.take_maintenance_events()
    assert (end.started, end.user, end.reason, end.expired) == (False, "wang", "calibrated", False)
    assert end.started_at == start.ts
    assert engine.maintenance("face1-gas") is None


def test_an_alarm_active_before_maintenance_goes_out_of_service_and_comes_back() -> None:
    site = two_detectors()
    site.set("face1-gas", ch4=1.2)
    (t,) = site.tick(1)
    assert t.to_state is State.UNACK_ACTIVE
    (t,) = site.engine.start_maintenance("face1-gas", "li", 5, "calibration", site.now)
    assert (t.from_state, t.to_state, t.user) == (
        State.UNACK_ACTIVE,
        State.OUT_OF_SERVICE,
        "li",
    )
    (t,) = site.engine.end_maintenance("face1-gas", "li", "done", site.now + 1)
    assert t.to_state is State.UNACK_ACTIVE
