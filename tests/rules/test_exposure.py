"""Occupational exposure rules (GBZ 2.1-2019): the pack's limits, golden scenarios for every
check, shifts, restart, and the vectorized engine against the scalar reference."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules import (
    AlarmTransition,
    PointRef,
    RuleEngine,
    RulePack,
    RulesConfigError,
    ShiftSchedule,
    State,
    load_packs,
    mg_m3_to_ppm,
    parse_pack,
)
from rules._pack import ExposureRule
from tests.rules.harness import PACKS, Site
from tests.rules.test_equivalence import GENERIC_POINTS, run_both, steps_for

PACK = load_packs([PACKS / "occupational_exposure.yaml"])[0]
RULES = {r.substance: r for r in PACK.rules if isinstance(r, ExposureRule)}
#: Midnight UTC; with UTC_SHIFTS the first shift runs 00:00-08:00.
START = 1_699_920_000.0
UTC_SHIFTS = ShiftSchedule(("00:00", "08:00", "16:00"), "UTC")
TOXIC = ("co", "h2s", "nh3", "so2", "no2", "cl2", "hcn", "benzene", "methanol", "h2o2")

#: The values DOMAIN.md lists to check, mg/m³: (PC-TWA, PC-STEL, MAC).
DOMAIN_LIMITS: dict[str, tuple[float | None, float | None, float | None]] = {
    "CO": (20, 30, None),
    "H2S": (None, None, 10),
    "NH3": (20, 30, None),
    "SO2": (5, 10, None),
    "NO2": (5, 10, None),
    "Cl2": (None, None, 1),
    "HCN": (None, None, 1),
    "C6H6": (6, 10, None),
    "CH3OH": (25, 50, None),
}
ATOMIC_WEIGHTS = {"C": 12.011, "H": 1.008, "N": 14.007, "O": 15.999, "S": 32.06, "Cl": 35.45}


def molar_mass(formula: str) -> float:
    total = 0.0
    for element, count in re.findall(r"([A-Z][a-z]?)(\d*)", formula):
        total += ATOMIC_WEIGHTS[element] * (int(count) if count else 1)
    return total


def toxic_points(device: str = "tox1", index: int = 0, unit: str = "ppm") -> list[PointRef]:
    return [PointRef(device, index, name, "gas", {}, unit) for name in TOXIC]


def site_with(points: list[PointRef], packs: list[RulePack], start: float = START) -> Site:
    site = Site(points, packs, start=start)
    site.engine = RuleEngine(points, packs, shifts=UTC_SHIFTS)
    return site


def raised(log: list[AlarmTransition], alarm_id: str) -> list[float]:
    """Times (seconds since START) at which ``alarm_id`` went active."""
    return [
        t.ts - START
        for t in log
        if t.id == alarm_id and t.to_state is State.UNACK_ACTIVE and t.from_state is State.NORMAL
    ]


def cleared(log: list[AlarmTransition], alarm_id: str) -> list[float]:
    return [t.ts - START for t in log if t.id == alarm_id and t.to_state is State.RTN_UNACK]


# -- the pack --------------------------------------------------------------------------------


def test_pack_has_the_domain_substances_with_their_limits() -> None:
    for substance, (twa, stel, mac) in DOMAIN_LIMITS.items():
        rule = RULES[substance]
        assert (rule.pc_twa, rule.pc_stel, rule.mac) == (twa, stel, mac), substance
        assert "GBZ 2.1-2019" in rule.source


def test_molar_masses_follow_from_the_atomic_weights() -> None:
    for substance, rule in RULES.items():
        assert rule.molar_mass == pytest.approx(molar_mass(substance), abs=0.0005), substance


@pytest.mark.parametrize("substance", sorted(RULES))
def test_ppm_limits_are_never_above_the_standard(substance: str) -> None:
    rule = RULES[substance]
    for mg in (rule.pc_twa, rule.pc_stel, rule.mac):
        if mg is None:
            continue
        exact = Fraction(mg) * Fraction("24.04") / Fraction(rule.molar_mass)
        ppm = mg_m3_to_ppm(mg, rule.molar_mass)
        assert Fraction(ppm) <= exact
        assert Fraction(ppm) > exact - Fraction(1, 100)  # rounded down by less than 0.01 ppm


def test_limits_bind_in_each_points_unit() -> None:
    ppm = RuleEngine(toxic_points(), [PACK])
    mg = RuleEngine(toxic_points(unit="mg/m3"), [PACK])
    limits_ppm = {b.alarm_id: b.limits[5] for b in ppm.plan.bindings}
    limits_mg = {b.alarm_id: b.limits[5] for b in mg.plan.bindings}
    assert limits_ppm["tox1/co/co_exposure_twa"] == 17.16  # 20 × 24.04 / 28.01 = 17.165
    assert limits_ppm["tox1/co/co_exposure_stel"] == 25.74
    assert limits_ppm["tox1/h2s/h2s_exposure_mac"] == 7.05
    assert limits_ppm["tox1/h2o2/h2o2_exposure_excursion"] == 3 * 1.06
    assert limits_mg["tox1/co/co_exposure_twa"] == 20.0
    assert limits_mg["tox1/cl2/cl2_exposure_mac"] == 1.0


def test_checks_per_substance() -> None:
    engine = RuleEngine(toxic_points(), [PACK])
    by_point: dict[str, set[str]] = {}
    for b in engine.plan.bindings:
        by_point.setdefault(b.point, set()).add(b.level_name)
    assert by_point["co"] == {"TWA", "TWA_FORECAST", "STEL"}
    assert by_point["h2s"] == {"MAC"}
    assert by_point["h2o2"] == {"TWA", "TWA_FORECAST", "EXCURSION"}


def test_a_point_in_another_unit_is_a_config_error() -> None:
    points = [PointRef("g1", 0, "co", "gas", {}, "%LEL")]
    with pytest.raises(RulesConfigError) as info:
        RuleEngine(points, [PACK])
    assert "co_exposure on g1/co" in str(info.value)
    assert "ppm or mg/m3" in str(info.value)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"pc_twa": 5, "mac": 10}, "either mac"),
        ({}, "either mac"),
        ({"mac": 5, "pc_stel": 10}, "pc_stel needs pc_twa"),
        ({"pc_twa": 5, "pc_stel": 5}, "must be above pc_twa"),
        ({"pc_twa": -1}, "greater than 0"),
    ],
)
def test_bad_exposure_rules_are_refused(limits: dict[str, float], message: str) -> None:
    rule = {
        "id": "x_exposure",
        "type": "exposure",
        "title": "x",
        "kind": "gas",
        "point": "co",
        "substance": "CO",
        "molar_mass": 28.01,
        "priority": 2,
        "source": "test",
        **limits,
    }
    with pytest.raises(RulesConfigError) as info:
        parse_pack({"pack": "p", "title": "p", "rules": [rule]}, "p.yaml")
    assert message in str(info.value)
    assert "rules[0]" in str(info.value)


# -- golden scenarios ------------------------------------------------------------------------


def test_co_stel_forecast_and_twa() -> None:
    """40 ppm CO from the start of a shift: the STEL (25.74 ppm) is reached when the 15-min
    average is 40 × t / 15 ≥ 25.74, t = 9.65 min; the forecast (shift TWA projected at the
    15-min mean) soon after the start; the 8-h TWA (17.16 ppm) when 40 × t / 8 h ≥ 17.16,
    t = 3.432 h, which clears the forecast."""
    site = site_with(toxic_points(), [PACK])
    site.set("tox1", co=40.0)
    site.tick()
    site.run(4 * 3600, 10.0)
    stel = raised(site.log, "tox1/co/co_exposure_stel")
    assert stel == [580.0]  # first 10-s tick at or after 579 s
    forecast = raised(site.log, "tox1/co/co_exposure_twa_forecast")
    twa = raised(site.log, "tox1/co/co_exposure_twa")
    assert twa == [12360.0]  # 17.16 × 28800 / 40 = 12355.2 s, next tick
    assert cleared(site.log, "tox1/co/co_exposure_twa_forecast") == twa
    # the forecast: (dose + 15-min mean × time left in the shift) / 8 h ≥ 17.16, first at
    t = 10.0
    while (40 * t + 40 * t / 900 * (28800 - t)) / 28800 < 17.16:
        t += 10.0
    assert forecast == [t] and t < stel[0]
    first = next(t for t in site.log if t.id == "tox1/co/co_exposure_twa_forecast")
    # forecast seconds: (17.16 ppm × 8 h − dose so far) / 15-min mean
    assert first.forecast_s == pytest.approx((17.16 * 28800 - 40 * t) / (40 * t / 900))
    assert first.level == "TWA_FORECAST" and first.priority == 3
    twa_state = site.state("tox1/co/co_exposure_twa")
    assert twa_state.level == "TWA" and twa_state.priority == 2
    assert twa_state.value == pytest.approx(40.0 * 4 * 3600 / 28800)


def test_co_below_the_limits_raises_nothing() -> None:
    site = site_with(toxic_points(), [PACK])
    site.set("tox1", co=17.0)  # just below PC-TWA 17.16 ppm for a whole shift
    site.tick()
    site.run(8 * 3600 - 60, 10.0)
    assert [t for t in site.log if t.device == "tox1"] == []


def test_forecast_uses_the_time_left_in_the_shift() -> None:
    """30 ppm for one hour mid-shift: the projection (dose + 30 × time left) / 8 h reaches
    17.16 ppm; the same hour in the last hour of a shift does not."""
    early = site_with(toxic_points(), [PACK], start=START + 3600)
    early.set("tox1", co=30.0)
    early.tick()
    early.run(1800, 10.0)
    assert raised(early.log, "tox1/co/co_exposure_twa_forecast")
    late = site_with(toxic_points(), [PACK], start=START + 7 * 3600)
    late.set("tox1", co=15.0)
    late.tick()
    late.run(3540, 10.0)
    assert raised(late.log, "tox1/co/co_exposure_twa_forecast") == []


def test_h2s_mac_is_a_ceiling() -> None:
    site = site_with(toxic_points(), [PACK])
    site.set("tox1", h2s=7.0)
    site.tick()
    site.run(60, 1.0)
    assert raised(site.log, "tox1/h2s/h2s_exposure_mac") == []
    site.set("tox1", h2s=7.05)  # MAC 10 mg/m³ = 7.054 ppm, rounded down
    site.tick(1.0)
    assert raised(site.log, "tox1/h2s/h2s_exposure_mac") == [61.0]
    site.set("tox1", h2s=6.0)
    site.tick(1.0)
    assert cleared(site.log, "tox1/h2s/h2s_exposure_mac") == [62.0]


def excursion_site() -> Site:
    """One point in mg/m³ with PC-TWA 1 and no STEL: excursion limit 3, ceiling 5."""
    pack = parse_pack(
        {
            "pack": "t",
            "title": "t",
            "rules": [
                {
                    "id": "x_exposure",
                    "type": "exposure",
                    "title": "x",
                    "kind": "gas",
                    "point": "x",
                    "substance": "X",
                    "molar_mass": 34.0,
                    "pc_twa": 1.0,
                    "priority": 2,
                    "source": "test",
                }
            ],
        },
        "t.yaml",
    )
    return site_with([PointRef("d", 0, "x", "gas", {}, "mg/m3")], [pack])


EXC = "d/x/x_exposure_excursion"


def test_excursion_longer_than_15_min() -> None:
    site = excursion_site()
    site.set("d", x=0.0)
    site.tick()
    site.run(600, 10.0)
    site.set("d", x=3.0)
    site.tick(10.0)  # excursion starts at 610 s
    site.run(900, 10.0)
    assert raised(site.log, EXC) == [1510.0]  # 610 + 900
    site.set("d", x=2.5)
    site.tick(10.0)
    assert cleared(site.log, EXC) == [1520.0]


def test_excursion_reaching_five_times_pc_twa() -> None:
    site = excursion_site()
    site.set("d", x=4.9)
    site.tick()
    site.run(60, 10.0)
    assert raised(site.log, EXC) == []
    site.set("d", x=5.0)
    site.tick(10.0)
    assert raised(site.log, EXC) == [70.0]


def test_excursions_closer_than_an_hour() -> None:
    site = excursion_site()
    site.set("d", x=3.5)
    site.tick()
    site.run(300, 10.0)
    site.set("d", x=0.5)
    site.tick(10.0)  # first excursion ends at 310 s
    site.run(3580, 10.0)  # 3890 s: 3580 s after its end
    site.set("d", x=3.5)
    site.tick(10.0)  # starts 3590 s after the end
    assert raised(site.log, EXC) == [3900.0]
    site.set("d", x=0.5)
    site.tick(10.0)
    site.run(3600, 10.0)
    site.set("d", x=3.5)
    site.tick(10.0)  # 3610 s after the end: allowed
    assert raised(site.log, EXC) == [3900.0]


def test_fifth_excursion_in_a_shift() -> None:
    site = excursion_site()
    site.set("d", x=0.5)
    site.tick()
    for _ in range(4):  # four 5-min excursions, 1 h 10 min apart
        site.set("d", x=3.5)
        site.run(300, 10.0)
        site.set("d", x=0.5)
        site.run(4200, 10.0)
    assert raised(site.log, EXC) == []
    site.set("d", x=3.5)
    site.tick(10.0)
    assert len(raised(site.log, EXC)) == 1
    assert site.state(EXC).value == 3.5 and site.state(EXC).limit == 3.0


def test_shift_rows() -> None:
    site = site_with(toxic_points(), [PACK])
    site.set("tox1", co=10.0, h2s=1.0)
    site.tick()
    site.run(2 * 3600, 10.0)
    site.set("tox1", co=30.0)
    site.run(3600, 10.0)
    site.set("tox1", co=0.0)
    site.run(5 * 3600 + 10, 10.0)  # past the end of the first shift (8 h)
    shifts = site.engine.take_shift_exposures()
    assert len(shifts) == 1
    shift = shifts[0]
    assert (shift.start, shift.end) == (START, START + 8 * 3600)
    c = shift.rules.index("co_exposure")
    # 10 ppm for 2 h + 30 ppm for 1 h (each 10-s tick reads the value set before it)
    assert shift.twa[c] == pytest.approx((10.0 * 7200 + 30.0 * 3600) / 28800)
    assert shift.peak[c] == 30.0
    assert shift.stel_max[c] == pytest.approx(30.0)
    assert shift.measured_s[c] == 8 * 3600
    assert shift.pc_twa[c] == 17.16 and shift.pc_stel[c] == 25.74
    h = shift.rules.index("h2s_exposure")
    assert shift.mac[h] == 7.05 and math.isnan(shift.pc_twa[h])
    assert site.engine.take_shift_exposures() == []


def test_gaps_count_as_unmeasured() -> None:
    site = site_with(toxic_points(), [PACK])
    site.set("tox1", co=20.0)
    site.tick()
    site.run(600, 10.0)
    site.quality[site.index[("tox1", "co")]] = 1  # the detector fails for an hour
    site.tick(3600.0)
    site.quality[site.index[("tox1", "co")]] = 0
    site.run(3600 * 8, 10.0)
    shift = site.engine.take_shift_exposures()[0]
    c = shift.rules.index("co_exposure")
    assert shift.measured_s[c] == 8 * 3600 - 3600


# -- restart ---------------------------------------------------------------------------------


def drive(site: Site, seconds: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(round(seconds / 10)):
        site.set("tox1", co=float(rng.integers(0, 60)), h2o2=float(rng.integers(0, 8)) / 2)
        site.tick(10.0)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "exposure.npz"
    straight = site_with(toxic_points(), [PACK])
    drive(straight, 3 * 3600)
    drive(straight, 6 * 3600)

    before = site_with(toxic_points(), [PACK])
    drive(before, 3 * 3600)
    before.engine.save_exposure(path)
    after = site_with(toxic_points(), [PACK], start=before.now)
    assert after.engine.load_exposure(path) == 10
    drive(after, 6 * 3600)

    want = straight.engine._exposure.snapshot()
    got = after.engine._exposure.snapshot()
    assert want.keys() == got.keys()
    assert want.pop("keys").tolist() == got.pop("keys").tolist()
    for name in want:
        assert np.array_equal(want[name], got[name], equal_nan=True), name
    want_shifts = straight.engine.take_shift_exposures()
    got_shifts = after.engine.take_shift_exposures()
    assert len(want_shifts) == len(got_shifts) == 1
    assert np.array_equal(want_shifts[0].twa, got_shifts[0].twa)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_restart_with_a_changed_site(tmp_path: Path) -> None:
    path = tmp_path / "exposure.npz"
    before = site_with(toxic_points(), [PACK])
    before.set("tox1", co=50.0)
    before.tick()
    before.run(1800, 10.0)
    before.engine.save_exposure(path)
    points = toxic_points("tox2", 0) + toxic_points("tox1", 1)
    after = site_with(points, [PACK], start=before.now)
    assert after.engine.load_exposure(path) == 10  # tox1's channels; tox2 starts empty
    after.set("tox1", co=50.0)
    after.set("tox2", co=50.0)
    after.tick(10.0)
    assert after.state("tox1/co/co_exposure_stel").state is State.UNACK_ACTIVE
    assert "tox2/co/co_exposure_stel" not in {a.id for a in after.engine.active_alarms()}


def test_missing_and_bad_state_files(tmp_path: Path) -> None:
    engine = RuleEngine(toxic_points(), [PACK])
    assert engine.load_exposure(tmp_path / "none.npz") == 0
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(RulesConfigError) as info:
        engine.load_exposure(bad)
    assert str(bad) in str(info.value)
    other = tmp_path / "other.npz"
    np.savez(other, keys=np.array(["a"]))
    with pytest.raises(RulesConfigError) as info:
        engine.load_exposure(other)
    assert "exposure state" in str(info.value)


def test_shift_schedule_errors() -> None:
    with pytest.raises(ValueError, match="25:00"):
        ShiftSchedule(("08:00", "25:00"))
    with pytest.raises(ValueError, match="Mars/Olympus"):
        ShiftSchedule(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="each time once"):
        ShiftSchedule(("08:00", "08:00"))


def test_shift_bounds_in_local_time() -> None:
    shanghai = ShiftSchedule(("08:00", "20:00"), "Asia/Shanghai")
    # 2023-11-14 00:00 UTC is 08:00 in Shanghai: a shift starts then and ends at 20:00 local
    assert shanghai.bounds(START) == (START, START + 12 * 3600)
    assert shanghai.bounds(START - 1) == (START - 12 * 3600, START)


# -- the engine against the scalar reference -------------------------------------------------

#: Small limits too, so the 8-h TWA (dose ≥ limit × 8 h) is reached within a short random run.
LIMIT_GRID = (0.05, 0.125, 0.5, 1.0, 1.5, 2.0, 4.0)


@st.composite
def exposure_pack(draw: st.DrawFn) -> RulePack:
    rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 4))):
        rule: dict[str, Any] = {
            "id": f"e{i}",
            "type": "exposure",
            "title": f"e{i}",
            "kind": "x",
            "point": draw(st.sampled_from(GENERIC_POINTS)),
            "substance": f"S{i}",
            "molar_mass": 32.0,
            "priority": draw(st.integers(1, 4)),
            "source": "test",
        }
        shape = draw(st.sampled_from(("twa", "twa_stel", "mac")))
        if shape == "mac":
            rule["mac"] = draw(st.sampled_from(LIMIT_GRID))
        else:
            rule["pc_twa"] = draw(st.sampled_from(LIMIT_GRID))
            if shape == "twa_stel":
                rule["pc_stel"] = rule["pc_twa"] * draw(st.sampled_from((1.5, 2.0)))
        rules.append(rule)
    return parse_pack({"pack": "random", "title": "random", "rules": rules}, "random.yaml")


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_exposure_engine_matches_reference(data: st.DataObject) -> None:
    pack = data.draw(exposure_pack())
    n_devices = data.draw(st.integers(1, 3))
    points = [
        PointRef(f"x{d}", d, name, "x", {}, "mg/m3")
        for d in range(n_devices)
        for name in GENERIC_POINTS
    ]
    # short shifts, so shift closes happen within a run
    starts = data.draw(st.sampled_from((("00:00",), ("00:00", "00:30", "01:00", "02:00", "04:00"))))
    engine = RuleEngine(points, [pack], shifts=ShiftSchedule(starts, "UTC"))
    assume(engine.alarm_ids)
    steps = data.draw(steps_for(points, n_devices))
    run_both(engine, steps, len(points))


def test_every_rule_binds_to_the_toxic_gas_profile() -> None:
    from gateway.config import load_profile

    points = [
        PointRef(name, index, p.name, profile.kind, {}, p.unit)
        for index, name in enumerate(("gas_detector", "toxic_gas_detector"))
        for profile in [load_profile(name)]
        for p in profile.points
    ]
    engine = RuleEngine(points, [PACK])
    assert {b.spec.rule_id for b in engine.plan.bindings} == {r.id for r in PACK.rules}  # type: ignore[union-attr]


def test_calibration_gas_is_not_exposure() -> None:
    """While the detector is in maintenance (calibration), its readings add no dose."""
    site = site_with(toxic_points(), [PACK])
    site.set("tox1", co=0.0)
    site.tick()
    site.run(600, 10.0)
    site.engine.start_maintenance("tox1", "tech", 30, "calibration", site.now)
    site.set("tox1", co=200.0)  # span gas
    site.run(600, 10.0)
    site.engine.end_maintenance("tox1", "tech", "done", site.now)
    site.set("tox1", co=0.0)
    site.run(3600 * 8, 10.0)
    shift = site.engine.take_shift_exposures()[0]
    c = shift.rules.index("co_exposure")
    assert shift.twa[c] == 0.0 and shift.peak[c] == 0.0
    assert shift.measured_s[c] == 8 * 3600 - 600
    assert raised(site.log, "tox1/co/co_exposure_stel") == []
