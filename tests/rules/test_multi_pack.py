"""Any set of packs loads together: bound by kind, position and tags; conflicts name both rules."""

from __future__ import annotations

from typing import Any

import pytest

from rules import RuleEngine, RulePack, RulesConfigError, load_packs, parse_pack
from tests.rules.harness import PACKS, device_points

ALL_PACKS = load_packs(sorted(PACKS.glob("*.yaml")))


def mixed_site() -> list[Any]:
    """A coal face, a tank farm with its %LEL detectors, an elevator and a crane on one gateway."""
    return [
        *device_points("face1-gas", 0, "gas", {"area": "face-1", "position": "T1"}),
        *device_points("return-gas", 1, "gas", {"area": "face-1", "position": "T2"}),
        *device_points("t101-lel", 2, "gas", {"area": "tank-farm", "position": "tank_farm"}),
        *device_points("pump-lel", 3, "gas", {"area": "tank-farm", "position": "pump_room"}),
        *device_points("tank-t101", 4, "tank", {"area": "tank-farm"}),
        *device_points("lift-a", 5, "elevator"),
        *device_points("crane-1", 6, "crane"),
    ]


def packs_by_device(engine: RuleEngine) -> dict[str, set[str]]:
    owner = {rule.id: pack.pack for pack in ALL_PACKS for rule in pack.rules}
    out: dict[str, set[str]] = {}
    for b in engine.plan.bindings:
        out.setdefault(b.device, set()).add(owner[b.pack_rule_id])
    return out


def test_every_shipped_pack_loads_together_and_each_detector_gets_one_gas_pack() -> None:
    engine = RuleEngine(mixed_site(), ALL_PACKS)
    # occupational exposure judges the dose of a toxic-gas reading wherever it is measured: it
    # makes no gas alarm of its own kind, so it adds to either gas pack
    exposure = "occupational_exposure"
    assert packs_by_device(engine) == {
        "face1-gas": {"coal_mine", exposure},
        "return-gas": {"coal_mine", exposure},
        "t101-lel": {"hazchem_gas", exposure},
        "pump-lel": {"hazchem_gas", exposure},
        "tank-t101": {"tank_farm"},
        "lift-a": {"elevator"},
        "crane-1": {"tower_crane"},
    }
    ids = set(engine.alarm_ids)
    assert "t101-lel/lel/lel_alarm" in ids and "face1-gas/ch4/ch4_face" in ids
    assert "t101-lel/ch4/ch4_face" not in ids and "face1-gas/lel/lel_alarm" not in ids


def test_the_order_of_the_packs_does_not_change_the_alarms() -> None:
    forward = RuleEngine(mixed_site(), ALL_PACKS)
    backward = RuleEngine(mixed_site(), list(reversed(ALL_PACKS)))
    assert sorted(forward.alarm_ids) == sorted(backward.alarm_ids)


def extra_pack(**rule: Any) -> RulePack:
    base = {
        "id": "site_co",
        "type": "threshold",
        "title": "site CO limit",
        "kind": "gas",
        "point": "co",
        "levels": {"H": {"limit": 30, "priority": 2, "source": "site procedure"}},
    }
    return parse_pack(
        {"pack": "site_extra", "title": "site extras", "rules": [base | rule]}, "site_extra.yaml"
    )


def test_two_packs_judging_one_reading_is_an_error_naming_both_rules() -> None:
    with pytest.raises(RulesConfigError) as err:
        RuleEngine(mixed_site(), [*ALL_PACKS, extra_pack()])
    exc = err.value
    assert exc.source == "packs" and exc.path == "face1-gas/co"
    assert "co_limit" in exc.value and "coal_mine.yaml" in exc.value
    assert "site_co (site_extra.yaml)" in exc.value
    assert "position" in exc.allowed


def test_a_pack_scoped_away_by_tags_does_not_conflict() -> None:
    pack = extra_pack(tags={"area": "warehouse"})
    engine = RuleEngine(mixed_site(), [*ALL_PACKS, pack])
    assert not [b for b in engine.plan.bindings if b.rule_id == "site_co"]


def test_different_checks_of_one_reading_from_two_packs_are_not_a_conflict() -> None:
    pack = parse_pack(
        {
            "pack": "site_extra",
            "title": "site extras",
            "rules": [
                {
                    "id": "co_rising",
                    "type": "rate_of_change",
                    "title": "CO rising",
                    "kind": "gas",
                    "point": "co",
                    "window_s": 60,
                    "rise_per_min": 5,
                    "priority": 3,
                    "source": "site procedure",
                }
            ],
        },
        "site_extra.yaml",
    )
    engine = RuleEngine(mixed_site(), [*ALL_PACKS, pack])
    assert "face1-gas/co/co_rising" in engine.alarm_ids
    assert "face1-gas/co/co_limit" in engine.alarm_ids


def test_a_detector_whose_position_no_gas_pack_lists_is_an_error_listing_them_all() -> None:
    points = [*mixed_site(), *device_points("loose-gas", 7, "gas", {"position": "T11"})]
    with pytest.raises(RulesConfigError) as err:
        RuleEngine(points, ALL_PACKS)
    assert err.value.path == "loose-gas.tags.position" and err.value.value == "T11"
    assert "coal_mine: T0" in err.value.allowed and "hazchem_gas: process_unit" in err.value.allowed


def test_a_rule_selecting_a_position_outside_its_packs_vocabulary_is_refused() -> None:
    with pytest.raises(RulesConfigError) as err:
        parse_pack(
            {
                "pack": "p",
                "title": "p",
                "positions": {"A1": "position A1 of the test"},
                "rules": [
                    {
                        "id": "r",
                        "type": "comm",
                        "title": "r",
                        "kind": "gas",
                        "tags": {"position": ["A1", "A2"]},
                        "priority": 2,
                        "source": "test",
                    }
                ],
            },
            "p.yaml",
        )
    assert (err.value.path, err.value.value) == ("rules[0].tags.position", "A2")
    assert "A1" in err.value.allowed
