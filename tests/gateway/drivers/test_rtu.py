"""RTU end to end: a shared serial line (socat pty pair) and a serial server (RTU over TCP).

One line carries four gas detectors: units 1 and 2 healthy, unit 3 silent, unit 4 refusing part
of the coalesced holding range (register 9 is not implemented, nor is the uint32 at 12-13).
The gateway publishes to a real Mosquitto; the CLI's probe, scan and check --probe run as
subprocesses against the same line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from fieldmodel.model import RtuOverTcpConnection
from gateway.app import Gateway
from gateway.config import parse_site
from gateway.drivers.modbus.link import ModbusLink
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceOffline
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Listener, listening
from tests.harness.paths import ROOT
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

HEALTHY = (1, 2)
SILENT = 3
REFUSING = 4
FRAME_GAP = 0.01  # configured gap between frames (well above 3.5 chars at 9600, so measurable)


def holding_of(unit: int) -> list[int]:
    """The gas_detector profile's holding registers 0-13, unit-specific where it helps."""
    ch4 = struct.unpack(">HH", struct.pack(">f", 0.42))
    return [1, unit * 10, unit, 209, 12, 30, 700, 0b101, 400, 0, ch4[1], ch4[0], 0, 1234]


def sim_device(unit: int) -> SimDevice:
    holding = holding_of(unit)
    if unit == REFUSING:
        blocks = [
            SimData(0, values=holding[:9], datatype=DataType.REGISTERS),
            SimData(10, values=holding[10:12], datatype=DataType.REGISTERS),
        ]
    else:
        blocks = [SimData(0, values=holding, datatype=DataType.REGISTERS)]
    supply = struct.unpack(">HH", struct.pack(">f", 24.5))
    return SimDevice(
        unit,
        simdata=(
            [SimData(0, values=[True] + [False] * 15, datatype=DataType.BITS)],
            [SimData(0, values=[True] * 16, datatype=DataType.BITS)],
            blocks,
            [
                SimData(
                    0,
                    values=[((w & 0xFF) << 8) | (w >> 8) for w in supply],
                    datatype=DataType.REGISTERS,
                )
            ],
        ),
    )


class Line:
    """Several units on one line, served by pymodbus; records when frames cross it."""

    def __init__(self) -> None:
        self.answering = {*HEALTHY, REFUSING}
        self.devices = [sim_device(u) for u in sorted(self.answering)]
        self.events: list[tuple[float, bool]] = []
        self.server: ModbusSerialServer | ModbusTcpServer | None = None

    def trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        if not sending and pdu.dev_id not in self.answering:
            return None  # silent: no unit with this id answers on the line
        return pdu

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        self.events.append((time.monotonic(), sending))
        return data

    def min_gap(self) -> float:
        """Shortest time from the end of an answer to the next request, seen from the line."""
        gaps = [
            t - prev_t
            for (prev_t, prev_send), (t, send) in zip(self.events, self.events[1:], strict=False)
            if prev_send and not send
        ]
        return min(gaps)

    async def serve_serial(self, port: str) -> None:
        self.server = ModbusSerialServer(
            self.devices,
            port=port,
            baudrate=9600,
            trace_pdu=self.trace_pdu,  # type: ignore[arg-type]
            trace_packet=self.trace_packet,
        )
        await self.server.serve_forever(background=True)

    async def serve_tcp(self, port: int) -> None:
        self.server = ModbusTcpServer(
            self.devices,
            framer=FramerType.RTU,
            address=("127.0.0.1", port),
            trace_pdu=self.trace_pdu,  # type: ignore[arg-type]
            trace_packet=self.trace_packet,
        )
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed")
    a, b = tmp_path / "line-a", tmp_path / "line-b"
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("socat did not create the pty pair")
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(params=["rtu", "rtu-over-tcp"])
async def line(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Line, dict[str, Any]]]:
    served = Line()
    if request.param == "rtu":
        a, b = request.getfixturevalue("pty_pair")
        await served.serve_serial(a)
        conn: dict[str, Any] = {"transport": "rtu", "port": b, "baudrate": 9600}
    else:
        port = free_port()
        await served.serve_tcp(port)
        conn = {"transport": "rtu-over-tcp", "host": "127.0.0.1", "port": port}
    conn["frame_gap"] = FRAME_GAP
    try:
        yield served, conn
    finally:
        await served.stop()


def site_doc(conn: dict[str, Any], mqtt_url: str = "mqtt://127.0.0.1:1883") -> dict[str, Any]:
    return {
        "site": {"id": "rtu"},
        "mqtt": {"url": mqtt_url, "topic_prefix": "hz"},
        "devices": [
            {
                "id": f"gas{unit}",
                "profile": "gas_detector",
                "connection": conn,
                "unit": unit,
                "poll_interval": 0.3,
                # generous for answering units (a loaded test machine), short for the silent one
                "timeout": 0.3 if unit == SILENT else 1.0,
            }
            for unit in (*HEALTHY, SILENT, REFUSING)
        ],
    }


@pytest.fixture
async def subscriber(mosquitto: Mosquitto) -> AsyncIterator[Listener]:
    """Every message under ``hz/rtu/#``."""
    async with listening(mosquitto.port, "hz/rtu/#") as heard:
        yield heard


def on(topic: str, pred: Callable[[Any], bool] | None = None) -> Callable[[str, Any], bool]:
    """A message on ``topic`` whose document satisfies ``pred``."""
    return lambda t, doc: t == topic and (pred is None or pred(doc))


async def test_shared_line_through_the_gateway(
    line: tuple[Line, dict[str, Any]], mosquitto: Mosquitto, subscriber: Listener
) -> None:
    served, conn = line
    gw = Gateway(parse_site(site_doc(conn, mosquitto.url)), backoff_max=1.0)
    assert len(gw.links) == 1  # one owner for the whole line
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        for unit in HEALTHY:
            doc = (await subscriber.wait_for(on(f"hz/rtu/gas{unit}/telemetry"), 15)).doc
            assert set(doc["quality"].values()) == {"good"}
            assert doc["values"]["co"] == unit  # each unit's own registers, not a neighbour's
            assert doc["values"]["ch4"] == pytest.approx(unit * 0.1)
            assert doc["values"]["ch4_precise"] == pytest.approx(0.42)
        offline = on("hz/rtu/gas3/status", lambda d: d["online"] is False)
        status = (await subscriber.wait_for(offline, 15)).doc
        assert "no answer" in status["error"]

        # the refusing unit stays online: refused points bad, everything else good
        doc = (await subscriber.wait_for(on("hz/rtu/gas4/telemetry"), 15)).doc
        assert doc["quality"]["runtime_h"] == "bad"
        others = {k: v for k, v in doc["quality"].items() if k != "runtime_h"}
        assert set(others.values()) == {"good"}
        assert doc["values"]["co"] == REFUSING
        assert doc["values"]["ch4_range"] == pytest.approx(4.0)
        assert doc["values"]["ch4_precise"] == pytest.approx(0.42)
        await subscriber.wait_for(on("hz/rtu/gas4/status", lambda d: d["online"] is True), 15)

        # healthy units keep their pace while the silent one keeps failing
        before = {u: len(subscriber.on(f"hz/rtu/gas{u}/telemetry")) for u in HEALTHY}
        await asyncio.sleep(3.0)
        for unit in HEALTHY:  # 10 on schedule; 3 leaves room for a loaded machine
            assert len(subscriber.on(f"hz/rtu/gas{unit}/telemetry")) - before[unit] >= 3
        assert not subscriber.on("hz/rtu/gas3/telemetry")

        link = next(iter(gw.links.values()))
        assert link.resyncs >= 1
        assert link.min_gap_s is not None
        assert link.min_gap_s >= FRAME_GAP - 0.001
        assert served.min_gap() >= FRAME_GAP - 0.001  # seen from the line itself
    finally:
        stop.set()
        await task


# ---------------------------------------------------------------------------- late replies


class LateLine:
    """A hand-made serial server (RTU over TCP): unit 9 answers after the client gave up, in two
    pieces; unit 1 answers after a short delay, so pieces of unit 9's late frame land around
    the next request."""

    def __init__(self, late_s: float, normal_s: float, pause_s: float) -> None:
        self.late_s = late_s
        self.normal_s = normal_s
        self.pause_s = pause_s
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def answer(unit: int, address: int, count: int) -> bytes:
        words = [unit * 1000 + address + i for i in range(count)]
        body = bytes([unit, 3, 2 * count]) + b"".join(w.to_bytes(2, "big") for w in words)
        return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")

    async def _reply(self, writer: asyncio.StreamWriter, frame: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        half = len(frame) // 2
        writer.write(frame[:half])
        await writer.drain()
        await asyncio.sleep(self.pause_s)
        writer.write(frame[half:])
        await writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                req = await reader.readexactly(8)
                unit, fc = req[0], req[1]
                address = int.from_bytes(req[2:4], "big")
                count = int.from_bytes(req[4:6], "big")
                assert fc == 3
                delay = self.late_s if unit == 9 else self.normal_s
                task = asyncio.create_task(
                    self._reply(writer, self.answer(unit, address, count), delay)
                )
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_late_reply_from_one_unit_never_reaches_the_next() -> None:
    # unit 9 starts answering just after the client gave up and finishes while unit 1 is asked
    late = LateLine(late_s=0.102, normal_s=0.03, pause_s=0.01)
    port = await late.start()
    link = ModbusLink(
        RtuOverTcpConnection(transport="rtu-over-tcp", host="127.0.0.1", port=port), timeout=0.1
    )
    req = ReadRequest("holding", 0, 4, ())
    try:
        for i in range(8):
            with pytest.raises(DeviceOffline):
                await link.read("slow", 9, req, 0.1)
            # the same function code and count: only the unit id tells the answers apart
            other = ReadRequest("holding", i, 4, ())
            data = await link.read("healthy", 1, other, 1.0)
            assert list(data) == [1000 + i + k for k in range(4)]
        assert link.resyncs == 8
    finally:
        link.close()
        await late.stop()


# ---------------------------------------------------------------------------- CLI


async def run_cli(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hazardgw",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def line_args(conn: dict[str, Any]) -> list[str]:
    if conn["transport"] == "rtu":
        return ["--serial", conn["port"], "--baudrate", "9600"]
    return ["--host", conn["host"], "--port", str(conn["port"]), "--rtu-over-tcp"]


async def test_probe_shows_raw_registers_and_every_order(line: tuple[Line, dict[str, Any]]) -> None:
    _, conn = line
    rc, out, err = await run_cli(
        "probe", *line_args(conn), "--unit", "2", "--address", "10", "--count", "2"
    )
    assert rc == 0, err
    assert "unit 2: holding 10+2" in out
    ch4 = struct.unpack(">HH", struct.pack(">f", 0.42))
    assert f"0x{ch4[1]:04X}" in out and f"0x{ch4[0]:04X}" in out
    orders = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()[:4] in {"ABCD", "CDAB"}}
    assert "@10=0.42" in orders["CDAB"]  # the order the profile names is the sensible one
    assert "@10=0.42" not in orders["ABCD"]

    rc, out, err = await run_cli(
        "probe", *line_args(conn), "--unit", "2", "--address", "1", "--count", "1",
        "--type", "int16", "--order", "ABCD",
    )  # fmt: skip
    assert rc == 0, err
    assert "ABCD  @1=20" in out


async def test_probe_errors_are_clear(line: tuple[Line, dict[str, Any]]) -> None:
    _, conn = line
    rc, _, err = await run_cli("probe", *line_args(conn), "--unit", "3", "--timeout", "0.2")
    assert rc == 1
    assert "no answer" in err and "Traceback" not in err
    rc, _, err = await run_cli("probe", *line_args(conn), "--unit", "4", "--address", "9")
    assert rc == 1
    assert "exception 2 (illegal data address)" in err and "Traceback" not in err
    rc, _, err = await run_cli("probe", "--unit", "1")
    assert rc == 2
    assert "--serial" in err and "Traceback" not in err
    rc, _, err = await run_cli("probe", "--serial", "/nonexistent/tty", "--timeout", "0.5")
    assert rc == 1
    assert "cannot connect" in err and "Traceback" not in err


async def test_scan_lists_the_units_that_answer(line: tuple[Line, dict[str, Any]]) -> None:
    _, conn = line
    rc, out, err = await run_cli("scan", *line_args(conn), "--units", "1-6")
    assert rc == 0, err
    assert "3 unit(s) answer: 1, 2, 4" in out
    rc, _, err = await run_cli("scan", *line_args(conn), "--units", "x-2")
    assert rc == 2
    assert "--units" in err
    rc, _, err = await run_cli("scan", "--serial", "/nonexistent/tty", "--units", "1-3")
    assert rc == 1
    assert "cannot connect" in err and "Traceback" not in err


async def test_check_probe_prints_the_learned_plan(
    line: tuple[Line, dict[str, Any]], tmp_path: Path
) -> None:
    _, conn = line
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps(site_doc(conn)))  # JSON is YAML
    rc, out, err = await run_cli("check", "--probe", "-c", str(site))
    assert rc == 1, err  # unit 3 never answers
    assert "gas1: OK, 4 requests, refuses nothing" in out
    assert "gas3: FAILED" in out
    assert "gas4: OK" in out and "refuses holding 9, 12-13" in out
    assert "unread (refused by the device): runtime_h" in out
    assert "3 of 4 devices answered" in out
