"""The shipped rule packs: valid, cited, and bound to point names the built-in profiles have."""

from __future__ import annotations

import pytest
import yaml

from rules import RulePack, load_packs
from rules._pack import ConditionRule, ThresholdRule
from tests.harness.paths import ROOT
from tests.rules.harness import PACKS, PROFILE_POINTS

PROFILES = ROOT / "gateway" / "profiles"
ALL = load_packs(sorted(PACKS.glob("*.yaml")))


def profile_points() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted(PROFILES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out.setdefault(doc["kind"], set()).update(p["name"] for p in doc["points"])
    return out


def points_used(pack: RulePack) -> set[tuple[str, str]]:
    used = set()
    for rule in pack.rules:
        if isinstance(rule, ConditionRule):
            tests = (*rule.predicates(), *rule.alternatives())
            names = {n for p in tests for n in p.points_used}
            names |= {rule.report_point} if rule.report_point else set()
        else:
            names = set(getattr(rule, "point_names", ())) - {"*"}
            names |= {n for c in getattr(rule, "conditions", ()) for n in c.points_used}
        used |= {(kind, name) for kind in rule.kinds for name in names}
    return used


def test_six_packs_ship() -> None:
    assert {p.pack for p in ALL} == {
        "coal_mine",
        "hazchem_gas",
        "occupational_exposure",
        "tank_farm",
        "elevator",
        "tower_crane",
    }


@pytest.mark.parametrize("pack", ALL, ids=lambda p: p.pack)
def test_every_limit_cites_a_source(pack: RulePack) -> None:
    for rule in pack.rules:
        sources = (
            [lv.source for lv in rule.levels.values()]
            if isinstance(rule, ThresholdRule)
            else [rule.source]
        )
        assert all(len(s) >= 8 for s in sources), rule.id


@pytest.mark.parametrize("pack", ALL, ids=lambda p: p.pack)
def test_pack_points_exist_in_the_builtin_profiles(pack: RulePack) -> None:
    profiles = profile_points()
    if not profiles:
        pytest.skip("gateway/profiles not present")
    missing = {(k, n) for k, n in points_used(pack) if n not in profiles.get(k, set())}
    assert missing == set()


def test_harness_point_names_match_the_builtin_profiles() -> None:
    profiles = profile_points()
    if not profiles:
        pytest.skip("gateway/profiles not present")
    for kind, points in PROFILE_POINTS.items():
        assert {name for name, _ in points} <= profiles[kind], kind
