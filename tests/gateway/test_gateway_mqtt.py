"""End to end over real sockets: pymodbus servers -> gateway -> real Mosquitto -> subscriber."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.app import Gateway
from gateway.config import SiteConfig, parse_site
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Listener, listening
from tests.harness.ports import free_port
from tests.harness.simulators import serve_tcp

pytestmark = pytest.mark.integration

# holding registers of a gas detector, encoded by hand (independent of the gateway's codec)
GAS_HOLDING = [1, 42, 5, 209, 12, 30, 700, 0b101, 400, 0, 0, 0, 0, 12]


def gas_device(unit: int = 1) -> SimDevice:
    ch4 = struct.unpack(">HH", struct.pack(">f", 0.42))
    holding = list(GAS_HOLDING)
    holding[10], holding[11] = ch4[1], ch4[0]  # float32 CDAB
    supply = struct.unpack(">HH", struct.pack(">f", 24.5))
    swap = [((w & 0xFF) << 8) | (w >> 8) for w in supply]  # BADC
    return SimDevice(
        unit,
        simdata=(
            [SimData(0, values=[True] + [False] * 15, datatype=DataType.BITS)],
            [SimData(0, values=[True] * 16, datatype=DataType.BITS)],
            [SimData(0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=swap, datatype=DataType.REGISTERS)],
        ),
    )


async def start_server(port: int) -> ModbusTcpServer:
    return await serve_tcp(port, [gas_device()])


def site_for(broker: Mosquitto, ports: list[int], interval: float) -> SiteConfig:
    return parse_site(
        {
            "site": {"id": "t1"},
            "mqtt": {"url": broker.url, "topic_prefix": "hz"},
            "devices": [
                {
                    "id": f"gas{i}",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                    "poll_interval": interval,
                    "timeout": 0.3,
                }
                for i, port in enumerate(ports)
            ],
        }
    )


@pytest.fixture
async def recorder(mosquitto: Mosquitto) -> AsyncIterator[Listener]:
    async with listening(mosquitto.port, "hz/#") as heard:
        yield heard


async def test_values_on_mqtt_match_registers(mosquitto: Mosquitto, recorder: Listener) -> None:
    port = free_port()
    server = await start_server(port)
    gw = Gateway(site_for(mosquitto, [port], 0.2))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        doc = (await recorder.wait_for(lambda t, d: t == "hz/t1/gas0/telemetry", 10)).doc
        values, quality = doc["values"], doc["quality"]
        assert set(quality.values()) == {"good"}
        assert values["status"] == 1
        assert values["ch4"] == pytest.approx(0.42)
        assert values["co"] == 5
        assert values["o2"] == pytest.approx(20.9)
        assert values["h2s"] == pytest.approx(1.2)
        assert values["temperature"] == pytest.approx(20.0)  # (700 - 500) / 10
        assert values["fault"] == 1
        assert values["alarm_low"] == 0
        assert values["alarm_high"] == 1
        assert values["ch4_precise"] == pytest.approx(0.42, rel=1e-6)
        assert values["runtime_h"] == 12
        assert values["supply_v"] == pytest.approx(24.5)
        assert values["feed_on"] == 1
        assert values["relay_cut"] == 1
        status = (await recorder.wait_for(lambda t, d: t == "hz/t1/gas0/status", 5)).doc
        assert status["online"] is True
        gw_status = (await recorder.wait_for(lambda t, d: t == "hz/t1/gateway/status", 5)).doc
        assert gw_status["online"] is True
    finally:
        stop.set()
        await task
        await server.shutdown()


async def test_device_offline_within_two_intervals_and_back(
    mosquitto: Mosquitto, recorder: Listener
) -> None:
    interval = 0.5
    port, other_port = free_port(), free_port()
    server = await start_server(port)
    other = await start_server(other_port)
    gw = Gateway(site_for(mosquitto, [port, other_port], interval), backoff_max=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))

    def status(online: bool) -> Any:
        return lambda t, d: t == "hz/t1/gas0/status" and d["online"] is online

    try:
        await recorder.wait_for(status(True), 10)
        await server.shutdown()
        gone = time.monotonic()
        offline = await recorder.wait_for(status(False), 10)
        assert offline.at - gone <= 2 * interval + 0.3  # timeout is 0.3 s
        assert offline.doc["error"]
        # the healthy device kept publishing while the other was down
        n_before = len(recorder.on("hz/t1/gas1/telemetry"))
        await asyncio.sleep(3 * interval)
        n_after = len(recorder.on("hz/t1/gas1/telemetry"))
        assert n_after - n_before >= 2
        recorder.messages.clear()
        server = await start_server(port)
        await recorder.wait_for(status(True), 10)
        doc = (await recorder.wait_for(lambda t, d: t == "hz/t1/gas0/telemetry", 5)).doc
        assert doc["quality"]["ch4"] == "good"
    finally:
        stop.set()
        await task
        await server.shutdown()
        await other.shutdown()


async def test_gateway_survives_broker_restart(mosquitto: Mosquitto, tmp_path: Any) -> None:
    port = free_port()
    server = await start_server(port)
    gw = Gateway(site_for(mosquitto, [port], 0.2), backoff_max=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await gw.publisher.wait_connected(10)
        mosquitto.kill()
        await asyncio.sleep(1.0)
        assert not task.done()
        mosquitto.start()
        await gw.publisher.wait_connected(10)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe("hz/t1/#", qos=1)
            got: set[str] = set()
            async with asyncio.timeout(10):
                async for msg in client.messages:
                    got.add(str(msg.topic))
                    if {"hz/t1/gas0/telemetry", "hz/t1/gas0/status"} <= got:
                        break
        # retained device status was re-published after the broker lost its state
        assert "hz/t1/gas0/status" in got
    finally:
        stop.set()
        await task
        await server.shutdown()
