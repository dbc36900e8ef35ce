"""The gateway gives the rules engine each reading's resolution: exposure limits converted to
ppm are rounded down onto it (a limit between two readings first fires above the standard)."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.config import load_site

ROOT = Path(__file__).resolve().parents[2]


def test_the_gateway_binds_exposure_limits_on_each_readings_resolution(tmp_path: Path) -> None:
    """H2S of the gas_detector profile reads in 0.1 ppm: its MAC (10 mg/m³ = 7.054 ppm) binds
    as 7.0, not 7.05 (a reading of 7.1 would be the first to reach 7.05: above the MAC); CO
    reads whole ppm: PC-TWA 20 mg/m³ = 17.16 ppm binds as 17."""
    from gateway.alarm_service import build_engine
    from gateway.points import PointTable

    site_doc = {
        "site": {"id": "plant"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "rules": [str(ROOT / "rules" / "packs" / "occupational_exposure.yaml")],
        "devices": [
            {
                "id": "gd-1",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site_doc), encoding="utf-8")
    site = load_site(path)
    engine = build_engine(site, PointTable(site.devices))
    limits = {b.alarm_id: b.limits[5] for b in engine.plan.bindings}
    assert limits["gd-1/h2s/h2s_exposure_mac"] == 7.0
    assert limits["gd-1/co/co_exposure_twa"] == 17.0
    assert limits["gd-1/co/co_exposure_stel"] == 25.0
