"""The wiring tools of gateway/drivers/modbus/probe.py: the pure parts directly, the read path
(probe, scan, discover_site) through ModbusLink against a real pymodbus server on a real socket.
The command line around them runs on a serial line and a serial server in test_rtu.py."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from fieldmodel.model import RtuConnection, RtuOverTcpConnection, TcpConnection
from gateway.config import parse_site
from gateway.drivers.modbus.link import ModbusLink
from gateway.drivers.modbus.planner import MAX_BITS, MAX_REGISTERS, ReadRequest
from gateway.drivers.modbus.probe import (
    ProbeResult,
    ScanHit,
    build_connection,
    describe_connection,
    discover_site,
    format_probe,
    parse_units,
    probe,
    scan,
)
from gateway.errors import DeviceException, DeviceOffline
from tests.harness.ports import free_port

# ---------------------------------------------------------------------------- pure parts


def test_build_connection_for_each_kind_of_line() -> None:
    rtu = build_connection(serial="/dev/ttyUSB0", baudrate=19200, parity="E", stopbits=1)
    assert isinstance(rtu, RtuConnection)
    assert (rtu.port, rtu.baudrate, rtu.parity, rtu.stopbits) == ("/dev/ttyUSB0", 19200, "E", 1)
    tcp = build_connection(host="10.0.0.7")
    assert isinstance(tcp, TcpConnection) and (tcp.host, tcp.port) == ("10.0.0.7", 502)
    server = build_connection(host="10.0.0.8", port=4001, rtu_over_tcp=True, frame_gap=0.01)
    assert isinstance(server, RtuOverTcpConnection)
    assert (server.host, server.port, server.frame_gap) == ("10.0.0.8", 4001, 0.01)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"serial": "/dev/ttyS0", "host": "h"},
            "give either --serial PORT or --host HOST, not both",
        ),
        ({}, "give --serial PORT (RTU line) or --host HOST"),
        ({"serial": "/dev/ttyS0", "rtu_over_tcp": True}, "--rtu-over-tcp goes with --host"),
        ({"serial": "/dev/ttyS0", "baudrate": 12345}, "--baudrate: "),
        ({"serial": "/dev/ttyS0", "parity": "X"}, "--parity: "),
        ({"host": "h", "port": 70000}, "--port: "),
    ],
)
def test_build_connection_names_the_bad_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        build_connection(**options)


def test_build_connection_quotes_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"\(got 12345\)"):
        build_connection(serial="/dev/ttyS0", baudrate=12345)


def test_describe_connection() -> None:
    assert (
        describe_connection(build_connection(serial="/dev/ttyUSB0")) == "rtu /dev/ttyUSB0 9600 8N1"
    )
    assert describe_connection(build_connection(host="h", port=4001, rtu_over_tcp=True)) == (
        "rtu-over-tcp h:4001"
    )
    assert describe_connection(build_connection(host="127.0.0.1")) == "tcp 127.0.0.1:502"


def test_parse_units_takes_ranges_and_lists() -> None:
    assert parse_units("1-3") == [1, 2, 3]
    assert parse_units("5, 1,2-3,2") == [1, 2, 3, 5]  # sorted, each once
    assert parse_units("0-255") == list(range(256))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x-2", "expected ranges like 1-247"),
        ("1,,2", "expected ranges like 1-247"),
        ("", "expected ranges like 1-247"),
        ("5-1", "unit ids run 0-255"),
        ("250-256", "unit ids run 0-255"),
        ("-3", "expected ranges like 1-247"),
    ],
)
def test_parse_units_refuses_what_is_not_a_unit_range(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_units(text)
    assert str(err.value).startswith("--units: ")


def test_format_probe_lists_bits() -> None:
    lines = format_probe(ProbeResult(1, "coil", 10, (1, 0, 1)))
    assert lines == ["  address  bit", "  10       1", "  11       0", "  12       1"]


def test_format_probe_shows_words_and_every_order() -> None:
    words = struct.unpack(">HH", struct.pack(">f", 0.42))
    cdab = (words[1], words[0])  # a float32 sent low word first
    lines = format_probe(ProbeResult(2, "holding", 10, (*cdab, 0xFFFE)))
    assert lines[0] == "  address  hex     unsigned  signed"
    assert lines[3] == "  12       0xFFFE  65534     -2"
    by_order: dict[str, dict[str, str]] = {}
    current = ""
    for line in lines[4:]:
        if line.startswith("  as "):
            current = line.split()[1]
            continue
        order, *cells = line.split()
        by_order.setdefault(current, {})[order] = " ".join(cells)
    assert set(by_order) == {"int32", "uint32", "float32"}
    assert by_order["float32"]["CDAB"] == "@10=0.42"  # the sensible one
    assert by_order["float32"]["ABCD"] != "@10=0.42"
    assert set(by_order["float32"]) == {"ABCD", "CDAB", "BADC", "DCBA"}
    # two registers per value: the odd third word is not decoded
    assert all(cell.count("@") == 1 for cell in by_order["uint32"].values())


def test_format_probe_with_a_type_and_order_given() -> None:
    lines = format_probe(ProbeResult(1, "input", 0, (0xFFFF, 20)), type_name="int16", order="ABCD")
    assert lines[-2:] == ["  as int16", "    ABCD  @0=-1  @1=20"]
    # 16-bit values: word order does not apply, so every order is not repeated
    lines = format_probe(ProbeResult(1, "input", 0, (0x0102,)), type_name="uint16")
    assert [ln.split()[0] for ln in lines if ln.startswith("    ")] == ["ABCD", "BADC"]
    assert "    BADC  @0=513" in lines


def test_format_probe_says_when_there_are_too_few_registers() -> None:
    lines = format_probe(ProbeResult(1, "holding", 0, (1,)), type_name="float64")
    assert lines[-1] == "  float64: needs 4 registers, got 1"


class NeverCalled:
    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]:
        raise AssertionError(f"read sent for bad arguments: {req}")


@pytest.mark.parametrize(
    ("kind", "address", "count", "message"),
    [
        ("holding", 0, 0, f"--count: 1 to {MAX_REGISTERS} for holding, got 0"),
        ("input", 0, MAX_REGISTERS + 1, f"--count: 1 to {MAX_REGISTERS} for input"),
        ("coil", 0, MAX_BITS + 1, f"--count: 1 to {MAX_BITS} for coil"),
        ("holding", 65535, 2, "--address: 65535+2 runs past 65535"),
        ("holding", -1, 1, "--address: -1+1 runs past 65535"),
    ],
)
async def test_probe_checks_its_arguments_before_reading(
    kind: str, address: int, count: int, message: str
) -> None:
    link: Any = NeverCalled()
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        await probe(link, unit=1, kind=kind, address=address, count=count, timeout=0.1)


# ---------------------------------------------------------------------------- the read path

HOLDING_1 = [1, 2, 3, 0xFFFF]
HOLDING_4 = {0: 40, 1: 41, 5: 45}  # register 2-4 not implemented: exception 2
PRESENT = (1, 4)
BUSY = 5  # answers exception 6 (server busy): something is there


def sim_device(unit: int) -> SimDevice:
    if unit == 1:
        holding = [SimData(0, values=HOLDING_1, datatype=DataType.REGISTERS)]
    else:
        holding = [
            SimData(0, values=[HOLDING_4[0], HOLDING_4[1]], datatype=DataType.REGISTERS),
            SimData(5, values=[HOLDING_4[5]], datatype=DataType.REGISTERS),
        ]
    coils = [True, False, True] if unit == 1 else [False, False, False]
    return SimDevice(
        unit,
        simdata=(
            [SimData(0, values=coils + [False] * 13, datatype=DataType.BITS)],
            [SimData(0, values=[True] * 16, datatype=DataType.BITS)],
            holding,
            [SimData(0, values=[7, 8], datatype=DataType.REGISTERS)],
        ),
    )


def serial_server_answer(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
    """Answer as a serial server would: exception 11 (no answer from the target unit) for a
    unit that is not on its line, 6 (busy) for BUSY."""
    if not sending or pdu.dev_id in PRESENT:
        return pdu
    code = 6 if pdu.dev_id == BUSY else 11
    return ExceptionResponse(
        pdu.function_code & 0x7F, code, device_id=pdu.dev_id, transaction=pdu.transaction_id
    )


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    port = free_port()
    server = ModbusTcpServer(
        [sim_device(u) for u in PRESENT],
        address=("127.0.0.1", port),
        trace_pdu=serial_server_answer,
    )
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()


@pytest.fixture
async def link(server_port: int) -> AsyncIterator[ModbusLink]:
    conn = TcpConnection(transport="tcp", host="127.0.0.1", port=server_port)
    link = ModbusLink(conn, timeout=1.0)
    try:
        yield link
    finally:
        link.close()


async def test_probe_reads_registers_and_bits(link: ModbusLink) -> None:
    got = await probe(link, unit=1, kind="holding", address=0, count=4, timeout=1.0)
    assert got == ProbeResult(1, "holding", 0, tuple(HOLDING_1))
    got = await probe(link, unit=1, kind="input", address=1, count=1, timeout=1.0)
    assert got.values == (8,)
    got = await probe(link, unit=1, kind="coil", address=0, count=3, timeout=1.0)
    assert got.values == (1, 0, 1)  # bits as 0/1, only those asked for
    got = await probe(link, unit=4, kind="holding", address=5, count=1, timeout=1.0)
    assert got.values == (45,)


async def test_probe_raises_the_device_error(link: ModbusLink) -> None:
    with pytest.raises(DeviceException) as err:
        await probe(link, unit=4, kind="holding", address=0, count=6, timeout=1.0)
    assert err.value.code == 2 and "illegal data address" in str(err.value)
    dead = ModbusLink(TcpConnection(transport="tcp", host="127.0.0.1", port=free_port()))
    with pytest.raises(DeviceOffline):
        await probe(dead, unit=1, kind="holding", address=0, count=1, timeout=0.5)


async def test_scan_lists_the_units_that_answer(link: ModbusLink) -> None:
    hits = await scan(link, range(1, 8), timeout=0.5)
    assert hits == [
        ScanHit(1, "holding 0 = 0x0001 1"),
        ScanHit(4, "holding 0 = 0x0028 40"),
        ScanHit(5, "exception 6 (server device busy) for FC03 holding 0+1"),
    ]
    hits = await scan(link, [1, 4], kind="coil", address=2, timeout=0.5)
    assert hits == [ScanHit(1, "coil 2 = 1"), ScanHit(4, "coil 2 = 0")]


async def test_scan_of_a_dead_line_finds_nobody() -> None:
    dead = ModbusLink(TcpConnection(transport="tcp", host="127.0.0.1", port=free_port()))
    assert await scan(dead, [1, 2], timeout=0.2) == []


async def test_discover_site_learns_each_devices_plan(server_port: int) -> None:
    def device(dev_id: str, unit: int, port: int) -> dict[str, Any]:
        return {
            "id": dev_id,
            "profile": "gas_detector",
            "unit": unit,
            "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
            "timeout": 0.5,
            "points": [
                {"name": "r0", "register": "holding", "address": 0, "type": "uint16"},
                {"name": "r1", "register": "holding", "address": 1, "type": "uint16"},
                {"name": "r3", "register": "holding", "address": 3, "type": "uint16"},
            ],
        }

    # the gas_detector profile's own points stay; on these servers only these three are read
    doc = {
        "site": {"id": "probe"},
        "devices": [
            device("full", 1, server_port),
            device("holes", 4, server_port),
            device("gone", 1, free_port()),
        ],
    }
    site = parse_site(doc)
    ours = {"r0", "r1", "r3"}
    devices = tuple(
        dataclasses.replace(d, points=tuple(p for p in d.points if p.name in ours))
        for d in site.devices
    )
    site = dataclasses.replace(site, devices=devices)
    found = await discover_site(site)
    assert [d.device.id for d in found] == ["full", "holes", "gone"]
    full, holes, gone = found
    assert full.error is None and full.reader.describe_refused() == "nothing"
    assert [str(r) for r in full.reader.plan.requests] == ["FC03 holding 0+4"]
    assert holes.error is None and holes.reader.describe_refused() == "holding 3"
    assert [holes.device.points[i].name for i in holes.reader.plan.unread] == ["r3"]
    assert isinstance(gone.error, DeviceOffline)
