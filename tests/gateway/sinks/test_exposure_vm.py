"""Per-shift exposure rows from the rules engine, through the sink, read back from a real
server speaking the InfluxDB v2 write API (VictoriaMetrics)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.alarm_service import build_engine
from gateway.exposure import ExposureKeeper
from gateway.points import PointTable
from tests.gateway.sinks.test_influx_vm import sink_for
from tests.gateway.test_exposure import drive, site
from tests.harness.victoria_metrics import VictoriaMetrics

pytestmark = pytest.mark.integration


async def test_shift_rows_reach_the_database(vm: VictoriaMetrics, tmp_path: Path) -> None:
    cfg = site(tmp_path)  # shifts 00:00 and 12:00 UTC
    table = PointTable(cfg.devices)
    engine = build_engine(cfg, table)
    shift_start = (time.time() // 43200 - 1) * 43200  # the last whole shift: within retention
    async with sink_for(vm) as sink:
        keeper = ExposureKeeper(engine, cfg.exposure, cfg.site.id, sink.add_lines)
        now = drive(engine, table, shift_start, 2 * 3600, nh3=20.0, h2o2=4.0)
        drive(engine, table, now, 10 * 3600, nh3=1.0, h2o2=0.0)
        [shift] = keeper.drain()
        assert await sink.flush(10)
    assert shift.start == shift_start
    vm.wait_for_samples('{__name__=~"exposure_.*"}', 8)
    ts = round(shift_start * 1000)
    labels = {"device": "tox-1", "point": "nh3", "rule": "nh3_exposure", "substance": "NH3"}
    # (20 ppm × 7190 s + 1 ppm × 36000 s) / 28800 s: the first tick starts the clock
    twa = (20.0 * 7190 + 1.0 * 36000) / 28800
    [(t, got)] = vm.samples("exposure_twa", **labels)
    assert t == ts and got == pytest.approx(twa)
    assert vm.samples("exposure_peak", **labels) == [(ts, 20.0)]
    assert vm.samples("exposure_pc_twa", **labels) == [
        (ts, 28.2)
    ]  # 28.23 ppm onto the 0.1 ppm reading
    h2o2 = {"device": "tox-1", "point": "h2o2", "rule": "h2o2_exposure"}
    # 4 ppm is above 3 × PC-TWA (3 × 1.06 ppm): one excursion in the shift
    assert vm.samples("exposure_excursions", **h2o2) == [(ts, 1)]
    [series] = vm.export('{__name__="exposure_twa",point="nh3"}')
    assert series.labels == {"site": "chem-01", **labels}
