"""Occupational exposure in the gateway: shift rows as line protocol, the state file, config."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.alarm_service import build_engine
from gateway.config import SiteConfig, parse_site
from gateway.errors import ConfigError
from gateway.exposure import ExposureKeeper
from gateway.points import PointTable
from gateway.sinks.influx import line_kind
from gateway.sinks.lineprotocol import EXPOSURE_FIELDS, exposure_lines
from rules import RuleEngine
from tests.harness.paths import PACKS

PACK = PACKS / "occupational_exposure.yaml"
#: 2023-11-14 00:00 UTC: a shift start with the shifts below.
START = 1_699_920_000.0


def site(tmp_path: Path, **exposure: Any) -> SiteConfig:
    return parse_site(
        {
            "site": {"id": "chem-01", "timezone": "UTC"},
            "rules": [str(PACK)],
            "exposure": {"shifts": ["00:00", "12:00"], "state_file": str(tmp_path / "exp.npz")}
            | exposure,
            "devices": [
                {
                    "id": "tox-1",
                    "profile": "toxic_gas_detector",
                    "connection": {"transport": "tcp", "port": 5020},
                },
                {
                    "id": "face-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "port": 5021},
                },
            ],
        }
    )


def drive(
    engine: RuleEngine, table: PointTable, start: float, seconds: float, **ppm: float
) -> float:
    """Tick every 10 s from ``start`` with the toxic detector reading ``ppm`` (others 0)."""
    dev = table.devices[0]
    names = [p.name for p in dev.device.points]
    values = np.array([ppm.get(n, 0.0) for n in names])
    now = start
    for _ in range(round(seconds / 10)):
        now += 10.0
        table.update(dev.index, values, np.ones(len(names), dtype=np.bool_), now)
        table.device_online[:] = True
        engine.tick(now, table.values, table.quality, table.sample_ts, table.device_online)
    return now


def test_shift_rows_as_line_protocol(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    table = PointTable(cfg.devices)
    engine = build_engine(cfg, table)
    assert engine.shifts.starts == ("00:00", "12:00") and engine.shifts.timezone == "UTC"
    written: list[list[str]] = []
    keeper = ExposureKeeper(engine, cfg.exposure, cfg.site.id, written.append)
    now = drive(engine, table, START, 3600, nh3=30.0, cl2=0.1)
    drive(engine, table, now, 12 * 3600 - 3600, nh3=0.0)
    keeper.drain()
    [lines] = written
    by_point = {line.split(",point=")[1].split(",")[0]: line for line in lines}
    # rows only for points with readings in the shift: the toxic detector's gases; the gas
    # detector was never read
    assert set(by_point) == {
        "nh3",
        "so2",
        "no2",
        "cl2",
        "hcn",
        "benzene",
        "methanol",
        "h2o2",
    }
    nh3 = by_point["nh3"]
    assert nh3.startswith(
        "exposure,device=tox-1,point=nh3,rule=nh3_exposure,site=chem-01,substance=NH3 "
    )
    assert nh3.endswith(f" {round(START * 1000)}")
    fields = dict(f.split("=") for f in nh3.split(" ")[1].split(","))
    assert set(fields) <= set(EXPOSURE_FIELDS)
    # 30 ppm for one hour in a 12-h shift: dose / 8 h (GBZ 2.1: a long shift's TWA is over 8 h);
    # the engine's first tick has no interval before it, so the hour counts 3590 s
    assert float(fields["twa"]) == pytest.approx(30.0 * 3590 / 28800)
    # PC-TWA 20 mg/m³ = 28.23 ppm, rounded down onto the profile's 0.1 ppm NH3 reading: 28.2
    assert float(fields["twa_pct"]) == pytest.approx(100 * 30.0 * 3590 / 28800 / 28.2)
    assert float(fields["peak"]) == 30.0 and fields["excursions"] == "0i"
    assert float(fields["measured_s"]) == 12 * 3600 - 10 and float(fields["shift_s"]) == 12 * 3600
    assert float(fields["pc_twa"]) == 28.2 and float(fields["pc_stel"]) == 42.3
    cl2 = dict(f.split("=") for f in by_point["cl2"].split(" ")[1].split(","))
    assert "pc_twa" not in cl2 and "twa_pct" not in cl2 and float(cl2["mac"]) == 0.33
    assert line_kind("exposure") == "status"  # kept by the outbox like status, never dropped


def test_state_is_saved_and_restored_by_the_keeper(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    table = PointTable(cfg.devices)
    engine = build_engine(cfg, table)
    keeper = ExposureKeeper(engine, cfg.exposure, "chem-01", None)
    assert keeper.restore() == 0  # no file yet
    now = drive(engine, table, START, 1800, nh3=50.0)
    keeper.save()
    assert Path(cfg.exposure.state_file).is_file()

    table2 = PointTable(cfg.devices)
    engine2 = build_engine(cfg, table2)
    keeper2 = ExposureKeeper(engine2, cfg.exposure, "chem-01", None)
    assert keeper2.restore() == engine2.exposure_points == 10
    drive(engine2, table2, now, 10, nh3=50.0)
    state = engine2.state("tox-1/nh3/nh3_exposure_stel")  # 50 ppm for 30 min: above 42.3
    assert state.value == pytest.approx(50.0)


def test_a_bad_state_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = site(tmp_path)
    path = Path(cfg.exposure.state_file)
    path.write_bytes(b"not a state file")
    engine = build_engine(cfg, PointTable(cfg.devices))
    keeper = ExposureKeeper(engine, cfg.exposure, "chem-01", None)
    assert keeper.restore() == 0
    assert not path.exists() and path.with_name("exp.npz.bad").read_bytes() == b"not a state file"
    assert "unusable" in caplog.text


async def test_the_keeper_saves_when_stopped(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    table = PointTable(cfg.devices)
    engine = build_engine(cfg, table)
    drive(engine, table, START, 60, nh3=10.0)
    keeper = ExposureKeeper(engine, cfg.exposure, "chem-01", None)
    task = asyncio.create_task(keeper.run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert Path(cfg.exposure.state_file).is_file()  # noqa: ASYNC240 (a test's check)


@pytest.mark.parametrize(
    ("exposure", "where"),
    [
        ({"shifts": ["8:00"]}, "exposure.shifts"),
        ({"shifts": []}, "exposure.shifts"),
        ({"save_interval": 0}, "exposure.save_interval"),
        ({"state": "x"}, "exposure.state"),
    ],
)
def test_bad_exposure_config(tmp_path: Path, exposure: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        site(tmp_path, **exposure)
    assert where in str(info.value)


def test_lines_leave_out_what_has_no_value() -> None:
    from rules import ShiftExposure

    shift = ShiftExposure(
        start=START,
        end=START + 8 * 3600,
        devices=("d", "d"),
        points=("a", "b"),
        rules=("r", "r"),
        substances=("X", "X"),
        pc_twa=np.array([1.0, math.nan]),
        pc_stel=np.array([math.nan, math.nan]),
        mac=np.array([math.nan, 2.0]),
        twa=np.array([0.5, 0.0]),
        stel_max=np.array([0.75, math.nan]),
        peak=np.array([2.0, math.nan]),
        excursions=np.array([1, 0]),
        measured_s=np.array([100.0, 0.0]),
    )
    [line] = exposure_lines("s", shift)  # point b had no reading: no row
    assert line == (
        "exposure,device=d,point=a,rule=r,site=s,substance=X "
        "twa=0.5,twa_pct=50.0,stel_max=0.75,peak=2.0,measured_s=100.0,shift_s=28800.0,"
        f"pc_twa=1.0,excursions=1i {round(START * 1000)}"
    )


async def test_periodic_saves_write_in_a_thread(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    table = PointTable(cfg.devices)
    engine = build_engine(cfg, table)
    now = drive(engine, table, START, 600, nh3=12.0)
    keeper = ExposureKeeper(engine, cfg.exposure, "chem-01", None)
    await keeper.save_in_thread()
    drive(engine, table, now, 600, nh3=12.0)  # the engine ticks on; the file keeps the copy
    restored = build_engine(cfg, PointTable(cfg.devices))
    assert restored.load_exposure(cfg.exposure.state_file) == 10
    saved = restored.exposure_snapshot()
    nh3 = saved["keys"].tolist().index("tox-1/nh3/nh3_exposure")
    assert saved["shift_dose"][nh3] == pytest.approx(12.0 * 590)
