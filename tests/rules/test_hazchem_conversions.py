"""Every toxic-gas limit of the hazchem pack is its OEL in mg/m³ converted to ppm at 20 °C.

GB/T 50493-2019 puts the first alarm level at ≤100 % and the second at ≤200 % of the OEL of
GBZ 2.1-2019 (the MAC where there is one, else the PC-TWA); detectors read ppm. At the GBZ 159
reference conditions (20 °C, 101.3 kPa) one mole of gas fills 24.04 L, so ppm = mg/m³ × 24.04 /
molar mass. This test recomputes each limit twice: from the figures its `source` cites, and from
an independent table (the OELs of DOMAIN.md's GBZ 2.1 list, molar masses summed from atomic
weights) — and requires the limit at or below the exact value, never above, and not needlessly
far below it.
"""

from __future__ import annotations

import re

import pytest

from rules import RulePack, load_packs
from rules._pack import ConditionRule, ThresholdRule
from tests.rules.harness import PACKS, Site, device_points

(HAZCHEM,) = load_packs([PACKS / "hazchem_gas.yaml"])
MOLAR_VOLUME_20C = 24.04  # L/mol at 20 °C, 101.3 kPa (GBZ 159)

#: Standard atomic weights (IUPAC, conventional values).
ATOMIC = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "S": 32.06, "Cl": 35.45}

#: point → (formula, OEL mg/m³ used for the alarms, which OEL) from GBZ 2.1-2019.
TOXIC = {
    "h2s": ({"H": 2, "S": 1}, 10.0, "MAC"),
    "co": ({"C": 1, "O": 1}, 20.0, "PC-TWA"),
    "nh3": ({"N": 1, "H": 3}, 20.0, "PC-TWA"),
    "cl2": ({"Cl": 2}, 1.0, "MAC"),
    "so2": ({"S": 1, "O": 2}, 5.0, "PC-TWA"),
    "no2": ({"N": 1, "O": 2}, 5.0, "PC-TWA"),
    "hcn": ({"H": 1, "C": 1, "N": 1}, 1.0, "MAC"),
    "benzene": ({"C": 6, "H": 6}, 6.0, "PC-TWA"),
    "methanol": ({"C": 1, "H": 4, "O": 1}, 25.0, "PC-TWA"),
}
#: A rounded-down limit may sit this far below the exact conversion (display resolution).
MAX_SHORTFALL = 0.03

CITED = re.compile(r"([\d.]+) mg/m³ × 24\.04 / ([\d.]+) = ([\d.]+) ppm")


def molar_mass(formula: dict[str, int]) -> float:
    return sum(ATOMIC[element] * n for element, n in formula.items())


def toxic_rules() -> dict[str, ThresholdRule]:
    out = {}
    for rule in HAZCHEM.rules:
        if isinstance(rule, ThresholdRule) and rule.point in TOXIC:
            out[rule.point] = rule
    return out


def test_every_toxic_gas_has_a_rule() -> None:
    assert sorted(toxic_rules()) == sorted(TOXIC)


@pytest.mark.parametrize("point", sorted(TOXIC))
@pytest.mark.parametrize(("level", "share"), [("H", 1), ("HH", 2)])
def test_limit_is_the_converted_oel_and_never_above_it(point: str, level: str, share: int) -> None:
    formula, oel, which = TOXIC[point]
    spec = toxic_rules()[point].levels[level]  # type: ignore[index]
    exact = share * oel * MOLAR_VOLUME_20C / molar_mass(formula)
    assert spec.limit <= exact, f"{point} {level} {spec.limit} ppm is above {exact:.4f} ppm"
    assert spec.limit >= exact * (1 - MAX_SHORTFALL), f"{point} {level} needlessly low"
    # the figures the source cites are the ones the limit comes from
    (cited,) = CITED.findall(spec.source)
    mg, mass, ppm = (float(x) for x in cited)
    assert mg == share * oel
    assert mass == pytest.approx(molar_mass(formula), abs=0.01)
    assert ppm == pytest.approx(mg * MOLAR_VOLUME_20C / mass, abs=1e-4)
    assert spec.limit <= ppm
    if level == "H":
        assert which in spec.source


def test_every_toxic_gas_alarms_at_its_first_and_second_level() -> None:
    points = [
        *device_points("ga-1", 0, "gas", {"position": "tank_farm"}),
    ]
    site = Site(points, [HAZCHEM])
    site.set("ga-1", o2=20.9, lel=0, status=1, fault=0, **dict.fromkeys(TOXIC, 0.0))
    assert site.tick() == []
    rules = toxic_rules()
    for point, rule in rules.items():
        h = rule.levels["H"].limit  # type: ignore[index]
        hh = rule.levels["HH"].limit  # type: ignore[index]
        site.set("ga-1", **{point: h})
        assert [(t.rule, t.level) for t in site.tick(1)] == [(rule.id, "H")]
        site.set("ga-1", **{point: hh})
        assert [(t.rule, t.level) for t in site.tick(1)] == [(rule.id, "HH")]
        site.set("ga-1", **{point: 0.0})
        assert [t.to_state.value for t in site.tick(1)] == ["RTN_UNACK"]


def _profile_scales() -> dict[str, float]:
    """The resolution (scale) of each toxic point in the shipped gas profiles."""
    from gateway.config import load_profile

    scales: dict[str, float] = {}
    for name in ("gas_detector", "toxic_gas_detector"):
        for point in load_profile(name).points:
            if point.name in TOXIC:
                scales.setdefault(point.name, point.scale)
    return scales


@pytest.mark.parametrize("point", sorted(TOXIC))
def test_every_limit_is_on_the_detectors_resolution(point: str) -> None:
    """A detector that reads whole ppm shows 17 for a true 17.9 ppm: a limit of 17.1 would then
    first fire at 18, above the OEL. Every limit sits on the reading's resolution grid, so the
    first reading at or above the limit is never more than the OEL."""
    scale = _profile_scales()[point]
    for level in toxic_rules()[point].levels.values():
        steps = level.limit / scale
        assert abs(steps - round(steps)) < 1e-6, (point, level.limit, scale)


def _shipped_resolutions() -> dict[tuple[str, str], set[float]]:
    """``(kind, point) → {step}`` over the shipped profiles (scaled integers only)."""
    from fieldmodel.registers import FLOAT_TYPES
    from gateway.config import load_profile

    names = ("gas_detector", "toxic_gas_detector", "mine_environment", "tank_gauge")
    names += ("elevator", "tower_crane")
    out: dict[tuple[str, str], set[float]] = {}
    for name in names:
        profile = load_profile(name)
        for point in profile.points:
            if point.type not in FLOAT_TYPES:
                out.setdefault((profile.kind, point.name), set()).add(abs(point.scale))
    return out


@pytest.mark.parametrize("pack", load_packs(sorted(PACKS.glob("*.yaml"))), ids=lambda p: p.pack)
def test_every_pack_limit_is_on_the_resolution_of_the_points_it_judges(pack: RulePack) -> None:
    """The check above, for every limit of every threshold rule and every value a discrete or
    duration rule compares a reading with, on every shipped profile's point. (A reset between
    two readings only clears the alarm at the reading below it: later, the safe side.)"""
    steps = _shipped_resolutions()
    checked = 0
    for rule in pack.rules:
        values: list[tuple[str, float]] = []
        if isinstance(rule, ThresholdRule):
            for point in rule.point_names:
                values += [(point, level.limit) for level in rule.levels.values()]
        elif isinstance(rule, ConditionRule):
            tests = (*rule.predicates(), *rule.alternatives())
            values += [(p.point, p.value) for p in tests if p.value is not None]
        for kind in rule.kinds:
            for point, value in values:
                for step in steps.get((kind, point), ()):
                    assert abs(value / step - round(value / step)) < 1e-6, (rule.id, point, value)
                    checked += 1
    assert checked or pack.pack == "occupational_exposure"  # its limits: test_pack_review.py
