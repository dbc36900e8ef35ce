"""Coal-mine pack behaviour: the methane table by sensor position (alarm, power-off, reset), no
fallback for an unknown position, looser limits only with a reason, the power-off interlock per
area (demand, causes, feed verification, fault lockout), and the other gases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules import RulesConfigError, State, load_packs
from rules._pack import ThresholdRule
from tests.rules.harness import PACKS, Site, device_points

COAL = load_packs([PACKS / "coal_mine.yaml"])
DEVICE = "face1-gas"

#: The methane table of 《煤矿安全规程》 art. 498 as /work/shared/DOMAIN.md gives it:
#: position → (alarm ≥, power-off ≥ or None, reset below or None). Typed here independently of
#: the pack, so a changed pack value fails this test. T0 restores below 1.0 (the stricter of the
#: two values sources give).
TABLE: dict[str, tuple[float, float | None, float | None]] = {
    "T0": (1.0, 1.5, 1.0),
    "T1": (1.0, 1.5, 1.0),
    "T2": (1.0, 1.0, 1.0),
    "T3": (0.5, 0.5, 0.5),
    "T4": (0.5, 0.5, 0.5),
    "T5": (1.0, 1.5, 1.0),
    "T6": (1.0, 1.0, 1.0),
    "T7": (2.5, 2.5, 2.5),
    "T8": (1.0, 1.0, 1.0),
    "return_mid": (1.0, 1.0, 1.0),
    "shearer": (1.0, 1.5, 1.0),
    "roadheader": (1.0, 1.5, 1.0),
    "heading_face": (1.0, 1.5, 1.0),
    "heading_return": (1.0, 1.0, 1.0),
    "fan_inlet": (0.5, 0.5, 0.5),
    "main_return": (0.7, None, None),  # the stricter of 0.70 / 0.75 as sources give it
    "wing_return": (0.7, None, None),
    "district_return": (1.0, 1.0, 1.0),
    "loading_point": (0.5, 0.5, 0.5),
    "bunker": (1.5, 1.5, 1.5),
    "belt": (1.5, 1.5, 1.5),
    "drainage_pump_station": (0.5, 0.5, 0.5),
}


def gas_site(
    position: str | None = "T1",
    overrides: dict[str, Any] | None = None,
    reasons: dict[str, str] | None = None,
    area: str = "face-1",
) -> Site:
    tags = {"area": area} | ({"position": position} if position else {})
    site = Site(device_points(DEVICE, 0, "gas", tags), COAL, overrides, limits_reasons=reasons)
    site.set(DEVICE, ch4=0.1, co=2, o2=20.9, h2s=0, temperature=22, status=1, fault=0)
    site.set(DEVICE, feed_on=0, relay_cut=0)  # feed off throughout: no feed alarm here
    site.tick()
    site.engine.take_interlock_changes()
    return site


def methane(site: Site, value: float) -> list[tuple[str, State, bool | None]]:
    site.set(DEVICE, ch4=value)
    return [(t.level, t.to_state, t.power_off) for t in site.tick(0.5) if t.point == "ch4"]


def test_the_pack_lists_every_position_of_the_table_and_nothing_else() -> None:
    table = COAL[0].position_table
    assert table is not None and (table.kind, table.point) == ("gas", "ch4")
    assert sorted(COAL[0].positions) == sorted(TABLE)


def test_every_methane_row_has_its_range_and_a_citation() -> None:
    rules = [r for r in COAL[0].rules if r.id in COAL[0].table_rules()]
    assert len(rules) >= 20
    for rule in rules:
        assert isinstance(rule, ThresholdRule)
        for level in rule.levels.values():
            assert "art. 498" in level.source, rule.id
        hh = rule.levels.get("HH")
        if hh is None:  # no power-off at this position: the pack says so
            assert "no power-off" in rule.levels["H"].action, rule.id
        else:
            assert hh.power_off and len(hh.power_off_range) > 10, rule.id


@pytest.mark.parametrize("position", sorted(TABLE))
def test_methane_alarm_power_off_and_reset_follow_the_table(position: str) -> None:
    alarm, power_off, reset = TABLE[position]
    site = gas_site(position)
    assert methane(site, round(alarm - 0.01, 2)) == []
    first = methane(site, alarm)
    if power_off is None:
        assert first == [("H", State.UNACK_ACTIVE, None)]
        assert site.engine.take_interlock_changes() == []  # no area demand
        assert methane(site, 3.9) == []  # still H: no power-off level at this position
        assert methane(site, round(alarm - 0.01, 2)) == [("H", State.RTN_UNACK, None)]
        return
    assert reset is not None
    if power_off == alarm:
        assert first == [("HH", State.UNACK_ACTIVE, True)]
    else:
        assert first == [("H", State.UNACK_ACTIVE, False)]
        assert methane(site, round(power_off - 0.01, 2)) == []
        assert methane(site, power_off) == [("HH", State.UNACK_ACTIVE, True)]
    alarm_id = next(
        b.alarm_id for b in site.engine.plan.bindings if b.point == "ch4" and b.power_off_code
    )
    (area,) = site.engine.take_interlock_changes()
    assert (area.area, area.power_off, area.causes) == ("face-1", True, (alarm_id,))
    # power-off holds down to the reset value and ends below it
    assert methane(site, reset) == []
    assert site.state(alarm_id).power_off
    assert methane(site, round(reset - 0.01, 2)) == [("HH", State.RTN_UNACK, False)]
    (area,) = site.engine.take_interlock_changes()
    assert (area.power_off, area.causes) == (False, ())


@pytest.mark.parametrize("position", [None, "t1", "T9", "coal face", "tank_farm"])
def test_a_methane_sensor_without_a_listed_position_is_a_config_error(
    position: str | None,
) -> None:
    with pytest.raises(RulesConfigError) as info:
        gas_site(position)
    err = info.value
    assert (err.source, err.path, err.value) == ("devices", f"{DEVICE}.tags.position", position)
    for listed in TABLE:
        assert listed in err.allowed


def test_check_cli_exits_2_naming_the_key_value_and_positions(tmp_path: Path) -> None:
    site = {
        "site": {"id": "mine"},
        "rules": [str(PACKS / "coal_mine.yaml")],
        "devices": [
            {
                "id": "face1-gas",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
                "tags": {"area": "face-1", "position": "upper-corner"},
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "face1-gas.tags.position" in proc.stderr and "'upper-corner'" in proc.stderr
    assert "T0, T1, T2" in proc.stderr and "drainage_pump_station" in proc.stderr


def test_a_power_off_rule_needs_an_area() -> None:
    points = device_points(DEVICE, 0, "gas", {"position": "T1"})
    with pytest.raises(RulesConfigError) as info:
        Site(points, COAL)
    assert info.value.path == f"devices[0].tags.area (device {DEVICE!r})"


def test_a_stricter_limit_needs_no_reason() -> None:
    site = gas_site("T1", overrides={DEVICE: {"ch4_face": {"HH": 1.4}}})
    assert methane(site, 1.45)[-1] == ("HH", State.UNACK_ACTIVE, True)
    assert site.engine.plan.loosened == ()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"HH": 2.0}, "face1-gas.ch4_face.HH"),
        ({"H": {"limit": 1.2, "reset": 1.2}}, "face1-gas.ch4_face.H"),
        ({"HH": {"limit": 1.5, "reset": 1.2}}, "face1-gas.ch4_face.HH.reset"),
    ],
)
def test_a_looser_limit_is_refused_without_a_reason(change: dict[str, Any], path: str) -> None:
    with pytest.raises(RulesConfigError) as info:
        gas_site("T1", overrides={DEVICE: {"ch4_face": change}})
    assert info.value.path == path
    assert "limits_reason" in info.value.allowed and "art. 498" in info.value.allowed


def test_a_looser_limit_with_a_reason_is_kept_and_reported() -> None:
    reason = "approved by the chief engineer, 2026-11-02, outburst test heading"
    site = gas_site("T1", overrides={DEVICE: {"ch4_face": {"HH": 2.0}}}, reasons={DEVICE: reason})
    (lo,) = site.engine.plan.loosened
    assert (lo.device, lo.rule, lo.level, lo.key, lo.table, lo.value, lo.reason) == (
        DEVICE,
        "ch4_face",
        "HH",
        "limit",
        1.5,
        2.0,
        reason,
    )
    assert methane(site, 1.8)[-1] == ("H", State.UNACK_ACTIVE, False)


# -- interlock: demand, causes, feed ----------------------------------------------------------


def two_detectors() -> Site:
    points = device_points("face", 0, "gas", {"area": "face-1", "position": "T1"})
    points += device_points("ret", 1, "gas", {"area": "face-1", "position": "T2"})
    points += device_points("other", 2, "gas", {"area": "face-2", "position": "T1"})
    site = Site(points, COAL)
    for dev in ("face", "ret", "other"):
        site.set(dev, ch4=0.1, co=2, o2=20.9, h2s=0, temperature=22, status=1, fault=0)
        site.set(dev, feed_on=1, relay_cut=0)
    site.tick()
    return site


def test_first_tick_reports_every_area_and_causes_follow_the_alarms() -> None:
    points = device_points("face", 0, "gas", {"area": "face-1", "position": "T1"})
    site = Site(points, COAL)
    site.set("face", ch4=0.1, status=1, fault=0, feed_on=1)
    site.tick()
    (first,) = site.engine.take_interlock_changes()
    assert (first.area, first.power_off, first.causes, first.feed) == ("face-1", False, (), "on")
    assert first.since == site.now


def test_power_off_in_one_area_and_feed_still_on_raises_feed_abnormal() -> None:
    site = two_detectors()
    site.engine.take_interlock_changes()
    site.set("face", ch4=1.6)  # relay_cut stays 0: the check does not look at any relay
    site.tick(0.2)
    (area,) = site.engine.take_interlock_changes()
    assert (area.area, area.power_off, area.causes, area.feed) == (
        "face-1",
        True,
        ("face/ch4/ch4_face",),
        "on",
    )
    assert area.since == site.now
    assert [t.rule for t in site.run(1.0, 0.5) if t.rule == "feed_abnormal"] == []
    out = [t for t in site.run(1.0, 0.5) if t.rule == "feed_abnormal"]
    # both feed points of face-1 are still on 2 s after the demand; face-2 has no demand
    assert sorted((t.id, t.priority, t.to_state) for t in out) == [
        ("face/feed_on/feed_abnormal", 1, State.UNACK_ACTIVE),
        ("ret/feed_on/feed_abnormal", 1, State.UNACK_ACTIVE),
    ]
    # the return detector joins the causes
    site.set("ret", ch4=1.1)
    site.tick(0.1)
    (area,) = site.engine.take_interlock_changes()
    assert area.causes == ("face/ch4/ch4_face", "ret/ch4/ch4_return")
    # power is cut: feed off, feed alarms return to normal (unacknowledged)
    site.set("face", feed_on=0)
    site.set("ret", feed_on=0)
    out = site.tick(0.1)
    assert sorted((t.id, t.to_state) for t in out) == [
        ("face/feed_on/feed_abnormal", State.RTN_UNACK),
        ("ret/feed_on/feed_abnormal", State.RTN_UNACK),
    ]
    (area,) = site.engine.take_interlock_changes()
    assert (area.power_off, area.feed) == (True, "off")
    assert site.engine.take_power_losses() == []  # demanded: not unexpected


def test_feed_off_without_demand_is_an_unexpected_power_loss() -> None:
    site = two_detectors()
    site.set("other", feed_on=0)
    site.tick(0.5)
    (loss,) = site.engine.take_power_losses()
    assert (loss.area, loss.points) == ("face-2", ("other/feed_on",))
    assert "unexpected power loss" in loss.message
    (area,) = site.engine.take_interlock_changes()[-1:]
    assert (area.area, area.power_off, area.feed) == ("face-2", False, "off")


def test_fault_lockout_on_detector_fault_demands_power_off() -> None:
    site = two_detectors()
    site.engine.take_interlock_changes()
    site.set("face", status=3)  # fault
    assert [t.rule for t in site.tick(0.5) if t.priority == 1] == []
    assert [t.rule for t in site.tick(1.9) if t.priority == 1] == []  # 1.9 s < 2 s
    out = [t for t in site.tick(0.1) if t.rule == "fault_lockout"]
    assert [(t.id, t.priority, t.power_off) for t in out] == [
        ("face/status/fault_lockout", 1, True)
    ]
    (area,) = site.engine.take_interlock_changes()
    assert (area.area, area.power_off, area.causes) == (
        "face-1",
        True,
        ("face/status/fault_lockout",),
    )


@pytest.mark.parametrize("status", [0, 8])
def test_warm_up_and_over_range_lock_out_too(status: int) -> None:
    site = two_detectors()
    site.set("ret", status=status)
    site.tick(0.1)
    site.tick(2.0)
    assert {a.area: a.power_off for a in site.engine.interlocks(site.now)} == {
        "face-1": True,
        "face-2": False,
    }


def test_comm_loss_locks_out_and_never_hides_the_power_off_alarm() -> None:
    site = two_detectors()
    alarm = "face/ch4/ch4_face"
    site.set("face", ch4=1.6, feed_on=0)
    site.set("ret", feed_on=0)
    site.tick(0.2)
    site.online[0] = False
    out = site.tick(0.5)
    (t,) = [t for t in out if t.id == alarm]  # marked stale, still active
    assert (t.to_state, t.level, t.power_off, t.stale, t.value) == (
        State.UNACK_ACTIVE,
        "HH",
        True,
        True,
        1.6,
    )
    out = site.tick(2.0)
    (lock,) = [t for t in out if t.rule == "fault_lockout_comm"]
    assert (lock.id, lock.priority, lock.power_off) == ("face/_device/fault_lockout_comm", 1, True)
    state = site.state(alarm)
    assert (state.state, state.power_off, state.stale) == (State.UNACK_ACTIVE, True, True)
    assert alarm in {a.id for a in site.engine.active_alarms()}
    # the methane reading falls while the link is down: the alarm keeps its level
    site.set("face", ch4=0.2)
    site.quality[site.index[("face", "ch4")]] = 1
    site.tick(1.0)
    assert site.state(alarm).level == "HH" and site.state(alarm).power_off
    (area,) = [a for a in site.engine.interlocks(site.now) if a.area == "face-1"]
    assert area.power_off and "face/_device/fault_lockout_comm" in area.causes


def test_a_main_return_sensor_loses_comm_without_lockout() -> None:
    points = device_points("main", 0, "gas", {"area": "main", "position": "main_return"})
    site = Site(points, COAL)
    site.set("main", ch4=0.8, status=1, fault=0, feed_on=1)
    site.tick()
    site.online[0] = False
    out = site.tick(0.5) + site.tick(2.0)
    assert "gas_comm" in {t.rule for t in out}
    assert {a.area: a.power_off for a in site.engine.interlocks(site.now)} == {"main": False}
    # the methane alarm there stays visible too (the table's alarms are never suppressed)
    assert site.state("main/ch4/ch4_main_return").state is State.UNACK_ACTIVE


# -- other gases and temperature ----------------------------------------------------------


def test_co_h2s_o2_and_air_temperature_limits() -> None:
    site = gas_site("T1")
    site.set(DEVICE, co=24, h2s=6.6, o2=19.9, air_temperature=30)
    got = {(t.rule, t.level) for t in site.tick(1)}
    assert got == {
        ("co_limit", "H"),
        ("h2s_limit", "H"),
        ("o2_intake", "L"),
        ("temperature_face", "HH"),
    }
    # CO deadband 2 ppm: 23 keeps the alarm, 21.9 clears it
    site.set(DEVICE, co=23)
    assert [t.rule for t in site.tick(1)] == []
    site.set(DEVICE, co=21.9)
    assert [(t.rule, t.to_state) for t in site.tick(1)] == [("co_limit", State.RTN_UNACK)]


def test_the_detectors_own_temperature_is_not_the_air() -> None:
    site = gas_site("T1")
    site.set(DEVICE, temperature=45.0, air_temperature=24.0)  # a warm electronics cell
    assert [t.rule for t in site.tick(1) if "temperature" in t.rule] == []
    assert not any(b.point == "temperature" for b in site.engine.plan.bindings)
    site.set(DEVICE, air_temperature=26.0)
    assert [(t.rule, t.level) for t in site.tick(1)] == [("temperature_face", "H")]


@pytest.mark.parametrize(
    ("position", "point", "rule", "limit"),
    [
        ("T1", "co2", "co2_limit", 0.5),
        ("heading_face", "co2", "co2_limit", 0.5),
        ("main_return", "co2", "co2_main_return", 0.75),
        ("wing_return", "co2", "co2_main_return", 0.75),
        ("district_return", "co2", "co2_district_return", 1.5),
        ("T1", "no2", "no2_limit", 2.5),
        ("T1", "so2", "so2_limit", 5.0),
        ("T1", "nh3", "nh3_limit", 40.0),
        ("T1", "h2", "h2_limit", 0.5),
    ],
)
def test_art_135_gases(position: str, point: str, rule: str, limit: float) -> None:
    site = gas_site(position)
    site.set(DEVICE, **{point: round(limit * 0.98, 4)})
    assert [t.rule for t in site.tick(1) if t.point == point] == []
    site.set(DEVICE, **{point: limit})
    out = [(t.rule, t.level, t.limit, t.priority) for t in site.tick(1) if t.point == point]
    assert out == [(rule, "H", limit, 2)]
    pack_rule = next(r for r in COAL[0].rules if r.id == rule)
    assert isinstance(pack_rule, ThresholdRule)
    assert "CMSR" in pack_rule.levels["H"].source


def test_chamber_temperature_uses_chamber_limits() -> None:
    tags = {"position": "T5", "location": "chamber", "area": "pumps"}
    site = Site(device_points("pump-room", 0, "gas", tags), COAL)
    site.set("pump-room", air_temperature=31.0, ch4=0.1, status=1, fault=0)
    (t,) = [t for t in site.tick() if t.point == "air_temperature"]
    assert (t.rule, t.level) == ("temperature_chamber", "H")


def test_over_range_status_is_priority_one() -> None:
    site = gas_site("T1")
    site.set(DEVICE, status=8)
    (t,) = site.tick(1)
    assert (t.rule, t.level, t.priority) == ("gas_over_range", "OVER_RANGE", 1)


def test_a_detector_in_maintenance_demands_no_power_off_and_its_feed_is_not_checked() -> None:
    site = two_detectors()
    site.engine.take_interlock_changes()
    site.engine.start_maintenance("face", "li", 15, "标校 2.0 % CH4", site.now)
    site.set("face", ch4=2.0)  # calibration gas
    site.run(3.0, 0.5)
    assert {a.area: a.power_off for a in site.engine.interlocks(site.now)}["face-1"] is False
    state = site.state("face/ch4/ch4_face")
    assert (state.state, state.power_off) == (State.OUT_OF_SERVICE, False)
    # a real demand from the other detector of the area: only the checked feeds alarm
    site.set("ret", ch4=1.2)
    out = [t.id for t in site.run(3.0, 0.5) if t.rule == "feed_abnormal"]
    assert out == ["ret/feed_on/feed_abnormal"]
    (area,) = [a for a in site.engine.interlocks(site.now) if a.area == "face-1"]
    assert area.power_off and area.causes == ("ret/ch4/ch4_return",)
