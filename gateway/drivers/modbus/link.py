"""One owner per bus: a :class:`ModbusLink` owns one TCP connection or serial line.

Every device on a line goes through its link: requests are serialised under the link's lock,
with an inter-frame gap on RTU lines (3.5 character times at the line's baud rate by default).
pymodbus errors are mapped once, here, to :class:`~gateway.errors.DeviceOffline` (no answer) and
:class:`~gateway.errors.DeviceException` (an exception response), carrying device and address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from gateway.config import RtuConnection, RtuOverTcpConnection, TcpConnection
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceException, DeviceOffline

__all__ = ["ModbusLink", "char_time", "link_key"]

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

AnyConnection = TcpConnection | RtuOverTcpConnection | RtuConnection
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


def link_key(conn: AnyConnection) -> str:
    """Devices whose connections share this key share one link (one bus owner)."""
    if isinstance(conn, RtuConnection):
        return f"rtu:{conn.port}"
    return f"{conn.transport}:{conn.host}:{conn.port}"


def char_time(baudrate: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes on a serial line (start + 8 data + parity/stop = 11 bits)."""
    return bits_per_char / baudrate


class ModbusLink:
    """A Modbus client connection shared by every device on it."""

    def __init__(self, conn: AnyConnection, *, timeout: float = 1.0) -> None:
        self.conn = conn
        self.key = link_key(conn)
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._serial = not isinstance(conn, TcpConnection)
        baud = conn.baudrate if self._serial else 0  # type: ignore[union-attr]
        gap = getattr(conn, "frame_gap", None)
        self.frame_gap = gap if gap is not None else (3.5 * char_time(baud) if baud else 0.0)
        self._last_frame_end = 0.0
        self.busy_s = 0.0  # time spent on the wire, for line-utilisation reports
        self.requests = 0

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        conn = self.conn
        common: dict[str, Any] = {"timeout": self.timeout, "retries": 0, "reconnect_delay": 0}
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
            raise DeviceOffline(device, f"cannot connect to {self.key}: {exc!r}") from exc
        if not ok:
            self.close()
            raise DeviceOffline(device, f"cannot connect to {self.key}")

    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]:
        """Read one planned request from ``unit``; raise DeviceOffline / DeviceException."""
        async with self._lock:
            await self._ensure_connected(device, timeout)
            client = self._client
            assert client is not None
            if self.frame_gap:
                wait = self._last_frame_end + self.frame_gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            call = {
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
            }[req.kind]
            start = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    rr = await call(req.address, count=req.count, device_id=unit)
            except TimeoutError as exc:
                if not self._serial:
                    self.close()  # a late answer would desynchronise the TCP stream
                raise DeviceOffline(
                    device, f"no answer within {timeout:g} s ({req})", address=req.address
                ) from exc
            except (ModbusException, OSError, ValueError) as exc:
                self.close()
                raise DeviceOffline(device, f"{req} failed: {exc}", address=req.address) from exc
            finally:
                end = time.monotonic()
                self._last_frame_end = end
                self.busy_s += end - start
                self.requests += 1
            if rr.isError():
                code = int(getattr(rr, "exception_code", 0))
                name = EXCEPTION_NAMES.get(code, "unknown exception")
                raise DeviceException(
                    device,
                    f"exception {code} ({name}) for {req}",
                    address=req.address,
                    code=code,
                )
            if req.kind in ("coil", "discrete"):
                return rr.bits[: req.count]
            return rr.registers

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
