"""Each simulated methane relay follows its position's row of the methane table.

The relay cuts at the power-off limit of the detector's ``position`` and restores below that
row's restore limit (the site's coal-mine pack, not one limit for every position); detectors of
one ``area`` share a supply, so one relay cutting turns every feed of the area off a step later;
a detector at a position with power-off that keeps reporting a fault cuts its relay (fault
lockout).
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.config import load_site
from simulators._methane import relay_settings
from simulators.gas import STATUS, GasDetectorModel
from tests.harness.paths import ROOT


def test_relay_settings_come_from_the_sites_methane_table() -> None:
    site = load_site(ROOT / "hazardgw" / "examples" / "site.yaml")
    got = {
        device: (s["alarm_low"], s["alarm_high"], s["restore"])
        for device, s in relay_settings(site).items()
        if "alarm_low" in s  # detectors under other packs (the tank farm's) keep the defaults
    }
    by_position = {d.id: d.tags["position"] for d in site.devices if "position" in d.tags}
    assert {by_position[d]: v for d, v in got.items()} == {
        "T1": (1.0, 1.5, 1.0),
        "T2": (1.0, 1.0, 1.0),
        "T0": (1.0, 1.5, 1.0),
        "T7": (2.5, 2.5, 2.5),
    }


def model(rows: list[dict[str, float]]) -> GasDetectorModel:
    m = GasDetectorModel([f"d{i}" for i in range(len(rows))], seed=1)
    for i, row in enumerate(rows):
        for name, value in row.items():
            m.params[name][i] = value
    return m


def step(m: GasDetectorModel, t: float, **ch4_base: float) -> dict[str, np.ndarray]:
    for i, value in ch4_base.items():
        m.params["ch4_base"][int(i[1:])] = value
    m.update(t, m.dt, np.zeros((m.n, m.normals)), np.zeros((m.n, m.uniforms)))
    m._ou[:] = 0.0  # exact values: no noise in this test
    m._turbulence[:] = 0.0
    m._derive()
    return {k: np.asarray(v) for k, v in m.outputs().items()}


@pytest.mark.parametrize(
    ("alarm", "power_off", "restore"),
    [(1.0, 1.5, 1.0), (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (2.5, 2.5, 2.5), (1.5, 1.5, 1.5)],
)
def test_relay_cuts_at_its_power_off_limit_and_restores_below_its_reset(
    alarm: float, power_off: float, restore: float
) -> None:
    m = model([{"alarm_low": alarm, "alarm_high": power_off, "restore": restore}])
    m.start()
    assert not step(m, 1.0, d0=power_off - 0.01)["relay_cut"][0]
    assert step(m, 2.0, d0=power_off)["relay_cut"][0]
    assert step(m, 3.0, d0=restore)["relay_cut"][0]  # held down to the restore value
    assert not step(m, 4.0, d0=restore - 0.01)["relay_cut"][0]


def test_detectors_of_one_area_share_the_supply() -> None:
    rows = [
        {"alarm_high": 1.5, "restore": 1.0, "area": 0.0},
        {"alarm_high": 1.0, "restore": 1.0, "area": 0.0},
        {"alarm_high": 1.5, "restore": 1.0, "area": 1.0},
    ]
    m = model(rows)
    m.start()
    out = step(m, 1.0, d0=1.6, d1=0.2, d2=0.2)
    assert out["relay_cut"].tolist() == [True, False, False]
    out = step(m, 2.0)  # the feed sensors see the cut one step later, area-wide
    assert out["feed_on"].tolist() == [False, False, True]


def test_a_faulted_detector_locks_its_area_out_after_lockout_s() -> None:
    m = model([{"alarm_high": 1.5, "restore": 1.0, "sensor_fault": 1.0, "lockout_s": 2.0}])
    m.start()
    out = step(m, 1.0, d0=0.2)
    assert out["status"][0] == STATUS["fault"] and not out["relay_cut"][0]
    assert step(m, 3.0)["relay_cut"][0]
