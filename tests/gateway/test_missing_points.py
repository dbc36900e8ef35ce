"""A rule whose device lacks one of its points is visible: a WARNING at start naming device, rule
and point, the list in the retained gateway status (``missing_points``) and in ``hazardgw check``.

The site stays valid (it was before): only a rule its pack marks ``required`` refuses it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.app import Gateway
from gateway.config import load_site
from gateway.messages import OutboundMessage
from tests.harness.paths import ROOT


def write_site(tmp_path: Path) -> Path:
    """An elevator whose custom profile has no ``car_call`` point (so no trapped-passenger
    alarm) and a tower crane with one tilt axis (so no tilt alarm)."""
    lift = (ROOT / "gateway" / "profiles" / "elevator.yaml").read_text(encoding="utf-8")
    lines = [line for line in lift.splitlines() if "name: car_call" not in line]
    (tmp_path / "lift.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    crane = (ROOT / "gateway" / "profiles" / "tower_crane.yaml").read_text(encoding="utf-8")
    lines = [line for line in crane.splitlines() if "name: tilt_y_deg" not in line]
    (tmp_path / "crane.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    site = {
        "site": {"id": "yard"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "rules": [
            str(ROOT / "rules" / "packs" / "elevator.yaml"),
            str(ROOT / "rules" / "packs" / "tower_crane.yaml"),
        ],
        "devices": [
            {
                "id": "lift-1",
                "profile": str(tmp_path / "lift.yaml"),
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
            },
            {
                "id": "crane-1",
                "profile": str(tmp_path / "crane.yaml"),
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5021},
            },
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


def test_warning_at_start_and_the_list_in_the_gateway_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = load_site(write_site(tmp_path))
    with caplog.at_level(logging.WARNING):
        gw = Gateway(site)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("lift-1" in m and "elevator_trapped" in m and "car_call" in m for m in messages), (
        messages
    )
    assert any("crane-1" in m and "crane_tilt" in m and "tilt_y_deg" in m for m in messages)
    sent: list[OutboundMessage] = []
    gw.publisher.publish = sent.append  # type: ignore[method-assign]
    snap = gw.stats.snapshot() | {"points_per_s": 0.0, "requests_per_s": 0.0}
    gw._publish_stats(snap, 0.0)  # the status, without running the loops
    (status,) = [m for m in sent if m.topic.endswith("/gateway/status")]
    doc = json.loads(status.payload)
    assert {"device": "lift-1", "rule": "elevator_trapped", "points": ["car_call"]} in doc[
        "missing_points"
    ]
    assert {"device": "crane-1", "rule": "crane_tilt", "points": ["tilt_y_deg"]} in doc[
        "missing_points"
    ]


def test_check_lists_them_and_still_accepts_the_site(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(write_site(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lift-1: rule elevator_trapped needs car_call" in proc.stdout
    assert "crane-1: rule crane_tilt needs tilt_y_deg" in proc.stdout
