"""A Modbus TCP server that answers with broken frames: an MBAP length of 2, a byte count that
claims 250 bytes, a protocol id that is not Modbus. The gateway names the framing error — in
the read's error, once in the log per state change, and in the device status — and never logs a
library traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from fieldmodel.model import TcpConnection
from gateway.app import Gateway
from gateway.config import parse_site
from gateway.drivers.modbus.link import ModbusLink, tcp_frame_problem
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceOffline
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import listening

Answer = Callable[[int, int, bytes], bytes]


def mbap_length_2(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, 2, unit) + pdu[:1]


def byte_count_250(tid: int, unit: int, pdu: bytes) -> bytes:
    body = bytes([pdu[0], 250]) + b"\x00\x01\x00\x02"
    return struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body


def not_modbus(tid: int, unit: int, pdu: bytes) -> bytes:
    body = bytes([pdu[0], 4]) + b"\x00\x01\x00\x02"
    return struct.pack(">HHHB", tid, 7, len(body) + 1, unit) + body


BAD = {
    "mbap-length-2": (mbap_length_2, "MBAP length 2"),
    "byte-count-250": (byte_count_250, "byte count 250"),
    "protocol-id-7": (not_modbus, "protocol id 7"),
}


@contextlib.asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[int]:
    """A raw asyncio TCP server: reads each MBAP request and writes ``answer``'s bytes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                tid, _pid, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(length - 1)
                writer.write(answer(tid, unit, pdu))
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def library_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.exc_info or "Fatal error" in r.getMessage() or "Traceback" in r.getMessage()
    ]


@pytest.mark.parametrize("name", sorted(BAD))
async def test_a_broken_frame_is_named_and_fails_fast(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    answer, reason = BAD[name]
    caplog.set_level(logging.DEBUG)
    async with raw_server(answer) as port:
        link = ModbusLink(TcpConnection(transport="tcp", port=port), timeout=5.0)
        try:
            for _ in range(3):
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(DeviceOffline) as info:
                    await link.read("pump-1", 1, ReadRequest("holding", 0, 2, (0,)), 5.0)
                assert reason in str(info.value) and "malformed" in str(info.value)
                assert loop.time() - started < 4.0  # refused on arrival, not at the timeout
        finally:
            link.close()
    assert library_tracebacks(caplog) == []


@pytest.mark.integration
async def test_the_device_status_names_the_framing_error_and_the_log_says_it_once(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with raw_server(byte_count_250) as port:
        site = parse_site(
            {
                "site": {"id": "frames"},
                "mqtt": {"url": mosquitto.url, "topic_prefix": "bf"},
                "devices": [
                    {
                        "id": "pump-1",
                        "profile": "tank_gauge",
                        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                        "poll_interval": 0.1,
                        "timeout": 0.5,
                    }
                ],
            }
        )
        gw = Gateway(site, backoff_max=0.2)
        stop = asyncio.Event()
        async with listening(mosquitto.port, "bf/frames/pump-1/status") as heard:
            task = asyncio.create_task(gw.run(stop))
            async with asyncio.timeout(20):
                while gw.stats.failed_polls < 8 or not heard.messages:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            stop.set()
            async with asyncio.timeout(20):
                await task
        statuses = heard.docs("bf/frames/pump-1/status")
    assert statuses[-1]["online"] is False
    assert "byte count 250" in statuses[-1]["error"], statuses[-1]
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(("gateway", "pymodbus", "asyncio"))
    ]
    framing = [m for m in errors if "byte count 250" in m]
    assert len(framing) == 1, errors  # one line for the state change, not one per retry
    assert library_tracebacks(caplog) == []


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">HHHB", 1, 0, 7, 1) + bytes([3, 4]) + b"\x00\x01\x00\x02",  # 2 registers
        struct.pack(">HHHB", 1, 0, 4, 1) + bytes([1, 1, 0b101]),  # coils
        struct.pack(">HHHB", 1, 0, 3, 1) + bytes([0x83, 2]),  # exception 2
        struct.pack(">HHHB", 1, 0, 7, 1) + bytes([3, 4]),  # still arriving
        b"\x00\x01\x00",  # a header still arriving
    ],
)
def test_good_and_incomplete_frames_are_not_refused(frame: bytes) -> None:
    assert tcp_frame_problem(frame) is None
