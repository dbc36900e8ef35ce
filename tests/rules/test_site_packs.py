"""Behaviour of the tank-farm, hazchem-gas and tower-crane packs (elevators: test_elevator.py)."""

from __future__ import annotations

import pytest

from rules import State, load_packs
from tests.rules.harness import PACKS, Site, device_points

TANK = load_packs([PACKS / "tank_farm.yaml"])
HAZCHEM = load_packs([PACKS / "hazchem_gas.yaml"])
CRANE = load_packs([PACKS / "tower_crane.yaml"])


def crane() -> Site:
    site = Site(device_points("tc-1", 0, "crane"), CRANE)
    site.set(
        "tc-1",
        load_t=2,
        rated_load_t=8,
        moment_pct=50,
        radius_m=20,
        height_m=30,
        slew_deg=90,
        wind_ms=3,
        beaufort=2,
        tilt_x_deg=0.1,
        tilt_y_deg=0.0,
        alarm_bits=0,
        sensor_fault=0,
    )
    assert site.tick() == []
    return site


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (89.5, set()),
        (90.0, {("crane_moment", "H", 3)}),
        (99.9, {("crane_moment", "H", 3)}),
        (100.0, {("crane_moment", "HH", 1)}),  # the cut (GB 5144 §6.1.2)
        (109.9, {("crane_moment", "HH", 1)}),
        (110.0, {("crane_moment", "HH", 1), ("crane_moment_limiter_failed", "LIMITER_FAILED", 1)}),
    ],
)
def test_moment_pre_alarm_cut_and_failed_limiter(
    moment: float, expected: set[tuple[str, str, int]]
) -> None:
    site = crane()
    site.set("tc-1", moment_pct=moment)
    assert {(t.rule, t.level, t.priority) for t in site.tick(1)} == expected


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        (7.1, set()),
        (7.2, {"crane_load_pre"}),
        (8.0, {"crane_load_pre", "crane_overload"}),
        (8.8, {"crane_load_pre", "crane_overload", "crane_load_limiter_failed"}),
    ],
)
def test_load_pre_alarm_cut_and_failed_limiter(load: float, expected: set[str]) -> None:
    site = crane()  # rated 8 t at this radius
    site.set("tc-1", load_t=load)
    assert {t.rule for t in site.tick(1)} == expected


@pytest.mark.parametrize(
    ("x", "y", "level"),
    [(0.4, 0.0, None), (0.0, -0.5, "H"), (0.3, 0.4, "H"), (-0.71, 0.71, "HH"), (0.8, 0.6, "HH")],
)
def test_tilt_alarm_is_on_the_magnitude_of_both_axes(x: float, y: float, level: str | None) -> None:
    site = crane()
    site.set("tc-1", tilt_x_deg=x, tilt_y_deg=y)
    got = [(t.rule, t.level) for t in site.tick(1)]
    assert got == ([("crane_tilt", level)] if level else [])
    if level:
        assert site.engine.active_alarms()[0].value == pytest.approx((x * x + y * y) ** 0.5)


def test_load_against_rated_load_and_alarm_bits() -> None:
    site = crane()
    site.set("tc-1", load_t=8.5, alarm_bits=0b1100_0001)
    got = {(t.rule, t.level, t.priority) for t in site.tick(1)}
    assert got == {
        ("crane_load_pre", "LOAD_PRE", 3),
        ("crane_overload", "OVERLOAD", 1),
        ("crane_bit_moment", "MOMENT_BIT", 2),
        ("crane_bit_no_go", "NO_GO_ZONE", 1),
        ("crane_bit_anti_collision", "ANTI_COLLISION", 1),
    }


def test_wind_beaufort_six_stops_work_after_gust_delay() -> None:
    site = crane()
    site.set("tc-1", wind_ms=11.0)
    assert site.tick() == []
    assert site.run(2) == []
    (t,) = site.run(1)
    assert (t.rule, t.level, t.limit, t.priority) == ("crane_wind", "HH", 10.8, 1)


def tank() -> Site:
    site = Site(device_points("tk-101", 0, "tank"), TANK)
    site.set(
        "tk-101",
        level=8,
        level_pct=50,
        temperature=20,
        pressure=1,
        inflow=0,
        outflow=0,
        high_switch=0,
        status=0,
    )
    assert site.tick() == []
    return site


def test_tank_level_bands() -> None:
    site = tank()
    got = []
    for pct in (86, 91, 89, 87, 60, 9, 4):
        site.set("tk-101", level_pct=pct)
        got += [(t.level, t.to_state) for t in site.tick(1) if t.rule == "tank_level"]
    assert got == [
        ("H", State.UNACK_ACTIVE),
        ("HH", State.UNACK_ACTIVE),
        # 89: still HH (reset 88, deadband 2 % of span)
        ("H", State.UNACK_ACTIVE),
        ("H", State.RTN_UNACK),
        ("L", State.UNACK_ACTIVE),
        ("LL", State.UNACK_ACTIVE),
    ]


def test_tank_filling_forecast_reaches_high_high() -> None:
    site = tank()
    pct = 50.0
    forecasts = []
    for _ in range(60):  # +1 %/min: below the 2 %/min rate limit
        pct += 1 / 60
        site.set("tk-101", level_pct=pct)
        for t in site.tick(1):
            if t.rule == "tank_level_rise":
                forecasts.append(t)
    assert forecasts == []  # 40 % to go at 1 %/min is 40 min: no alarm yet
    at_alarm = []
    for _ in range(60 * 26):
        pct += 1 / 60
        site.set("tk-101", level_pct=pct)
        out = [t for t in site.tick(1) if t.rule == "tank_level_rise"]
        forecasts += out
        at_alarm += [pct] * len(out)
    (t,) = forecasts
    assert t.to_state is State.UNACK_ACTIVE and t.forecast_s is not None
    assert t.forecast_s == pytest.approx(900, abs=2)
    assert t.value == pytest.approx(1.0)  # %/min
    assert at_alarm[0] == pytest.approx(75, abs=0.1)


def test_feeding_above_high_high_is_an_interlock_failure() -> None:
    site = tank()
    site.set("tk-101", level_pct=91, inflow=1.0)
    rule = "tank_feeding_above_hh"
    site.tick()
    assert [t for t in site.run(9) if t.rule == rule] == []
    (t,) = [t for t in site.run(1) if t.rule == rule]
    assert (t.rule, t.level, t.priority, t.value) == (
        "tank_feeding_above_hh",
        "OVERFILL_FEED",
        1,
        91,
    )


def test_hazchem_lel_and_toxic_levels() -> None:
    site = Site(device_points("ga-7", 0, "gas", {"position": "tank_farm"}), HAZCHEM)
    site.set("ga-7", lel=0, h2s=0, co=0, o2=20.9, status=1, fault=0, ch4=0, temperature=20)
    site.tick()
    site.set("ga-7", lel=26, h2s=15, o2=19.4)
    got = {(t.rule, t.level) for t in site.tick(1)}
    assert got == {("lel_alarm", "H"), ("h2s_oel", "HH"), ("o2_range", "L")}
    site.set("ga-7", lel=50, o2=23.5)
    got = {(t.rule, t.level) for t in site.tick(1)}
    assert got == {("lel_alarm", "HH"), ("o2_range", "H")}


def test_stale_data_alarm_then_comm_failure_suppresses_it() -> None:
    site = tank()
    site.now += 61  # nothing read for 61 s
    out = {(t.point, t.rule, t.to_state) for t in site.tick()}
    points = ("level", "level_pct", "temperature", "pressure")
    assert out == {(p, "tank_stale", State.UNACK_ACTIVE) for p in points}
    site.online[0] = False
    out = {(t.point, t.to_state) for t in site.tick(1)}
    assert out == {(p, State.SUPPRESSED) for p in points}
    for _ in range(9):
        assert site.tick(1) == []
    (t,) = site.tick(1)  # comm on-delay 10 s
    assert (t.id, t.level, t.to_state) == ("tk-101/_device/tank_comm", "COMM", State.UNACK_ACTIVE)


@pytest.mark.parametrize("status", [1, 2])
def test_a_gauge_fault_or_lost_echo_is_an_alarm(status: int) -> None:
    """A radar gauge that lost its echo may keep reporting its last level as good: the level
    alarms cannot be trusted, so the fault itself is an alarm."""
    site = tank()
    site.set("tk-101", status=status)
    assert site.tick() == []
    assert site.run(4) == []  # 5 s on-delay
    (t,) = site.run(1)
    assert (t.rule, t.level, t.priority, t.to_state) == (
        "tank_gauge_fault",
        "FAULT",
        2,
        State.UNACK_ACTIVE,
    )


def test_comm_loss_never_hides_a_priority_one_alarm() -> None:
    """A tank at high-high whose gauge goes silent is still at high-high as far as anyone knows:
    the alarm stays active, marked stale, while lower-priority ones are suppressed."""
    site = tank()
    site.set("tk-101", level_pct=91, temperature=61)
    raised = {(t.rule, t.level, t.priority) for t in site.tick(1)}
    assert ("tank_level", "HH", 1) in raised
    site.online[0] = False
    out = {(t.point, t.rule): t for t in site.tick(1)}
    hh = out[("level_pct", "tank_level")]
    assert (hh.to_state, hh.level, hh.stale) == (State.UNACK_ACTIVE, "HH", True)
    others = {t.to_state for (_, rule), t in out.items() if rule != "tank_level"}
    assert others <= {State.SUPPRESSED}
    site.online[0] = True
    out = {(t.point, t.rule): t for t in site.tick(1)}
    back = out[("level_pct", "tank_level")]
    assert (back.to_state, back.level, back.stale) == (State.UNACK_ACTIVE, "HH", False)


def run_level(site: Site, start: float, per_min: float, minutes: int, **flows: float) -> list:  # type: ignore[type-arg]
    """Move the level at ``per_min`` %/min for ``minutes``, sampled every 2 s, with ``flows``."""
    out = []
    pct = start
    for _ in range(minutes * 30):
        pct += per_min / 30
        site.set("tk-101", level_pct=pct, **flows)
        out += [t for t in site.tick(2) if t.rule in ("tank_leak", "tank_unexpected_rise")]
    return out


def test_a_normal_pump_out_is_not_a_leak() -> None:
    site = tank()
    assert run_level(site, 50, -0.5, 20, outflow=150.0, inflow=0.0) == []


def test_level_falling_with_no_outflow_is_a_leak() -> None:
    site = tank()
    out = run_level(site, 50, -0.05, 5, outflow=0.0, inflow=0.0)
    assert [(t.rule, t.level, t.priority) for t in out] == [("tank_leak", "LEAK", 2)]
    assert out[0].value < -0.01
    # the operator starts a transfer out: the falling level is explained
    out = run_level(site, 49.75, -0.5, 2, outflow=150.0)
    assert [(t.rule, t.to_state) for t in out] == [("tank_leak", State.RTN_UNACK)]


def test_level_rising_with_no_inflow_is_unexpected_but_a_receipt_is_not() -> None:
    site = tank()
    assert run_level(site, 50, 0.5, 5, inflow=120.0, outflow=0.0) == []
    out = run_level(site, 52.5, 0.05, 5, inflow=0.0, outflow=0.0)
    assert [(t.rule, t.level) for t in out[:1]] == [("tank_unexpected_rise", "UNEXPECTED_RISE")]
