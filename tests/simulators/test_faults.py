"""Fault injection seen by a real pymodbus client over a real socket."""

from __future__ import annotations

import asyncio
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from gateway.config import SiteConfig
from simulators import (
    Delay,
    Drop,
    ExceptionReply,
    Freeze,
    Garbage,
    ScenarioError,
    Silence,
    SiteSimulator,
    Spikes,
    parse_fault,
)
from tests.harness.ports import free_port
from tests.harness.simulators import FakeClock
from tests.simulators.conftest import make_site, tcp_device


def gas_site() -> SiteConfig:
    return make_site(
        [
            tcp_device("face1-gas", "gas_detector", free_port()),
            tcp_device("face2-gas", "gas_detector", free_port()),
        ]
    )


def port_of(site: SiteConfig, device_id: str) -> int:
    return int(site.device(device_id).connection.port)  # type: ignore[union-attr]


async def client_for(
    site: SiteConfig, device_id: str, timeout: float = 1.0
) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient(
        "127.0.0.1", port=port_of(site, device_id), timeout=timeout, retries=0
    )
    assert await client.connect()
    return client


async def read_fails(client: AsyncModbusTcpClient) -> bool:
    """Whether a read raises (timeout, broken frame) or returns an error response."""
    try:
        rr = await client.read_holding_registers(0, count=14, device_id=1)
    except (ModbusIOException, ConnectionException):
        return True
    return bool(rr.isError())


async def test_exception_code_reply() -> None:
    site = gas_site()
    async with SiteSimulator(site, "static") as sim:
        client = await client_for(site, "face1-gas")
        try:
            sim.inject("face1-gas", ExceptionReply(2))
            rr = await client.read_holding_registers(0, count=14, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            other = await client_for(site, "face2-gas")
            assert not (await other.read_holding_registers(0, count=14, device_id=1)).isError()
            other.close()
            sim.clear_faults("face1-gas")
            rr = await client.read_holding_registers(0, count=14, device_id=1)
            assert not rr.isError()
        finally:
            client.close()


async def test_delayed_replies_arrive_late_and_intact() -> None:
    site = gas_site()
    async with SiteSimulator(site, "static") as sim:
        client = await client_for(site, "face1-gas", timeout=2.0)
        try:
            expected = sim.registers("face1-gas")["holding"][:14]
            sim.inject("face1-gas", Delay(300))
            started = time.perf_counter()
            rr = await client.read_holding_registers(0, count=14, device_id=1)
            took = time.perf_counter() - started
            assert rr.registers == expected
            assert 0.28 <= took < 1.5
        finally:
            client.close()
        short = await client_for(site, "face1-gas", timeout=0.1)
        try:
            with pytest.raises(ModbusIOException):
                await short.read_holding_registers(0, count=14, device_id=1)
        finally:
            short.close()


async def test_drop_refuses_and_closes_until_cleared() -> None:
    site = gas_site()
    async with SiteSimulator(site, "static") as sim:
        client = await client_for(site, "face1-gas")
        sim.inject("face1-gas", Drop())
        await asyncio.sleep(0.05)
        assert not client.connected  # the open connection was closed
        client.close()
        refused = AsyncModbusTcpClient("127.0.0.1", port=port_of(site, "face1-gas"), retries=0)
        assert not await refused.connect()
        refused.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port_of(site, "face1-gas"))
        sim.clear_faults("face1-gas")
        for _ in range(50):  # re-listening is asynchronous
            await asyncio.sleep(0.02)
            again = AsyncModbusTcpClient("127.0.0.1", port=port_of(site, "face1-gas"), retries=0)
            if await again.connect():
                break
            again.close()
        rr = await again.read_holding_registers(0, count=14, device_id=1)
        assert not rr.isError()
        again.close()


@pytest.mark.parametrize("fault", [Garbage(), Silence()], ids=["garbage", "silence"])
async def test_garbage_and_silence_fail_the_read(fault: Garbage | Silence) -> None:
    site = gas_site()
    async with SiteSimulator(site, "static") as sim:
        client = await client_for(site, "face1-gas", timeout=0.3)
        try:
            sim.inject("face1-gas", fault)
            assert await read_fails(client)
        finally:
            client.close()
        sim.clear_faults("face1-gas")
        client = await client_for(site, "face1-gas")
        try:
            assert not (await client.read_holding_registers(0, count=14, device_id=1)).isError()
        finally:
            client.close()


async def test_garbage_bytes_reach_the_socket() -> None:
    site = gas_site()
    async with SiteSimulator(site, "static") as sim:
        sim.inject("face1-gas", Garbage())
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(site, "face1-gas"))
        request = bytes.fromhex("0001 0000 0006 01 03 0000 000e".replace(" ", ""))
        writer.write(request)
        reply = await asyncio.wait_for(reader.read(256), 2.0)
        writer.close()
        assert len(reply) == 9 + 28  # same length as a real reply: MBAP + FC + count + 14 words
        assert reply[:2] != b"\x00\x01" or reply[7] != 3


def test_freeze_holds_a_point_while_others_move(clock: FakeClock) -> None:
    sim = SiteSimulator(gas_site(), "gas-leak", clock=clock)
    sim.step(30.0)
    frozen = sim.values("face1-gas")["ch4"]
    sim.inject("face1-gas", Freeze("ch4"))
    sim.step(150.0)
    after = sim.values("face1-gas")
    assert after["ch4"] == frozen
    assert after["ch4_precise"] > 1.5  # the rest of the device still sees the leak
    sim.clear_faults("face1-gas")
    assert sim.values("face1-gas")["ch4"] > 1.5


def test_freeze_everything(clock: FakeClock) -> None:
    sim = SiteSimulator(gas_site(), "gas-leak", clock=clock)
    sim.step(10.0)
    before = sim.registers("face1-gas")
    sim.inject("face1-gas", Freeze())
    sim.step(200.0)
    assert sim.registers("face1-gas") == before
    assert sim.registers("face2-gas") != before


def test_spikes_jump_by_the_magnitude(clock: FakeClock) -> None:
    sim = SiteSimulator(gas_site(), "normal", clock=clock, seed=4)
    sim.inject("face1-gas", Spikes("co", 50.0, probability=0.3))
    co = []
    for t in range(1, 121):
        sim.step(float(t))
        co.append(sim.values("face1-gas")["co"])
    spikes = [v for v in co if v > 40]
    assert 10 <= len(spikes) <= 80
    assert max(co) < 70


def test_fault_texts_and_bad_points() -> None:
    assert parse_fault("delay:250") == Delay(250.0)
    assert parse_fault("exception:2") == ExceptionReply(2)
    assert parse_fault("freeze:ch4") == Freeze("ch4")
    assert parse_fault("spikes:ch4:2.5:0.5") == Spikes("ch4", 2.5, 0.5)
    assert parse_fault("drop") == Drop()
    with pytest.raises(ValueError, match="expected drop"):
        parse_fault("explode")
    with pytest.raises(ValueError, match="exception code 99"):
        parse_fault("exception:99")
    sim = SiteSimulator(gas_site(), "static")
    with pytest.raises(ScenarioError, match="no point 'nope'"):
        sim.inject("face1-gas", Freeze("nope"))
