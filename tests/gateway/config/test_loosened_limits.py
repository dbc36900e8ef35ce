"""A methane limit looser than the table: refused without a reason, kept and shown with one.

With ``limits_reason`` on the device the looser limit is logged (WARNING) when the gateway binds
its rules and listed in the retained gateway status (``loosened_limits``); without it,
``hazardgw check`` exits 2 naming the key, the value, the table's limit and the way out.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import Gateway
from gateway.config import load_site
from gateway.messages import OutboundMessage
from tests.harness.paths import ROOT

REASON = "approved by the chief engineer 2026-11-02: outburst-test heading, ventilation raised"


def write_site(tmp_path: Path, **device: Any) -> Path:
    site = {
        "site": {"id": "mine"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "rules": [str(ROOT / "rules" / "packs" / "coal_mine.yaml")],
        "devices": [
            {
                "id": "face1-gas",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
                "tags": {"area": "face-1", "position": "T1"},
                "limits": {"ch4_face": {"HH": 1.8}},
                **device,
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


def test_without_a_reason_check_exits_2(tmp_path: Path) -> None:
    path = write_site(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "face1-gas.ch4_face.HH" in proc.stderr and "1.8" in proc.stderr
    assert "1.5" in proc.stderr and "limits_reason" in proc.stderr


def test_with_a_reason_it_is_logged_and_in_the_gateway_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = load_site(write_site(tmp_path, limits_reason=REASON))
    with caplog.at_level(logging.WARNING):
        gw = Gateway(site)
    assert any("ch4_face HH limit 1.8" in r.getMessage() and REASON in r.getMessage()
               for r in caplog.records)  # fmt: skip
    sent: list[OutboundMessage] = []
    gw.publisher.publish = sent.append  # type: ignore[method-assign]
    snap = gw.stats.snapshot() | {"points_per_s": 0.0, "requests_per_s": 0.0}
    gw._publish_stats(snap, 0.0)  # the status, without running the loops
    (status,) = [m for m in sent if m.topic.endswith("/gateway/status")]
    doc = json.loads(status.payload)
    assert doc["loosened_limits"] == [
        {
            "device": "face1-gas",
            "rule": "ch4_face",
            "level": "HH",
            "key": "limit",
            "table": 1.5,
            "value": 1.8,
            "reason": REASON,
        }
    ]
