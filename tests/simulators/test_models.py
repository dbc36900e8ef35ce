"""Signal models over simulated time: determinism and each scenario's signature behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators import SCENARIOS, ScenarioError, SiteSimulator, UnknownDevice
from tests.harness.simulators import FakeClock
from tests.simulators.conftest import make_site, tcp_device

SITE = make_site(
    [
        tcp_device("face1-gas", "gas_detector", 15020),
        tcp_device("return-gas", "gas_detector", 15021),
        tcp_device("tank-1", "tank_gauge", 15022),
        tcp_device("tank-2", "tank_gauge", 15023),
        tcp_device("lift-1", "elevator", 15024),
        tcp_device("crane-1", "tower_crane", 15025),
    ]
)


def run(
    scenario: str, until: float, every: float = 1.0, seed: int = 0
) -> list[dict[str, dict[str, float]]]:
    """Values of every device at each ``every`` seconds of simulated time up to ``until``."""
    clock = FakeClock()
    sim = SiteSimulator(SITE, scenario, seed=seed, clock=clock)
    trace = []
    for t in np.arange(0.0, until + every / 2, every):
        sim.step(float(t))
        trace.append({d.id: sim.values(d.id) for d in SITE.devices})
    return trace


def series(trace: list[dict[str, dict[str, float]]], device: str, point: str) -> np.ndarray:
    return np.array([sample[device][point] for sample in trace])


def first_time(values: np.ndarray, condition: np.ndarray, every: float = 1.0) -> float:
    hits = np.flatnonzero(condition)
    return float(hits[0]) * every if hits.size else math.inf


def test_same_seed_same_signals_other_seed_differs() -> None:
    a = run("normal", 60)
    b = run("normal", 60)
    c = run("normal", 60, seed=7)
    assert a == b
    assert a != c


def test_signals_depend_only_on_their_own_device() -> None:
    """A shard serves the same values as a simulator serving every device."""
    clock = FakeClock()
    whole = SiteSimulator(SITE, "normal", seed=3, clock=clock)
    shard = SiteSimulator(SITE, "normal", seed=3, clock=clock, shard=(1, 2))
    assert [d.id for d in shard.devices] == ["return-gas", "tank-2", "crane-1"]
    whole.step(120.0)
    shard.step(120.0)
    for device in shard.devices:
        assert shard.registers(device.id) == whole.registers(device.id)


def test_reads_do_not_change_the_signals() -> None:
    clock = FakeClock()
    polled = SiteSimulator(SITE, "normal", seed=2, clock=clock)
    jumped = SiteSimulator(SITE, "normal", seed=2, clock=clock)
    for t in np.arange(0.0, 30.0, 0.3):
        polled.step(float(t))
        polled.registers("lift-1")
    polled.step(30.0)
    jumped.step(30.0)
    assert polled.registers("lift-1") == jumped.registers("lift-1")


def test_normal_stays_inside_limits_for_an_hour() -> None:
    trace = run("normal", 3600, every=5.0)
    for gas in ("face1-gas", "return-gas"):
        ch4 = series(trace, gas, "ch4")
        assert ch4.max() < 0.5
        assert ch4.min() >= 0.0
        assert np.ptp(ch4) > 0.01  # it does move
        assert set(series(trace, gas, "status")) == {1.0}
        assert series(trace, gas, "o2").min() > 20.5
    for tank in ("tank-1", "tank-2"):
        pct = series(trace, tank, "level_pct")
        assert pct.min() > 20 and pct.max() < 80
        assert not series(trace, tank, "high_switch").any()
    moment = series(trace, "crane-1", "moment_pct")
    assert moment.max() < 90 and moment.max() > 10
    assert series(trace, "crane-1", "wind_ms").max() < 10.8
    assert not series(trace, "crane-1", "alarm_bits").any()
    trips = series(trace, "lift-1", "trips")
    assert trips[-1] - trips[0] > 20
    assert not series(trace, "lift-1", "fault_code").any()


def test_static_never_changes() -> None:
    trace = run("static", 600, every=60.0)
    assert all(sample == trace[0] for sample in trace)


def test_gas_leak_passes_alarm_then_power_off() -> None:
    trace = run("gas-leak", 240)
    ch4 = series(trace, "face1-gas", "ch4")
    t_alarm = first_time(ch4, ch4 >= 1.0)
    t_cut = first_time(ch4, ch4 >= 1.5)
    assert 30 <= t_alarm <= 90
    assert t_alarm < t_cut <= 150
    status = series(trace, "face1-gas", "status")
    assert status[int(t_cut) + 2] == 6.0  # high alarm
    assert series(trace, "face1-gas", "alarm_high")[int(t_cut)]
    assert series(trace, "face1-gas", "relay_cut")[int(t_cut)]
    assert not series(trace, "face1-gas", "feed_on")[int(t_cut) + 1]
    assert series(trace, "face1-gas", "lel")[-1] == pytest.approx(ch4[-1] * 20, abs=0.2)
    assert series(trace, "face1-gas", "o2")[-1] < 20.9
    # the return airway follows later and lower
    ret = series(trace, "return-gas", "ch4")
    assert t_alarm < first_time(ret, ret >= 1.0) < 240
    assert ret.max() < ch4.max()


def test_gas_status_follows_values() -> None:
    trace = run("gas-leak", 240)
    ch4 = series(trace, "face1-gas", "ch4")
    status = series(trace, "face1-gas", "status")
    assert np.all(status[ch4 < 0.8] == 1.0)
    assert np.all(status[(ch4 >= 1.0) & (ch4 < 1.5)] >= 5.0)
    assert np.all(status[ch4 >= 1.5] == 6.0)


def test_unknown_scenario_and_device() -> None:
    with pytest.raises(ScenarioError, match=r"known: .*gas-leak"):
        SiteSimulator(SITE, "earthquake")
    sim = SiteSimulator(SITE)
    with pytest.raises(UnknownDevice):
        sim.registers("nope")
    assert {
        "normal",
        "static",
        "gas-leak",
        "tank-overfill",
        "elevator-trapped",
        "crane-overload",
        "high-wind",
    } <= set(SCENARIOS)
