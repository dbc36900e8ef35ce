"""Each built-in scenario's signature behaviour over simulated time (driven by step())."""

from __future__ import annotations

import numpy as np

from simulators import SiteSimulator
from simulators.crane import BEAUFORT_MS
from tests.simulators.test_models import SITE, first_time, run, series


def test_tank_level_integrates_the_flows() -> None:
    clock_trace = run("normal", 600, every=1.0)
    sim = SiteSimulator(SITE, "normal")
    handle = sim.model("tank-1")
    area = np.pi / 4 * handle.get("diameter") ** 2
    level = series(clock_trace, "tank-1", "level")
    inflow = series(clock_trace, "tank-1", "inflow")
    outflow = series(clock_trace, "tank-1", "outflow")
    # level(t) - level(0) = integral of (in - out) / area; flows are constant within a 1 s step
    predicted = level[0] + np.cumsum((inflow[1:] - outflow[1:]) / 3600.0 / area)
    np.testing.assert_allclose(level[1:], predicted, atol=2e-5)
    pct = series(clock_trace, "tank-1", "level_pct")
    np.testing.assert_allclose(pct, level / handle.get("height") * 100, atol=0.006)


def test_tank_overfill_passes_high_then_high_high() -> None:
    trace = run("tank-overfill", 960, every=5.0)
    for tank in ("tank-1", "tank-2"):
        pct = series(trace, tank, "level_pct")
        assert np.all(np.diff(pct) > 0)  # inflow exceeds outflow throughout
        t_high = first_time(pct, pct >= 85.0, every=5.0)  # the pack's H
        t_hh = first_time(pct, pct >= 90.0, every=5.0)  # the pack's HH
        t_switch = first_time(pct, pct >= 95.0, every=5.0)
        assert 240 <= t_high <= 360
        assert 540 <= t_hh <= 660
        assert 840 <= t_switch <= 960
        switch = series(trace, tank, "high_switch")
        assert not switch[pct < 94.99].any()
        assert switch[pct >= 95.01].all()
        assert (series(trace, tank, "inflow") > series(trace, tank, "outflow")).all()


def test_elevator_doors_and_leveling_are_consistent() -> None:
    trace = run("normal", 900, every=0.5)
    running = series(trace, "lift-1", "running").astype(bool)
    door_open = series(trace, "lift-1", "door_open").astype(bool)
    door_closed = series(trace, "lift-1", "door_closed").astype(bool)
    leveling = series(trace, "lift-1", "leveling").astype(bool)
    speed = series(trace, "lift-1", "speed")
    direction = series(trace, "lift-1", "direction")
    assert not (running & ~door_closed).any()  # never moves with the door open
    assert not (door_open & door_closed).any()
    assert leveling[door_open].all()  # doors open only inside the landing zone
    assert (speed[running] != 0).all() and (speed[~running] == 0).all()
    assert (direction[speed > 0] == 1).all() and (direction[speed < 0] == 2).all()
    assert running.any() and door_open.any() and (~leveling).any()
    sim = SiteSimulator(SITE, "normal")
    rated = sim.model("lift-1").get("rated_speed")
    assert np.abs(speed).max() <= rated + 0.005
    trips = series(trace, "lift-1", "trips")
    starts = np.count_nonzero(np.diff(running.astype(int)) == 1)
    assert trips[-1] - trips[0] >= starts - 1


def test_elevator_trapped_between_floors_for_minutes() -> None:
    trace = run("elevator-trapped", 700, every=1.0)
    running = series(trace, "lift-1", "running").astype(bool)
    trapped = (
        ~running
        & series(trace, "lift-1", "door_closed").astype(bool)
        & ~series(trace, "lift-1", "leveling").astype(bool)
        & series(trace, "lift-1", "occupied").astype(bool)
    )
    start = first_time(trapped, trapped)
    assert 15 <= start <= 60
    held = trapped[int(start) : int(start) + 590]
    assert held.all()  # stopped outside the landing zone, doors closed, occupied, ~10 min
    assert (series(trace, "lift-1", "fault_code")[int(start) : int(start) + 590] == 7).all()
    assert not series(trace, "lift-1", "safety_circuit")[int(start) : int(start) + 590].any()
    assert not trapped[-30:].any()  # released afterwards


def test_crane_moment_follows_load_times_radius_against_rated() -> None:
    trace = run("normal", 600, every=2.0)
    sim = SiteSimulator(SITE, "normal")
    handle = sim.model("crane-1")
    q_max, knee = handle.get("max_load"), handle.get("knee_radius")
    load = series(trace, "crane-1", "load_t")
    radius = series(trace, "crane-1", "radius_m")
    rated = series(trace, "crane-1", "rated_load_t")
    np.testing.assert_allclose(rated, np.minimum(q_max, q_max * knee / radius), rtol=2e-3)
    moment = series(trace, "crane-1", "moment_pct")
    np.testing.assert_allclose(moment, load * radius / (rated * radius) * 100, atol=0.02)
    assert load.max() > 0.5 and np.ptp(radius) > 5  # it works lifts


def test_crane_overload_passes_90_100_110() -> None:
    trace = run("crane-overload", 120, every=1.0)
    moment = series(trace, "crane-1", "moment_pct")
    t90 = first_time(moment, moment >= 90)
    t100 = first_time(moment, moment >= 100)
    t110 = first_time(moment, moment >= 110)
    assert 15 < t90 < t100 < t110 <= 90
    bits = series(trace, "crane-1", "alarm_bits").astype(int)
    prealarm = series(trace, "crane-1", "moment_prealarm").astype(bool)
    assert ((bits & 1) == (moment >= 100)).all()
    assert (prealarm == (moment >= 90)).all()


def test_high_wind_passes_beaufort_6() -> None:
    trace = run("high-wind", 240, every=1.0)
    wind = series(trace, "crane-1", "wind_ms")
    force = series(trace, "crane-1", "beaufort")
    assert wind[:15].max() < 10.8
    assert wind[150:].min() > 10.8 - 4  # gusty around a 14 m/s mean
    assert np.median(wind[150:]) > 10.8
    assert first_time(wind, wind >= 10.8) < 130
    np.testing.assert_array_equal(force, np.searchsorted(BEAUFORT_MS, wind + 1e-9, side="right"))
    bits = series(trace, "crane-1", "alarm_bits").astype(int)
    assert (((bits >> 1) & 1) == (wind >= 10.8 - 1e-9)).all()
