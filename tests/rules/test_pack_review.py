"""Findings of the pack review, each pinned by a test (see CHANGELOG, "Pack review fixes")."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from fieldmodel.registers import FLOAT_TYPES
from rules import PointRef, RuleEngine, load_packs
from rules._binding import TrendSpec
from rules._exposure import ExposureSpec
from rules._pack import StaleRule
from tests.rules.harness import PACKS, Site, device_points

PROFILES = Path(__file__).resolve().parents[2] / "gateway" / "profiles"
#: Units of a gas concentration in the shipped profiles.
GAS_UNITS = ("%CH4", "%vol", "%LEL", "ppm", "mg/m3")


def gas_profile_points() -> set[str]:
    """Every gas concentration point of the shipped gas profiles (one name per gas: the float
    copy of the methane reading, ``ch4_precise``, and the cell's range are not readings)."""
    out: set[str] = set()
    for path in sorted(PROFILES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if doc["kind"] != "gas":
            continue
        out |= {
            p["name"]
            for p in doc["points"]
            if p.get("unit") in GAS_UNITS and p["name"] not in ("ch4_precise", "ch4_range")
        }
    return out


@pytest.mark.parametrize(("pack", "rule_id"), [("coal_mine", "gas_stale")])
def test_gas_stale_covers_every_gas_point_of_the_gas_profiles(pack: str, rule_id: str) -> None:
    (loaded,) = load_packs([PACKS / f"{pack}.yaml"])
    (rule,) = [r for r in loaded.rules if r.id == rule_id]
    assert isinstance(rule, StaleRule)
    gases = gas_profile_points()
    assert {"lel", "nh3", "h2o2", "co2", "h2"} <= gases  # the profiles are what we think
    assert gases <= set(rule.point_names), sorted(gases - set(rule.point_names))


def test_hazchem_stale_covers_every_gas_its_packs_judge() -> None:
    (hazchem,) = load_packs([PACKS / "hazchem_gas.yaml"])
    (stale,) = [r for r in hazchem.rules if r.id == "hazgas_stale"]
    judged = {n for r in hazchem.rules if r.id != stale.id for n in getattr(r, "point_names", ())}
    assert judged - {"*"} <= set(stale.point_names)  # type: ignore[attr-defined]
    assert "h2o2" in stale.point_names  # type: ignore[attr-defined]  # the exposure pack's gas


TANK = {"area": "tank-farm-1"}


def _tank_site(overrides: dict[str, object] | None = None) -> Site:
    points = device_points("tk1", 0, "tank", TANK)
    return Site(points, load_packs([PACKS / "tank_farm.yaml"]), overrides=overrides)  # type: ignore[arg-type]


def _limits(site: Site, alarm_id: str) -> float:
    (b,) = [b for b in site.engine.plan.bindings if b.alarm_id == alarm_id]
    return b.limits[5]


def _forecast_limit(site: Site) -> float | None:
    (b,) = [b for b in site.engine.plan.bindings if b.rule_id == "tank_level_rise"]
    assert isinstance(b.spec, TrendSpec)
    return b.spec.forecast_limit


def test_tank_forecast_and_feed_check_follow_the_tank_level_hh() -> None:
    """One fact, one place: the high-high setpoint of tank_level is the forecast's target and
    the level above which feeding is an interlock failure, also after a per-tank override."""
    site = _tank_site()
    assert _forecast_limit(site) == 90.0
    assert _limits(site, "tk1/level_pct/tank_feeding_above_hh") == 90.0
    lowered = _tank_site({"tk1": {"tank_level": {"H": 75.0, "HH": 80.0}}})
    assert _forecast_limit(lowered) == 80.0
    assert _limits(lowered, "tk1/level_pct/tank_feeding_above_hh") == 80.0
    # and it alarms there: at 82 % with the feed still on
    lowered.set("tk1", level_pct=82.0, inflow=5.0, outflow=0.0, status=0)
    lowered.run(15)
    assert lowered.state("tk1/level_pct/tank_feeding_above_hh").state.value == "UNACK_ACTIVE"


def _profile_resolution(profile: str, point: str) -> float:
    doc = yaml.safe_load((PROFILES / f"{profile}.yaml").read_text(encoding="utf-8"))
    (p,) = [p for p in doc["points"] if p["name"] == point]
    return 0.0 if p["type"] in FLOAT_TYPES else float(p.get("scale", 1.0))


EXPOSURE_POINTS = {
    "gas_detector": ("co", "h2s"),
    "toxic_gas_detector": ("nh3", "cl2", "so2", "no2", "hcn", "benzene", "methanol", "h2o2"),
}


@pytest.mark.parametrize("profile", sorted(EXPOSURE_POINTS))
def test_exposure_limits_sit_on_the_detectors_resolution(profile: str) -> None:
    """A limit between two readings first fires at the reading above it (7.05 ppm on a 0.1 ppm
    reading: at 7.1, above the MAC of 10 mg/m³ = 7.054 ppm). Each converted limit is rounded
    down onto the reading's step: H2S MAC 7.0 ppm, CO PC-TWA 17 ppm on a 1 ppm reading."""
    points = [
        PointRef("d1", 0, name, "gas", {}, "ppm", _profile_resolution(profile, name))
        for name in EXPOSURE_POINTS[profile]
    ]
    engine = RuleEngine(points, load_packs([PACKS / "occupational_exposure.yaml"]))
    seen = 0
    for b in engine.plan.bindings:
        assert isinstance(b.spec, ExposureSpec)
        step = points[b.spec.point_index].resolution
        for limit in (b.spec.pc_twa, b.spec.pc_stel, b.spec.mac, b.limits[5]):
            if math.isnan(limit):
                continue
            assert abs(limit / step - round(limit / step)) < 1e-6, (b.alarm_id, limit, step)
            seen += 1
    assert seen
    if profile == "gas_detector":
        limits = {b.alarm_id: b.limits[5] for b in engine.plan.bindings}
        assert limits["d1/h2s/h2s_exposure_mac"] == 7.0
        assert limits["d1/co/co_exposure_twa"] == 17.0
        assert limits["d1/co/co_exposure_stel"] == 25.0


@pytest.mark.parametrize(
    ("when", "error"),
    [
        ({"point": "level_pct", "op": "ge", "limit_of": "nowhere.HH"}, "names no level"),
        ({"point": "level_pct", "op": "ge", "limit_of": "lvl.LL"}, "names no level"),
        ({"point": "level_pct", "op": "ge", "limit_of": "lvl.HH", "value": 1}, "exactly one"),
        ({"point": "level_pct", "op": "in", "values": [1], "limit_of": "lvl.HH"}, "comparisons"),
    ],
)
def test_a_bad_level_reference_names_what_is_wrong(when: dict[str, object], error: str) -> None:
    from rules import RulesConfigError, parse_pack

    level = {"limit": 90.0, "priority": 1, "source": "test"}
    doc = {
        "pack": "p",
        "title": "p",
        "rules": [
            {"id": "lvl", "type": "threshold", "title": "t", "kind": "tank", "point": "level_pct",
             "levels": {"HH": level}},
            {"id": "feed", "type": "discrete", "title": "f", "kind": "tank", "level": "X",
             "priority": 1, "source": "test", "when": when},
        ],
    }  # fmt: skip
    with pytest.raises(RulesConfigError, match=error):
        parse_pack(doc, "p.yaml")


def test_fan_inlet_second_step_calls_for_the_local_fan_at_one_and_a_half_percent() -> None:
    """CMSR art. 498 (DOMAIN.md, fan_inlet row): the heading is cut at ≥0.5 %; at ≥1.5 % the
    local fan too. The second step is its own priority-1 alarm now, not only range text."""
    tags = {"area": "heading-3", "position": "fan_inlet"}
    site = Site(device_points("fan3-gas", 0, "gas", tags), load_packs([PACKS / "coal_mine.yaml"]))
    site.set("fan3-gas", ch4=0.1, co=2, o2=20.9, h2s=0, status=1, fault=0, feed_on=0)
    site.tick()
    site.set("fan3-gas", ch4=1.0)
    assert [(t.rule, t.level) for t in site.tick(0.5) if t.point == "ch4"] == [
        ("ch4_fan_inlet", "HH")
    ]
    site.set("fan3-gas", ch4=1.49)
    assert [t.rule for t in site.tick(0.5) if t.point == "ch4"] == []
    site.set("fan3-gas", ch4=1.5)
    (t,) = [t for t in site.tick(0.5) if t.point == "ch4"]
    assert (t.rule, t.level, t.priority, t.to_state.value) == (
        "ch4_fan_inlet_local_fan",
        "LOCAL_FAN_OFF",
        1,
        "UNACK_ACTIVE",
    )
    # back below 1.5 %: the local-fan alarm returns, the heading stays cut until < 0.5 %
    site.set("fan3-gas", ch4=1.0)
    (t,) = [t for t in site.tick(0.5) if t.point == "ch4"]
    assert (t.rule, t.to_state.value) == ("ch4_fan_inlet_local_fan", "RTN_UNACK")
    assert site.state("fan3-gas/ch4/ch4_fan_inlet").power_off
