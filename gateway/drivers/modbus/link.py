"""One owner per bus: a :class:`ModbusLink` owns one TCP connection or serial line.

Every device on a line goes through its link: requests are serialised under the link's lock,
with an inter-frame gap on RTU lines (3.5 character times at the line's baud rate by default).
pymodbus errors are mapped once, here, to :class:`~gateway.errors.DeviceOffline` (no answer) and
:class:`~gateway.errors.DeviceException` (an exception response), carrying device and address.

RTU lines (a serial port, or a serial server carrying raw RTU frames over TCP) have no
transaction ids: a reply that arrives after its request timed out looks like an answer to
whatever was asked next. So after a timeout or a malformed answer the link *resyncs*: before the
next frame it waits until the line has been quiet for ``settle_s`` (bytes that arrive meanwhile
are discarded), and every answer is checked against its request (unit, function code, length)
before it is handed on. A late reply from another unit is dropped by the unit check; a silent
unit costs its own timeout plus one settle period and never corrupts another unit's read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from fieldmodel.model import Connection, RtuConnection, RtuOverTcpConnection, TcpConnection
from fieldmodel.registers import BIT_KINDS
from gateway.aio import raise_if_cancelling
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceException, DeviceOffline, ReadsStopped

__all__ = [
    "EXCEPTION_NAMES",
    "ModbusLink",
    "char_time",
    "link_key",
    "tcp_frame_problem",
]

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
#: pymodbus gives up on its own only long after every per-device timeout has fired; the link's
#: ``asyncio.timeout`` is what bounds a request.
_LIBRARY_TIMEOUT = 60.0
#: Longest RTU frame (bytes): a settle period never waits longer than this frame's wire time.
_MAX_FRAME = 256


#: Longest MBAP length field: unit id + a 253-byte PDU.
_MAX_MBAP_LENGTH = 254
_READ_CODES = frozenset({1, 2, 3, 4})


def tcp_frame_problem(data: bytes) -> str | None:
    """What is wrong with the framing of the Modbus TCP answer at the start of ``data``, or None
    (also while the answer is still incomplete). Checks the MBAP header (protocol id, length) and,
    for the read function codes the gateway sends, that the byte count matches the frame."""
    if len(data) < 7:
        return None
    _tid, pid, length = struct.unpack_from(">HHH", data)
    if pid != 0:
        return f"protocol id {pid} in the MBAP header (Modbus TCP is 0)"
    if length < 3:
        return f"MBAP length {length} is too short for a function code and its data (3 or more)"
    if length > _MAX_MBAP_LENGTH:
        return f"MBAP length {length} is longer than any Modbus frame ({_MAX_MBAP_LENGTH})"
    if len(data) < 6 + length:
        return None  # the rest is on its way
    function_code = data[7]
    if function_code & 0x80:
        return None if length == 3 else f"exception answer with MBAP length {length} (3)"
    if function_code in _READ_CODES and data[8] != length - 3:
        return f"byte count {data[8]} but the frame carries {length - 3} data bytes"
    return None


def link_key(conn: Connection) -> str:
    """Devices whose connections share this key share one link (one bus owner)."""
    if isinstance(conn, RtuConnection):
        return f"rtu:{conn.port}"
    return f"{conn.transport}:{conn.host}:{conn.port}"


def char_time(baudrate: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes on a serial line (start + 8 data + parity/stop = 11 bits)."""
    return bits_per_char / baudrate


class ModbusLink:
    """A Modbus client connection shared by every device on it.

    ``busy_s`` is the time the line was held by requests (sent until answered or timed out),
    ``requests`` their number, ``min_gap_s`` the shortest silence seen between the end of one
    frame and the start of the next (None until two frames passed), ``resyncs`` how often the
    link waited out a late or garbled reply.
    """

    def __init__(
        self, conn: Connection, *, timeout: float = 1.0, settle: float | None = None
    ) -> None:
        self.conn = conn
        self.key = link_key(conn)
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._serial = not isinstance(conn, TcpConnection)
        baud = 0 if isinstance(conn, TcpConnection) else conn.baudrate
        gap = None if isinstance(conn, TcpConnection) else conn.frame_gap
        self.frame_gap = gap if gap is not None else (3.5 * char_time(baud) if baud else 0.0)
        max_frame_s = _MAX_FRAME * char_time(baud) if baud else 0.0
        #: quiet time required on the line before the next frame after a timeout / bad frame
        self.settle_s = (
            settle
            if settle is not None
            else max(self.frame_gap, 20 * char_time(baud) if baud else 0)
        )
        self._settle_max_s = max(self.settle_s, max_frame_s)
        self._last_frame_end = 0.0
        self._last_rx = 0.0
        self._resync = False
        self._stopped = False
        self._bad_frame: str | None = None  # what was wrong with the last answer's framing
        self.busy_s = 0.0  # time spent on the wire, for line-utilisation reports
        self.requests = 0
        self.resyncs = 0
        self.min_gap_s: float | None = None

    # ------------------------------------------------------------------ connection

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus packet hook: note when bytes cross the line (for gaps and resync)."""
        now = time.monotonic()
        if sending:
            if self._last_frame_end:
                gap = now - max(self._last_frame_end, self._last_rx)
                if self.min_gap_s is None or gap < self.min_gap_s:
                    self.min_gap_s = gap
        else:
            self._last_rx = now
            if not self._serial and (problem := tcp_frame_problem(data)) is not None:
                return self._refuse_frame(problem)
        return data

    def _refuse_frame(self, problem: str) -> bytes:
        """A malformed Modbus TCP answer: fail the waiting request now, naming the problem, and
        hand pymodbus nothing to decode (it would raise inside the protocol callback, and asyncio
        would log a traceback and leave the request to time out)."""
        self._bad_frame = problem
        waiting = getattr(self._client.ctx, "response_future", None) if self._client else None
        if isinstance(waiting, asyncio.Future) and not waiting.done():
            waiting.set_exception(ModbusIOException(problem))
        return b""

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        conn = self.conn
        common: dict[str, Any] = {
            "timeout": _LIBRARY_TIMEOUT,
            "retries": 0,
            "reconnect_delay": 0,
            "trace_packet": self._trace,
        }
        if isinstance(conn, TcpConnection):
            return AsyncModbusTcpClient(conn.host, port=conn.port, **common)
        if isinstance(conn, RtuOverTcpConnection):
            return AsyncModbusTcpClient(conn.host, port=conn.port, framer=FramerType.RTU, **common)
        return AsyncModbusSerialClient(
            conn.port,
            framer=FramerType.RTU,
            baudrate=conn.baudrate,
            bytesize=conn.bytesize,
            parity=conn.parity,
            stopbits=conn.stopbits,
            **common,
        )

    async def _ensure_connected(self, device: str, timeout: float) -> None:
        if self._client is not None and self._client.connected:
            return
        if self._client is None:
            self._client = self._make_client()
        try:
            async with asyncio.timeout(timeout):
                ok = await self._client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            self.close()
            raise_if_cancelling()
            raise DeviceOffline(device, f"cannot connect to {self.key}: {exc!r}") from exc
        raise_if_cancelling()  # pymodbus's wait_for drops a cancel that met the connection
        if not ok:
            self.close()
            raise DeviceOffline(device, f"cannot connect to {self.key}")

    async def connect(self, device: str, timeout: float) -> None:
        """Open the connection or serial port now; raises DeviceOffline naming the link."""
        async with self._lock:
            await self._ensure_connected(device, timeout)

    # ------------------------------------------------------------------ line discipline

    async def _wait_gap(self) -> None:
        if self.frame_gap:
            wait = max(self._last_frame_end, self._last_rx) + self.frame_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _settle(self) -> None:
        """After a timeout or a bad frame: wait for a quiet line, then drop what arrived."""
        self.resyncs += 1
        start = time.monotonic()
        while True:
            now = time.monotonic()
            quiet_for = now - max(self._last_rx, self._last_frame_end)
            if quiet_for >= self.settle_s or now - start >= self._settle_max_s:
                break
            await asyncio.sleep(max(self.settle_s - quiet_for, 0.001))
        if self._client is not None:
            self._client.ctx.recv_buffer = b""
        self._resync = False

    def _check(self, device: str, unit: int, req: ReadRequest, rr: Any) -> None:
        """Refuse an answer that does not belong to this request (a late or garbled frame)."""
        fc = int(getattr(rr, "function_code", 0)) & 0x7F
        problem = ""
        if self._serial and unit and int(getattr(rr, "dev_id", unit)) != unit:
            problem = f"answer from unit {rr.dev_id}"
        elif fc != req.function_code:
            problem = f"answer with function code {fc}"
        elif rr.isError():
            return
        elif req.kind in BIT_KINDS:
            if len(rr.bits) != 8 * math.ceil(req.count / 8):
                problem = f"{len(rr.bits)} bits in the answer"
        elif len(rr.registers) != req.count:
            problem = f"{len(rr.registers)} registers in the answer"
        if problem:
            self._resync = self._serial
            raise DeviceOffline(
                device, f"{problem}, expected {req} (stale or garbled frame)", address=req.address
            )

    # ------------------------------------------------------------------ requests

    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]:
        """Read one planned request from ``unit``; raise DeviceOffline / DeviceException, or
        ReadsStopped once :meth:`stop_reads` was called (also for a read queued behind another)."""
        async with self._lock:
            if self._stopped:
                raise ReadsStopped(device)
            await self._ensure_connected(device, timeout)
            client = self._client
            assert client is not None
            if self._resync:
                await self._settle()
            await self._wait_gap()
            call = {
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
            }[req.kind]
            start = time.monotonic()
            self._bad_frame = None
            try:
                async with asyncio.timeout(timeout):
                    rr = await call(req.address, count=req.count, device_id=unit)
                # On Python 3.11 pymodbus's wait_for returns an answer that arrived in the same
                # loop step as a cancellation and drops the cancellation: re-raise it.
                raise_if_cancelling()
            except (TimeoutError, ModbusIOException) as exc:
                if self._serial:
                    self._resync = True  # a late reply may still be on its way
                else:
                    self.close()  # a late answer would desynchronise the TCP stream
                raise_if_cancelling()
                if self._bad_frame is not None:
                    raise DeviceOffline(
                        device, f"malformed answer: {self._bad_frame} ({req})", address=req.address
                    ) from exc
                raise DeviceOffline(
                    device, f"no answer within {timeout:g} s ({req})", address=req.address
                ) from exc
            except (ModbusException, OSError, ValueError) as exc:
                self.close()
                raise_if_cancelling()
                raise DeviceOffline(device, f"{req} failed: {exc}", address=req.address) from exc
            finally:
                end = time.monotonic()
                self._last_frame_end = end
                self.busy_s += end - start
                self.requests += 1
            self._check(device, unit, req, rr)
            if rr.isError():
                code = int(getattr(rr, "exception_code", 0))
                name = EXCEPTION_NAMES.get(code, "unknown exception")
                raise DeviceException(
                    device,
                    f"exception {code} ({name}) for {req}",
                    address=req.address,
                    code=code,
                )
            if req.kind in BIT_KINDS:
                return rr.bits[: req.count]
            return rr.registers

    def stop_reads(self) -> None:
        """Send no more requests: a read already on the wire finishes, every later one raises
        :class:`~gateway.errors.ReadsStopped`. For a stopping gateway: no device is read after
        the stop signal."""
        self._stopped = True

    def close(self) -> None:
        """Close the connection or serial port; the next read reopens it."""
        if self._client is not None:
            self._client.close()
            self._client = None
