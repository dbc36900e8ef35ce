"""Coal-mine pack behaviour: methane alarm / power-off / reset by sensor position, other gases."""

from __future__ import annotations

from typing import Any

import pytest

from rules import RulesConfigError, State, load_packs
from tests.rules.harness import PACKS, Site, device_points

COAL = load_packs([PACKS / "coal_mine.yaml"])


def gas_site(position: str | None = "T1", overrides: dict[str, Any] | None = None) -> Site:
    tags = {"area": "face-1"} | ({"position": position} if position else {})
    site = Site(device_points("face1-gas", 0, "gas", tags), COAL, overrides)
    site.set("face1-gas", ch4=0.3, co=2, o2=20.9, h2s=0, temperature=22, status=1, fault=0)
    site.tick()
    return site


def test_face_methane_alarm_then_power_off_then_reset_below_one_percent() -> None:
    site = gas_site("T1")
    alarm = "face1-gas/ch4/ch4_face"

    site.set("face1-gas", ch4=1.2)
    (t,) = site.tick(1)
    assert (t.id, t.level, t.priority, t.to_state) == (alarm, "H", 2, State.UNACK_ACTIVE)
    assert (t.value, t.limit) == (1.2, 1.0)

    site.set("face1-gas", ch4=1.6)
    (t,) = site.tick(1)
    assert (t.level, t.priority, t.limit) == ("HH", 1, 1.5)
    assert "face1-gas/ch4 HH 1.6 %CH4" in t.message

    # power-off holds until the concentration is back below the reset value 1.0 %
    site.set("face1-gas", ch4=1.2)
    assert site.tick(1) == []
    assert site.state(alarm).level == "HH"
    site.set("face1-gas", ch4=1.0)
    assert site.tick(1) == []
    site.set("face1-gas", ch4=0.99)
    (t,) = site.tick(1)
    assert t.to_state is State.RTN_UNACK and t.level == "HH"


@pytest.mark.parametrize(
    ("position", "rule", "value", "level"),
    [
        ("T0", "ch4_upper_corner", 1.0, "H"),
        ("T0", "ch4_upper_corner", 1.5, "HH"),
        ("T2", "ch4_return", 1.0, "HH"),  # return airway: alarm and power-off both at 1.0 %
        ("T2", "ch4_return", 0.99, None),
        ("T3", "ch4_intake", 0.5, "HH"),
        ("T4", "ch4_intake", 0.49, None),
        ("T7", "ch4_drainage", 2.4, None),
        ("T7", "ch4_drainage", 2.5, "HH"),
        ("shearer", "ch4_shearer", 1.2, "H"),
        ("T6", "ch4_workplace", 1.6, "HH"),
        ("T5", "ch4_workplace", 1.1, "H"),
    ],
)
def test_methane_limits_follow_the_sensor_position(
    position: str | None, rule: str, value: float, level: str | None
) -> None:
    site = gas_site(position)
    ch4_rules = {b.rule_id for b in site.engine.plan.bindings if b.point == "ch4"}
    assert rule in ch4_rules and not {r for r in ch4_rules if r.startswith("ch4_")} - {rule}
    site.set("face1-gas", ch4=value)
    out = [t for t in site.tick(1) if t.rule == rule]
    assert [t.level for t in out] == ([level] if level else [])


@pytest.mark.parametrize("position", [None, "t1", "tank_farm"])
def test_a_gas_detector_without_a_coal_position_is_a_config_error(position: str | None) -> None:
    with pytest.raises(RulesConfigError) as err:
        gas_site(position)
    assert (err.value.source, err.value.path, err.value.value) == (
        "devices",
        "face1-gas.tags.position",
        position,
    )
    assert "coal_mine: T0, T1, T2" in err.value.allowed


def test_site_override_moves_one_devices_power_off_level() -> None:
    site = gas_site("T1", overrides={"face1-gas": {"ch4_face": {"HH": 1.4}}})
    site.set("face1-gas", ch4=1.45)
    (t,) = site.tick(1)
    assert (t.level, t.limit) == ("HH", 1.4)


def test_co_h2s_o2_and_temperature_limits() -> None:
    site = gas_site("T1")
    site.set("face1-gas", co=24, h2s=6.6, o2=19.9, temperature=30)
    got = {(t.rule, t.level) for t in site.tick(1)}
    assert got == {
        ("co_limit", "H"),
        ("h2s_limit", "H"),
        ("o2_intake", "L"),
        ("temperature_face", "HH"),
    }
    # CO deadband 2 ppm: 23 keeps the alarm, 21.9 clears it
    site.set("face1-gas", co=23)
    assert [t.rule for t in site.tick(1)] == []
    site.set("face1-gas", co=21.9)
    assert [(t.rule, t.to_state) for t in site.tick(1)] == [("co_limit", State.RTN_UNACK)]


def test_chamber_temperature_uses_chamber_limits() -> None:
    points = device_points("pump-room", 0, "gas", {"position": "T5", "location": "chamber"})
    site = Site(points, COAL)
    site.set("pump-room", temperature=31.0, ch4=0.1)
    (t,) = [t for t in site.tick() if t.point == "temperature"]
    assert (t.rule, t.level) == ("temperature_chamber", "H")


def test_over_range_status_is_priority_one() -> None:
    site = gas_site("T1")
    site.set("face1-gas", status=8)
    (t,) = site.tick(1)
    assert (t.rule, t.level, t.priority) == ("gas_over_range", "OVER_RANGE", 1)
