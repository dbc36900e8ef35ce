"""Bad rule packs and bad overrides: each error names the file, the key path, the value and
what is allowed. Every bad example sits beside the message it must produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rules import RuleEngine, RulesConfigError, load_packs, parse_pack
from tests.rules.harness import PACKS, device_points

GOOD_RULE: dict[str, Any] = {
    "id": "ch4_x",
    "type": "threshold",
    "title": "methane",
    "kind": "gas",
    "point": "ch4",
    "levels": {
        "H": {"limit": 1.0, "priority": 2, "source": "test source"},
        "HH": {"limit": 1.5, "reset": 1.0, "priority": 1, "source": "test source"},
    },
}


def with_rule(**changes: Any) -> dict[str, Any]:
    rule = {**GOOD_RULE, **changes}
    return {"pack": "p", "title": "t", "rules": [rule]}


BAD_PACKS: list[tuple[dict[str, Any], str, str]] = [
    (with_rule(type="thresold"), "rules[0]", "'threshold'"),
    (with_rule(limt=3), "rules[0].limt", "allowed keys:"),
    (
        with_rule(levels={"HH": {"limit": 1.5, "priority": 1, "source": "x"}}),
        "rules[0].levels.HH.source",
        "at least 3 characters",
    ),
    (
        with_rule(levels={"H": {"limit": 1.0, "priority": 7, "source": "test"}}),
        "rules[0].levels.H.priority",
        "less than or equal to 4",
    ),
    (
        with_rule(levels={"X": {"limit": 1.0, "priority": 2, "source": "test"}}),
        "rules[0].levels.X",
        "'LL', 'L', 'H' or 'HH'",
    ),
    (
        with_rule(
            levels={
                "H": {"limit": 2.0, "priority": 2, "source": "test"},
                "HH": {"limit": 1.5, "priority": 1, "source": "test"},
            }
        ),
        "rules[0]",
        "HH limit must be ≥ H limit 2",
    ),
    (
        with_rule(levels={"H": {"limit": 1.0, "reset": 1.2, "priority": 2, "source": "test"}}),
        "rules[0]",
        "resets at or below its limit",
    ),
    (with_rule(id="CH4"), "rules[0].id", "pattern"),
    (with_rule(point=None), "rules[0]", "exactly one of 'point'"),
    (with_rule(message="{valu}"), "rules[0].message", "unknown placeholder 'valu'"),
    (
        {
            "pack": "p",
            "title": "t",
            "rules": [
                {
                    "id": "d",
                    "type": "discrete",
                    "title": "d",
                    "kind": "gas",
                    "level": "FAULT",
                    "priority": 3,
                    "source": "test",
                    "when": {"point": "status", "op": "bit_set", "value": 3},
                }
            ],
        },
        "rules[0].when",
        "takes 'bit'",
    ),
    ({"pack": "p", "title": "t", "rules": [GOOD_RULE, GOOD_RULE]}, "", "duplicate rule id"),
]


@pytest.mark.parametrize(("data", "path", "allowed"), BAD_PACKS)
def test_bad_pack_names_path_and_allowed(data: dict[str, Any], path: str, allowed: str) -> None:
    with pytest.raises(RulesConfigError) as info:
        parse_pack(data, "site/packs/custom.yaml")
    err = info.value
    assert err.source == "site/packs/custom.yaml"
    assert err.path == path
    assert allowed in err.allowed
    assert str(err).startswith(f"site/packs/custom.yaml: {path}" if path else "site/packs")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: p\nrules:\n  - id: x\n    title: a: b\n", encoding="utf-8")
    with pytest.raises(RulesConfigError, match=r"bad\.yaml: line 4 column"):
        load_packs([bad])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesConfigError, match="a readable file"):
        load_packs([tmp_path / "nope.yaml"])


def test_rule_ids_are_unique_across_packs(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text((PACKS / "coal_mine.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(RulesConfigError, match=r"already defined in .*coal_mine\.yaml"):
        load_packs([PACKS / "coal_mine.yaml", copy])


COAL = load_packs([PACKS / "coal_mine.yaml"])
FACE = device_points("face1-gas", 0, "gas", {"position": "T1", "area": "face-1"})

BAD_OVERRIDES: list[tuple[dict[str, Any], str, str]] = [
    ({"face9-gas": {"ch4_face": {"HH": 1.4}}}, "face9-gas", "a configured device id"),
    ({"face1-gas": {"ch4_facee": {"HH": 1.4}}}, "face1-gas.ch4_facee", "a rule id of the loaded"),
    ({"face1-gas": {"ch4_return": {"HH": 1.4}}}, "face1-gas.ch4_return", "does not bind there"),
    ({"face1-gas": {"ch4_face": {"HHH": 1.4}}}, "face1-gas.ch4_face.HHH", "defines: H, HH"),
    ({"face1-gas": {"ch4_face": {"HH": "1.4"}}}, "face1-gas.ch4_face.HH", "a finite number"),
    ({"face1-gas": {"ch4_face": {"HH": 0.9}}}, "face1-gas.ch4_face.HH", "≥ H limit 1"),
    ({"face1-gas": {"ch4_face": {"H": 0.8}}}, "face1-gas.ch4_face.H.reset", "at or below"),
    ({"face1-gas": {"gas_stale": {"max_age": 5}}}, "face1-gas.gas_stale.max_age", "max_age_s"),
    ({"face1-gas": {"gas_stale": {"max_age_s": -5}}}, "face1-gas.gas_stale.max_age_s", "> 0"),
]


@pytest.mark.parametrize(("overrides", "path", "allowed"), BAD_OVERRIDES)
def test_bad_override_names_device_rule_and_level(
    overrides: dict[str, Any], path: str, allowed: str
) -> None:
    with pytest.raises(RulesConfigError) as info:
        RuleEngine(FACE, COAL, overrides)
    assert (info.value.source, info.value.path) == ("overrides", path)
    assert allowed in info.value.allowed


def test_good_overrides() -> None:
    engine = RuleEngine(
        FACE,
        COAL,
        {
            "face1-gas": {
                "ch4_face": {"H": {"limit": 0.8, "reset": 0.8}, "HH": 1.2},
                "gas_stale": {"max_age_s": 10},
                "fault_lockout_comm": {"on_delay_s": 0},
            }
        },
    )
    (face,) = [b for b in engine.plan.bindings if b.rule_id == "ch4_face"]
    assert face.limits[3:5] == (0.8, 1.2)
