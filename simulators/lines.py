"""Endpoints and lines: one pymodbus server per distinct endpoint of the site's devices.

An endpoint is what a gateway connects to: a TCP port (Modbus TCP, MBAP framing), a TCP port of
a serial server / DTU passing raw RTU frames (RTU-over-TCP), or a serial port (RTU). Devices that
share an endpoint are units on one line, served by one server.

Wire faults act on each outgoing frame: the line reads the unit id from the frame (MBAP byte 6,
RTU byte 0) and silences, garbles or delays it. Delayed replies are built at once and written
late, so each still carries its own transaction id. ``Drop`` closes the TCP listener and every
open connection until the fault is cleared; a serial line has no connection and goes silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from fieldmodel.model import Device, RtuConnection, RtuOverTcpConnection, TcpConnection
from simulators.errors import EndpointError, ScenarioError
from simulators.faults import DeviceFaults

__all__ = ["Endpoint", "Line", "UnitAccess", "check_endpoints", "endpoint_of"]

log = logging.getLogger(__name__)

#: Called on every register access of a unit: (device id, function code, block start address,
#: request address, request count, block registers, values written or None).
UnitAccess = Callable[
    [str, int, int, int, int, list[int], list[int] | list[bool] | None],
    Awaitable[ExcCodes | None],
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a line is served: transport, address, and serial settings for RTU."""

    transport: str  # tcp | rtu-over-tcp | rtu
    host: str = ""
    port: int = 0
    path: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def framer(self) -> FramerType:
        """Frame format on this endpoint (MBAP for TCP, RTU otherwise)."""
        return FramerType.SOCKET if self.transport == "tcp" else FramerType.RTU

    def __str__(self) -> str:
        if self.transport == "rtu":
            return f"rtu {self.path} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"
        return f"{self.transport} {self.host}:{self.port}"


def endpoint_of(device: Device, bind: str | None = None) -> Endpoint:
    """The endpoint serving ``device`` (``bind`` replaces the host a TCP endpoint listens on)."""
    conn = device.connection
    if isinstance(conn, TcpConnection | RtuOverTcpConnection):
        return Endpoint(conn.transport, host=bind or conn.host, port=conn.port)
    assert isinstance(conn, RtuConnection)
    return Endpoint(
        "rtu",
        path=conn.port,
        baudrate=conn.baudrate,
        parity=conn.parity,
        stopbits=conn.stopbits,
        bytesize=conn.bytesize,
    )


def _block(size: int, bits: bool) -> list[SimData]:
    """A server block covering addresses 0..size-1 (bit blocks whole words; the access hook
    refuses addresses past ``size`` and kinds a device does not have)."""
    if bits:
        return [SimData(0, values=[False] * max(16, -(-size // 16) * 16), datatype=DataType.BITS)]
    if size == 0:
        return [SimData(0, datatype=DataType.INVALID)]
    return [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)]


class _LineServerMixin:
    """Gives every connection of a server the line's per-frame hook."""

    line: Line

    def callback_new_connection(self) -> ServerRequestHandler:
        handler: ServerRequestHandler = super().callback_new_connection()  # type: ignore[misc]
        handler.trace_packet = partial(self.line.outgoing, handler)
        return handler


async def _no_device_behind_gateway(  # noqa: PLR0917 (pymodbus' action signature)
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    return ExcCodes.GATEWAY_NO_RESPONSE


class _TcpLineServer(_LineServerMixin, ModbusTcpServer):
    pass


class _SerialLineServer(_LineServerMixin, ModbusSerialServer):
    pass


class Line:
    """One server: an endpoint and the units (devices) on it."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        units: Mapping[int, Device],
        sizes: Mapping[str, Mapping[str, int]],
        access: UnitAccess,
        faults: Callable[[str], DeviceFaults],
        garbage: Callable[[str, int], bytes],
    ) -> None:
        self.endpoint = endpoint
        self.units = dict(units)
        self._sizes = sizes
        self._access = access
        self._faults = faults
        self._garbage = garbage
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._refusing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _sim_devices(self) -> list[SimDevice]:
        devices = []
        for unit, device in sorted(self.units.items()):
            size = self._sizes[device.id]

            async def action(  # noqa: PLR0917 (pymodbus calls it with these positionals)
                function_code: int,
                start_address: int,
                address: int,
                count: int,
                registers: list[int],
                values: list[int] | list[bool] | None,
                device_id: str = device.id,
            ) -> ExcCodes | None:
                return await self._access(
                    device_id, function_code, start_address, address, count, registers, values
                )

            simdata = (
                _block(size["coil"], bits=True),
                _block(size["discrete"], bits=True),
                _block(size["holding"], bits=False),
                _block(size["input"], bits=False),
            )
            devices.append(SimDevice(id=unit, simdata=simdata, action=action))
        if self.endpoint.transport == "tcp" and 0 not in self.units:
            # A Modbus TCP gateway answers for unit ids it has no device behind with exception
            # 11 (gateway target device failed to respond), as field gateways do.
            devices.append(
                SimDevice(
                    id=0,
                    simdata=(
                        _block(16, bits=True),
                        _block(16, bits=True),
                        _block(125, bits=False),
                        _block(125, bits=False),
                    ),
                    action=_no_device_behind_gateway,
                )
            )
        return devices

    async def start(self) -> None:
        """Build the server and start serving in the background."""
        ep = self.endpoint
        devices = self._sim_devices()
        server: ModbusTcpServer | ModbusSerialServer
        if ep.transport == "rtu":
            server = _SerialLineServer(
                devices,
                framer=FramerType.RTU,
                port=ep.path,
                baudrate=ep.baudrate,
                parity=ep.parity,
                stopbits=ep.stopbits,
                bytesize=ep.bytesize,
                reconnect_delay=0.5,
            )
        else:
            server = _TcpLineServer(devices, framer=ep.framer, address=(ep.host, ep.port))
        server.line = self  # type: ignore[attr-defined]
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:
            server.close()
            raise EndpointError(f"cannot serve {ep}: {exc}") from exc
        self._server = server
        if self._refusing:
            self._refusing = False
            self.refuse()

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._close_connections()
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    # ------------------------------------------------------------------ drop

    @property
    def refusing(self) -> bool:
        """Whether the line refuses connections (a dropped device on a TCP endpoint)."""
        return self._refusing

    def _close_connections(self) -> None:
        if self._server is None:
            return
        for connection in list(self._server.active_connections.values()):
            connection.close()

    def refuse(self) -> None:
        """Stop listening and close open connections (TCP); a serial line just goes silent."""
        if self._refusing:
            return
        self._refusing = True
        if self._server is None or self.endpoint.transport == "rtu":
            return
        listener = self._server.transport
        if listener is not None:
            listener.close()
        self._close_connections()
        log.info("%s: refusing connections", self.endpoint)

    def restore(self) -> None:
        """Listen again after :meth:`refuse`."""
        if not self._refusing:
            return
        self._refusing = False
        if self._server is None or self.endpoint.transport == "rtu":
            return
        task = asyncio.get_running_loop().create_task(self._relisten(), name=f"relisten {self}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relisten(self) -> None:
        server = self._server
        if server is None:
            return
        for _ in range(50):
            if self._refusing:
                return
            if await server.listen():
                log.info("%s: accepting connections again", self.endpoint)
                return
            await asyncio.sleep(0.1)
        log.error("%s: could not listen again", self.endpoint)

    # ------------------------------------------------------------------ per-frame hook

    def outgoing(self, handler: ServerRequestHandler, sending: bool, packet: bytes) -> bytes:
        """Rewrite one frame on its way out (wire faults); incoming frames pass unchanged."""
        if not sending or not packet:
            return packet
        rtu = self.endpoint.framer is FramerType.RTU
        unit = packet[0] if rtu else packet[6] if len(packet) > 6 else -1
        device = self.units.get(unit)
        if device is None:
            return b"" if rtu else packet  # nobody on a bus answers for an unknown unit
        faults = self._faults(device.id)
        if not faults.on_wire:
            return packet
        if faults.silence or faults.drop:
            return b""
        if faults.garbage:
            packet = self._garbage(device.id, len(packet))
        if faults.delay_s > 0:
            handler.loop.call_later(faults.delay_s, handler.send, packet)
            return b""
        return packet

    def __str__(self) -> str:
        units = ", ".join(f"{u}={d.id}" for u, d in sorted(self.units.items()))
        return f"{self.endpoint} [{units}]"


def check_endpoints(
    devices: list[Device], bind: str | None = None
) -> dict[Endpoint, dict[int, Device]]:
    """Group devices by endpoint; refuse one address used with two transports or settings."""
    lines: dict[Endpoint, dict[int, Device]] = {}
    seen: dict[str, Endpoint] = {}
    for device in devices:
        ep = endpoint_of(device, bind)
        where = ep.path if ep.transport == "rtu" else f"{ep.host}:{ep.port}"
        if where in seen and seen[where] != ep:
            raise ScenarioError(
                f"device {device.id!r}: {where} is served as '{seen[where]}' for another device, "
                f"not '{ep}'"
            )
        seen[where] = ep
        units = lines.setdefault(ep, {})
        if device.unit in units:
            raise ScenarioError(
                f"device {device.id!r}: unit {device.unit} on {ep} "
                f"is also {units[device.unit].id!r}"
            )
        units[device.unit] = device
    return lines
