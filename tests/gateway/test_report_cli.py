"""`hazardgw report daily`: the report of a kept day from the state directory alone."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from gateway.config import load_site
from gateway.report import DailyStore, report_directory
from gateway.sinks.influx import line_kind
from hazardgw.cli import main
from rules import load_packs
from tests.rules.harness import PACKS, Site, device_points

SHANGHAI = ZoneInfo("Asia/Shanghai")


def site_file(tmp_path: Path, *, outbox: bool = True) -> Path:
    doc: dict[str, object] = {
        "site": {"id": "mine-1", "name": "Mine 1"},
        "devices": [
            {
                "id": "face1-gas",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
                "tags": {"position": "T1", "area": "face-1"},
            }
        ],
    }
    # without an outbox key a site keeps one in $STATE_DIRECTORY: "no outbox" must be said
    doc["outbox"] = (
        {"path": str(tmp_path / "state" / "outbox.sqlite3")} if outbox else {"enabled": False}
    )
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def keep_a_day(tmp_path: Path) -> dt.date:
    """Run a detector through an over-limit and a calibration and save the day as the gateway
    does at midnight."""
    start = dt.datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI).timestamp()
    site = Site(
        device_points("face1-gas", 0, "gas", {"position": "T1", "area": "face-1"}),
        load_packs([PACKS / "coal_mine.yaml"]),
        start=start,
    )
    daily = site.engine.enable_daily(SHANGHAI)
    site.set("face1-gas", ch4=0.3, co=2, o2=20.9, h2s=0, temperature=22, status=1, fault=0)
    site.run(60)
    site.set("face1-gas", ch4=1.2)
    site.run(60)
    site.engine.start_maintenance("face1-gas", "li", 10, "calibration", site.now)
    site.set("face1-gas", ch4=2.0)
    site.run(300)
    site.engine.end_maintenance("face1-gas", "li", "done", site.now)
    site.set("face1-gas", ch4=0.3)
    site.run(60)
    directory = report_directory(load_site(site_file(tmp_path)))
    assert directory is not None
    DailyStore(directory).save_day(daily.snapshot(complete=True))
    return dt.date(2026, 11, 30)


def test_report_daily_writes_csv_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = keep_a_day(tmp_path)
    out = tmp_path / "out"
    code = main(
        [
            "report",
            "daily",
            "-c",
            str(site_file(tmp_path)),
            "--date",
            "2026-11-30",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = [r.split(",") for r in (out / f"{day}.csv").read_text().splitlines()]
    header, body = rows[0], {(r[1], r[2]): r for r in rows[1:]}
    ch4 = dict(zip(header, body["face1-gas", "ch4"], strict=True))
    assert ch4["over_count"] == "1" and float(ch4["over_s"]) > 59
    assert float(ch4["maintenance_s"]) == pytest.approx(300, abs=1)
    assert float(ch4["max"]) == 1.2  # calibration gas is not in the statistics
    page = (out / f"{day}.html").read_text()
    assert page.count("<svg") == len(body)
    assert 'class="maint"' in page  # the calibration shows on the chart


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--date", "30.11.2026"], 2, "expected YYYY-MM-DD"),
        (["--date", "2026-11-29"], 1, "no daily report data for 2026-11-29"),
    ],
)
def test_report_daily_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    keep_a_day(tmp_path)
    argv = ["report", "daily", "-c", str(site_file(tmp_path)), "--out", str(tmp_path / "o")]
    assert main(argv + args) == code
    err = capsys.readouterr().err
    assert message in err
    if code == 1:
        assert "2026-11-30" in err  # the days that are kept


def test_report_daily_with_the_outbox_off_reads_the_state_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outbox off: the data lives in the gateway's state directory ($STATE_DIRECTORY here)."""
    path = site_file(tmp_path, outbox=False)
    doc = yaml.safe_load(path.read_text())
    doc["outbox"] = {"enabled": False}
    path.write_text(yaml.safe_dump(doc))
    directory = report_directory(load_site(path))
    assert directory == (Path(os.environ["STATE_DIRECTORY"]) / "daily-mine-1").resolve()
    argv = ["report", "daily", "-c", str(path), "--date", "2026-11-30", "--out", "x"]
    assert main(argv) == 1
    assert str(directory) in capsys.readouterr().err


def test_daily_lines_are_never_dropped_by_the_outbox_bound() -> None:
    assert line_kind("daily") == "status"


def test_an_unreadable_saved_day_is_moved_aside_and_the_day_starts_afresh(tmp_path: Path) -> None:
    directory = report_directory(load_site(site_file(tmp_path)))
    directory.mkdir(parents=True)
    (directory / "today.npz").write_bytes(b"not an npz file")
    assert DailyStore(directory).load_today() is None
    assert (directory / "today.npz.bad").read_bytes() == b"not an npz file"
    assert not (directory / "today.npz").exists()
