"""RTU lines: a serial port (over a socat pty pair) and RTU-over-TCP, several units per line."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType

from simulators import Delay, SiteSimulator
from tests.harness.ports import free_port
from tests.simulators.conftest import make_site
from tests.simulators.test_serving import read_device

pytestmark = pytest.mark.integration


@pytest.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Two linked pseudo-terminals: the simulator takes one end, the client the other."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    a, b = tmp_path / "a", tmp_path / "b"
    proc = await asyncio.create_subprocess_exec(
        "socat",
        "-d",
        "-d",
        f"pty,raw,echo=0,link={a}",
        f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if a.exists() and b.exists():
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("socat did not create the pty pair")
        yield str(a), str(b)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)


def rtu_devices(connection: dict[str, object]) -> list[dict[str, object]]:
    return [
        {"id": "lift-1", "profile": "elevator", "connection": connection, "unit": 1},
        {"id": "lift-2", "profile": "elevator", "connection": connection, "unit": 2},
        {"id": "gas-9", "profile": "gas_detector", "connection": connection, "unit": 9},
    ]


async def test_rtu_serial_line_with_three_units(pty_pair: tuple[str, str]) -> None:
    server_end, client_end = pty_pair
    site = make_site(rtu_devices({"transport": "rtu", "port": server_end, "baudrate": 19200}))
    async with SiteSimulator(site, "normal", seed=2) as sim:
        assert [str(e) for e in sim.endpoints] == [f"rtu {server_end} 19200 8N1"]
        client = AsyncModbusSerialClient(
            client_end, framer=FramerType.RTU, baudrate=19200, timeout=0.5, retries=0
        )
        assert await client.connect()
        try:
            for device in site.devices:
                assert await read_device(client, device) == sim.values(device.id)
            # a unit nobody answers for stays silent, as on a real bus
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=2, device_id=7)
        finally:
            client.close()


async def test_rtu_over_tcp_two_units_on_one_line() -> None:
    port = free_port()
    connection = {"transport": "rtu-over-tcp", "host": "127.0.0.1", "port": port}
    site = make_site(rtu_devices(connection)[:2])
    async with SiteSimulator(site, "normal", seed=3) as sim:
        assert len(sim.lines) == 1
        assert sorted(sim.lines[0].units) == [1, 2]
        client = AsyncModbusTcpClient("127.0.0.1", port=port, framer=FramerType.RTU, timeout=1.0)
        assert await client.connect()
        try:
            first = await read_device(client, site.device("lift-1"))
            second = await read_device(client, site.device("lift-2"))
            assert first == sim.values("lift-1")
            assert second == sim.values("lift-2")
            assert (
                first["rated_speed"] != second["rated_speed"] or first["trips"] != second["trips"]
            )
            # a wire fault on one unit leaves the other unit on the line alone
            sim.inject("lift-2", Delay(200))
            assert await read_device(client, site.device("lift-1")) == sim.values("lift-1")
        finally:
            client.close()
