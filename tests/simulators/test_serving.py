"""A real pymodbus client over a real socket reads registers that decode to the model values."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pymodbus.client import AsyncModbusTcpClient, ModbusBaseClient

from fieldmodel.codec import decode_words
from fieldmodel.model import Device
from gateway.config import SiteConfig
from gateway.drivers.modbus.planner import plan_reads
from simulators import SiteSimulator
from tests.harness.simulators import FakeClock


async def read_device(client: ModbusBaseClient, device: Device) -> dict[str, float]:
    """Read a device the way the gateway plans it and decode every point with the codec."""
    raw: dict[str, dict[int, int | bool]] = {}
    for req in plan_reads(device.points).requests:
        if req.kind == "holding":
            rr = await client.read_holding_registers(
                req.address, count=req.count, device_id=device.unit
            )
            got: list[int] | list[bool] = rr.registers
        elif req.kind == "input":
            rr = await client.read_input_registers(
                req.address, count=req.count, device_id=device.unit
            )
            got = rr.registers
        elif req.kind == "coil":
            rr = await client.read_coils(req.address, count=req.count, device_id=device.unit)
            got = rr.bits[: req.count]
        else:
            rr = await client.read_discrete_inputs(
                req.address, count=req.count, device_id=device.unit
            )
            got = rr.bits[: req.count]
        assert not rr.isError(), (device.id, str(req), rr)
        raw.setdefault(req.kind, {}).update({req.address + i: v for i, v in enumerate(got)})
    values: dict[str, float] = {}
    for p in device.points:
        regs = raw[p.register]
        if p.register in ("coil", "discrete"):
            values[p.name] = float(bool(regs[p.address]))
        elif p.type == "bool":
            values[p.name] = float((int(regs[p.address]) >> (p.bit or 0)) & 1)
        else:
            words = np.array([regs[p.address + i] for i in range(p.width)], dtype=np.uint16)
            values[p.name] = (
                float(decode_words(words.reshape(1, -1), p.type, p.order)[0]) * p.scale + p.offset
            )
    return values


async def test_every_profile_reads_back_its_model_values(
    four_kinds_site: Callable[[], SiteConfig], clock: FakeClock
) -> None:
    site = four_kinds_site()
    async with SiteSimulator(site, "gas-leak", seed=5, clock=clock) as sim:
        clock.now = 130.0  # leak well under way
        for device in site.devices:
            conn = device.connection
            client = AsyncModbusTcpClient(conn.host, port=conn.port)  # type: ignore[union-attr]
            await client.connect()
            try:
                got = await read_device(client, device)
            finally:
                client.close()
            assert got == sim.values(device.id)
        gas = sim.values("face1-gas")
        assert gas["ch4"] >= 1.5 and gas["status"] == 6.0


async def test_static_registers_equal_what_a_client_reads(
    four_kinds_site: Callable[[], SiteConfig],
) -> None:
    site = four_kinds_site()
    async with SiteSimulator(site, "static", seed=1) as sim:
        device = site.device("tank-1")
        client = AsyncModbusTcpClient("127.0.0.1", port=device.connection.port)  # type: ignore[union-attr]
        await client.connect()
        try:
            first = await read_device(client, device)
            again = await read_device(client, device)
        finally:
            client.close()
        assert first == again == sim.values("tank-1")
        regs = sim.registers("tank-1")
        level = decode_words(np.array([regs["holding"][0:2]], dtype=np.uint16), "float32", "ABCD")[
            0
        ]
        assert float(level) == first["level"]


async def test_reads_refresh_lazily_from_the_clock(
    four_kinds_site: Callable[[], SiteConfig], clock: FakeClock
) -> None:
    site = four_kinds_site()
    device = site.device("crane-1")
    async with SiteSimulator(site, "normal", seed=2, clock=clock) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=device.connection.port)  # type: ignore[union-attr]
        await client.connect()
        try:
            at_start = await read_device(client, device)
            clock.now = 40.0
            later = await read_device(client, device)
        finally:
            client.close()
        assert sim.time == 40.0
        assert later != at_start
        assert later == sim.values("crane-1")


async def test_written_values_hold_until_released(
    four_kinds_site: Callable[[], SiteConfig],
) -> None:
    site = four_kinds_site()
    device = site.device("face1-gas")
    async with SiteSimulator(site, "normal", seed=2) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=device.connection.port)  # type: ignore[union-attr]
        await client.connect()
        try:
            assert not (await client.write_coil(0, True, device_id=1)).isError()
            assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is True
            assert sim.values("face1-gas")["relay_cut"] == 1.0
            assert not (await client.write_register(8, 10000, device_id=1)).isError()
            rr = await client.read_holding_registers(8, count=1, device_id=1)
            assert rr.registers == [10000]
            sim.clear_faults("face1-gas")
            assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is False
            rr = await client.read_holding_registers(8, count=1, device_id=1)
            assert rr.registers == [400]  # ch4_range 4.00 again
        finally:
            client.close()


async def test_addresses_outside_the_profile_are_refused(
    four_kinds_site: Callable[[], SiteConfig],
) -> None:
    site = four_kinds_site()
    device = site.device("lift-1")  # no coils, no discrete inputs, holding 0..7, input 0..1
    async with SiteSimulator(site, "static"):
        client = AsyncModbusTcpClient("127.0.0.1", port=device.connection.port)  # type: ignore[union-attr]
        await client.connect()
        try:
            assert (await client.read_holding_registers(0, count=9, device_id=1)).isError()
            assert (await client.read_coils(0, count=1, device_id=1)).isError()
            assert (await client.read_discrete_inputs(0, count=1, device_id=1)).isError()
            assert not (await client.read_input_registers(0, count=2, device_id=1)).isError()
        finally:
            client.close()
