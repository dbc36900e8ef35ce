"""A rule that selects a device lacking one of the points it needs is listed, never silent.

``plan.missing_points`` names device, rule and the missing points (the gateway logs each at start
and lists them in its status and in ``hazardgw check``); a rule the pack marks ``required``
refuses such a device instead.
"""

from __future__ import annotations

import pytest
import yaml

from rules import RulesConfigError, bind, load_packs, parse_pack
from rules._binding import MissingPoints
from tests.rules.harness import PACKS, PROFILE_POINTS, device_points


def _all_but(kind: str, *lacking: str) -> list[str]:
    return [name for name, _ in PROFILE_POINTS[kind] if name not in lacking]


def test_single_axis_tilt_sensor_is_listed() -> None:
    points = device_points("crane1", 0, "crane", only=_all_but("crane", "tilt_y_deg"))
    plan = bind(points, load_packs([PACKS / "tower_crane.yaml"]))
    assert MissingPoints("crane1", "crane_tilt", ("tilt_y_deg",)) in plan.missing_points
    assert not any(b.rule_id == "crane_tilt" for b in plan.bindings)


def test_elevator_profile_without_car_call_lists_the_trapped_rule() -> None:
    points = device_points("lift1", 0, "elevator", only=_all_but("elevator", "car_call"))
    plan = bind(points, load_packs([PACKS / "elevator.yaml"]))
    assert MissingPoints("lift1", "elevator_trapped", ("car_call",)) in plan.missing_points
    # a device with every point lacks nothing
    full = bind(device_points("lift1", 0, "elevator"), load_packs([PACKS / "elevator.yaml"]))
    assert full.missing_points == ()


def test_fault_lockout_without_status_is_listed() -> None:
    tags = {"position": "T1", "area": "face-1"}
    points = device_points("face1-gas", 0, "gas", tags, only=_all_but("gas", "status"))
    plan = bind(points, load_packs([PACKS / "coal_mine.yaml"]))
    assert MissingPoints("face1-gas", "fault_lockout", ("status",)) in plan.missing_points


def test_a_substance_the_detector_does_not_measure_is_not_missing() -> None:
    """A CO limit on a detector without CO does not apply; it is not an alarm gone missing."""
    points = device_points("d1", 0, "gas", only=("ch4", "status", "fault"))
    plan = bind(points, load_packs([PACKS / "occupational_exposure.yaml"]))
    assert plan.missing_points == ()


PACK = """
pack: site_extra
title: site extra
rules:
  - id: lift_stuck
    type: duration
    title: stuck
    kind: elevator
    level: STUCK
    priority: 1
    required: {required}
    all:
      - {{point: speed, op: le, value: 0.05}}
      - {{point: car_call, op: eq, value: 1}}
    for_s: 30
    source: test pack
"""


def test_a_required_rule_refuses_the_device() -> None:
    points = device_points("lift1", 0, "elevator", only=("speed", "floor"))
    optional = parse_pack(yaml.safe_load(PACK.format(required="false")), "x.yaml")
    assert bind(points, [optional]).missing_points == (
        MissingPoints("lift1", "lift_stuck", ("car_call",)),
    )
    required = parse_pack(yaml.safe_load(PACK.format(required="true")), "x.yaml")
    with pytest.raises(RulesConfigError) as err:
        bind(points, [required])
    text = str(err.value)
    assert "lift1" in text and "lift_stuck" in text and "car_call" in text
    assert "required" in text
