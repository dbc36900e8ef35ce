"""Site-level behaviour: other profile kinds, endpoints, sharding, the CLI helper."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from gateway.config import parse_site
from simulators import EndpointError, ScenarioError, SiteSimulator, run_simulator
from simulators.cli import parse_shard
from tests.harness.ports import free_port
from tests.harness.simulators import FakeClock
from tests.simulators.conftest import make_site, tcp_device

PROFILE = """\
kind: weather_mast
points:
  - {name: gust, register: holding, address: 0, type: float32, order: CDAB}
  - {name: level, register: holding, address: 2, type: int16, scale: 0.01, offset: 5}
  - {name: lamp, register: holding, address: 3, type: bool, bit: 4}
  - {name: door, register: discrete, address: 2, type: bool}
"""


def test_other_kinds_walk_within_bounds(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "mast.yaml").write_text(PROFILE, encoding="utf-8")
    site = parse_site(
        {"site": {"id": "x"}, "devices": [tcp_device("mast-1", "mast.yaml", 15999)]},
        base_dir=tmp_path,
    )
    sim = SiteSimulator(site, "normal", seed=1, clock=clock)
    samples = []
    for t in range(0, 600, 5):
        sim.step(float(t))
        samples.append(sim.values("mast-1"))
    gust = np.array([s["gust"] for s in samples])
    level = np.array([s["level"] for s in samples])
    assert np.ptp(gust) > 5 and gust.min() >= 0 and gust.max() <= 1000
    assert level.min() >= 5.0 and level.max() <= 15.0
    assert {s["lamp"] for s in samples} <= {0.0, 1.0}
    assert sim.registers("mast-1")["discrete"][:2] == [False, False]


def test_extra_points_on_a_known_kind_walk_too(clock: FakeClock) -> None:
    extra = {"name": "fan_speed", "register": "input", "address": 10, "type": "uint16"}
    site = make_site([tcp_device("face1-gas", "gas_detector", 15998, points=[extra])])
    sim = SiteSimulator(site, "normal", clock=clock)
    first = sim.values("face1-gas")["fan_speed"]
    sim.step(120.0)
    assert sim.values("face1-gas")["fan_speed"] != first


def test_endpoint_conflicts_are_refused() -> None:
    port = free_port()
    conn = {"transport": "rtu-over-tcp", "host": "127.0.0.1", "port": port}
    site = make_site(
        [
            tcp_device("a", "gas_detector", port),
            {"id": "b", "profile": "gas_detector", "connection": conn, "unit": 2},
        ]
    )
    with pytest.raises(ScenarioError, match="served as 'tcp"):
        SiteSimulator(site)


async def test_a_port_in_use_is_an_endpoint_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        site = make_site([tcp_device("a", "gas_detector", busy.getsockname()[1])])
        with pytest.raises(EndpointError, match=r"cannot serve tcp 127\.0\.0\.1"):
            async with SiteSimulator(site):
                pass


def test_shards_split_the_devices() -> None:
    site = make_site([tcp_device(f"d{i}", "tank_gauge", 16000 + i) for i in range(7)])
    shards = [SiteSimulator(site, shard=(i, 3)).devices for i in range(3)]
    assert sorted(d.id for s in shards for d in s) == sorted(d.id for d in site.devices)
    assert [d.id for d in shards[1]] == ["d1", "d4"]
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("3/3")
    with pytest.raises(ScenarioError):
        SiteSimulator(site, shard=(2, 2))


async def test_run_simulator_serves_until_stopped(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    site = make_site([tcp_device("face1-gas", "gas_detector", port)])
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="simulators")
    task = asyncio.create_task(run_simulator(site, "gas-leak", 3, stop=stop))
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    for _ in range(100):
        if await client.connect():
            break
        await asyncio.sleep(0.02)
    rr = await client.read_holding_registers(0, count=2, device_id=1)
    client.close()
    assert not rr.isError()
    stop.set()
    await asyncio.wait_for(task, 5)
    text = caplog.text
    assert f"serving tcp 127.0.0.1:{port}: unit 1: face1-gas (gas_detector)" in text
    assert "scenario gas-leak, seed 3" in text


def test_module_entry_point_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("site: {id: x}\ndevices: []\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "simulators", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "devices" in proc.stderr


def test_a_custom_scenario_sets_parameters_and_schedules_faults(clock: FakeClock) -> None:
    from simulators import SCENARIOS, Freeze, ScenarioContext, scenario

    @scenario("test-feed-stuck", "leak at the face, feed sensor stuck on, one detector fails")
    def feed_stuck(ctx: ScenarioContext) -> None:
        ctx.model("face1-gas").set(leak_start=0.0, leak_tau=30.0)
        ctx.inject("face1-gas", Freeze("feed_on"))
        ctx.inject("face2-gas", Freeze("ch4"), at=60.0, until=120.0)
        ctx.at(90.0, lambda: ctx.model("face2-gas").set(sensor_fault=1.0))

    try:
        site = make_site(
            [
                tcp_device("face1-gas", "gas_detector", 15990),
                tcp_device("face2-gas", "gas_detector", 15991),
            ]
        )
        sim = SiteSimulator(site, "test-feed-stuck", clock=clock)
        sim.step(100.0)
        face1 = sim.values("face1-gas")
        assert face1["relay_cut"] == 1.0 and face1["feed_on"] == 1.0  # power still on: alarm
        assert sim.values("face2-gas")["status"] == 3.0  # fault since t=90
        assert sim.faults("face2-gas").frozen == {"ch4"}
        sim.step(121.0)
        assert not sim.faults("face2-gas").frozen
        with pytest.raises(ScenarioError, match="no model parameter 'bogus'"):
            sim.model("face1-gas").set(bogus=1.0)
    finally:
        SCENARIOS.pop("test-feed-stuck", None)


async def test_a_missing_serial_port_is_an_endpoint_error(tmp_path: Path) -> None:
    connection = {"transport": "rtu", "port": str(tmp_path / "no-such-tty")}
    site = make_site([{"id": "g", "profile": "gas_detector", "connection": connection}])
    with pytest.raises(EndpointError, match="cannot serve rtu"):
        async with SiteSimulator(site):
            pass
