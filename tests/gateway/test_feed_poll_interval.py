"""A feed sensor polled slower than its feed check's ``for_s`` is a config error.

The feed check (馈电) raises feed-abnormal when the area's feed point still reads "on" ``for_s``
seconds (2 s, the power-off execution time of AQ 6201-2019) after a power-off demand. A sensor
read every 5 s shows the cut only at its next poll: the check would raise a false priority-1
alarm. ``hazardgw check`` exits 2 naming the device, its poll_interval and the way out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import Gateway
from gateway.config import load_site
from rules import RulesConfigError

ROOT = Path(__file__).resolve().parents[2]


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
                **device,
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_feed_sensor_polled_slower_than_the_check_is_refused(tmp_path: Path) -> None:
    proc = check(write_site(tmp_path, poll_interval=5))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "face1-gas" in proc.stderr and "poll_interval" in proc.stderr
    assert "5" in proc.stderr and "feed_abnormal" in proc.stderr and "for_s" in proc.stderr
    with pytest.raises(RulesConfigError, match="poll_interval"):
        Gateway(load_site(write_site(tmp_path, poll_interval=5)))


def test_polled_within_the_check_or_with_a_longer_for_s_it_is_accepted(tmp_path: Path) -> None:
    assert check(write_site(tmp_path, poll_interval=2)).returncode == 0
    slow_but_waited = write_site(tmp_path, poll_interval=5, limits={"feed_abnormal": {"for_s": 6}})
    proc = check(slow_but_waited)
    assert proc.returncode == 0, proc.stderr


def test_a_slow_device_without_a_feed_point_is_not_concerned(tmp_path: Path) -> None:
    # a methane sensor of the mine environment profile has no feed point
    proc = check(write_site(tmp_path, poll_interval=5, profile="mine_environment"))
    assert proc.returncode == 0, proc.stderr
