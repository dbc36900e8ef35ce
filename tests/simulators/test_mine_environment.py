"""The mine_environment station: the air's own temperature and the art. 135 gases.

The station's ``air_temperature`` is what the coal-mine stop-work rules read (never a detector's
internal ``temperature``); its CO2 and H2 points get the art. 135 limits. A simulated station in
normal operation stays inside every limit of the coal-mine pack.
"""

from __future__ import annotations

from gateway.alarm_service import build_engine
from gateway.config import SiteConfig, parse_site
from gateway.points import PointTable
from simulators import SiteSimulator
from tests.harness.paths import ROOT
from tests.harness.simulators import FakeClock
from tests.simulators.conftest import tcp_device

TAGS = {"area": "face-1", "position": "T1"}


def site() -> SiteConfig:
    return parse_site(
        {
            "site": {"id": "env"},
            "rules": [str(ROOT / "rules" / "packs" / "coal_mine.yaml")],
            "devices": [
                tcp_device("face-env", "mine_environment", 1502, tags=TAGS),
                tcp_device("face-gas", "gas_detector", 1503, tags=TAGS),
            ],
        }
    )


def test_stop_work_rules_read_the_air_of_the_station_only() -> None:
    s = site()
    engine = build_engine(s, PointTable(s.devices))
    bound = {(b.device, b.point, b.rule_id) for b in engine.plan.bindings}
    assert ("face-env", "air_temperature", "temperature_face") in bound
    assert ("face-env", "co2", "co2_limit") in bound and ("face-env", "h2", "h2_limit") in bound
    assert ("face-env", "ch4", "ch4_face") in bound  # a methane sensor too: the table applies
    assert not any(point == "temperature" for _, point, _ in bound)


def test_a_simulated_station_stays_inside_the_limits() -> None:
    s = site()
    clock = FakeClock()
    sim = SiteSimulator(s, scenario="normal", seed=2, clock=clock)
    for _ in range(120):
        clock.now += 5.0
        sim.step()
        v = sim.values("face-env")
        assert 15.0 < v["air_temperature"] < 26.0
        assert 0.0 <= v["co2"] < 0.5 and v["h2"] < 0.5 and v["ch4"] < 1.0
