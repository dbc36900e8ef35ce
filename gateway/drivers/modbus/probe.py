"""Tools for the person wiring a sensor: probe registers, scan a line, discover read plans.

* :func:`probe` reads a block of registers (or bits) from one unit; :func:`format_probe` prints
  them raw (hex and decimal) and decoded, in every word/byte order unless one is given, so the
  right order is the one that shows a sensible value.
* :func:`scan` asks every unit id in a range for one register with a short timeout and lists the
  ones that answer (an exception response is an answer too: something is there).
* :func:`discover_site` connects to each device of a site, runs the adaptive discovery and
  returns the learned plans (``hazardgw check --probe``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from fieldmodel.codec import decode_words
from fieldmodel.model import Connection, Device, RtuConnection
from fieldmodel.registers import BIT_KINDS, REGISTER_WIDTH, WORD_ORDERS
from gateway.config import (
    RtuConnectionFile,
    RtuOverTcpConnectionFile,
    SiteConfig,
    TcpConnectionFile,
    connection_from_file,
)
from gateway.drivers.modbus.adaptive import AdaptiveReader
from gateway.drivers.modbus.link import EXCEPTION_NAMES, ModbusLink, link_key
from gateway.drivers.modbus.planner import MAX_BITS, MAX_REGISTERS, ReadRequest
from gateway.errors import DeviceError, DeviceException

__all__ = [
    "DeviceDiscovery",
    "ProbeResult",
    "ScanHit",
    "build_connection",
    "describe_connection",
    "discover_site",
    "format_probe",
    "parse_units",
    "probe",
    "scan",
]

_GATEWAY_NO_DEVICE = frozenset({10, 11})  # a serial server saying nobody answered behind it


def build_connection(
    *,
    host: str | None = None,
    port: int | None = None,
    serial: str | None = None,
    baudrate: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
    rtu_over_tcp: bool = False,
    frame_gap: float | None = None,
) -> Connection:
    """A connection from command-line options, checked as a site file's ``connection:`` is;
    ValueError says what is wrong."""
    if serial and host:
        raise ValueError("give either --serial PORT or --host HOST, not both")
    if not serial and not host:
        raise ValueError(
            "give --serial PORT (RTU line) or --host HOST (Modbus TCP / serial server)"
        )
    if serial and rtu_over_tcp:
        raise ValueError("--rtu-over-tcp goes with --host (a serial server), not --serial")
    checked: TcpConnectionFile | RtuOverTcpConnectionFile | RtuConnectionFile
    try:
        if serial:
            checked = RtuConnectionFile(
                transport="rtu",
                port=serial,
                baudrate=baudrate,  # type: ignore[arg-type]
                parity=parity,  # type: ignore[arg-type]
                stopbits=stopbits,  # type: ignore[arg-type]
                frame_gap=frame_gap,
            )
        elif rtu_over_tcp:
            assert host is not None
            checked = RtuOverTcpConnectionFile(
                transport="rtu-over-tcp",
                host=host,
                port=port or 502,
                baudrate=baudrate,
                frame_gap=frame_gap,
            )
        else:
            assert host is not None
            checked = TcpConnectionFile(transport="tcp", host=host, port=port or 502)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ValueError(
            f"--{key.replace('_', '-')}: {err['msg']} (got {err['input']!r})"
        ) from None
    return connection_from_file(checked)


def describe_connection(conn: Connection) -> str:
    """``rtu /dev/ttyUSB0 9600 8N1`` / ``rtu-over-tcp 10.0.0.7:4001`` / ``tcp 127.0.0.1:502``."""
    if isinstance(conn, RtuConnection):
        return f"rtu {conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"
    return f"{conn.transport} {conn.host}:{conn.port}"


def parse_units(text: str) -> list[int]:
    """``1-247`` / ``1,2,5-9`` -> unit ids; ValueError on anything else."""
    units: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(
                f"--units: expected ranges like 1-247 or 1,2,5-9, got {text!r}"
            ) from None
        if not 0 <= a <= b <= 255:
            raise ValueError(f"--units: unit ids run 0-255 (1-247 on a line), got {part!r}")
        units.extend(range(a, b + 1))
    return sorted(set(units))


# ---------------------------------------------------------------------------- probe


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one unit answered for a block of registers or bits."""

    unit: int
    kind: str
    address: int
    values: tuple[int, ...]  # register words, or bits as 0/1


async def probe(
    link: ModbusLink, *, unit: int, kind: str, address: int, count: int, timeout: float
) -> ProbeResult:
    """Read ``count`` registers (or bits) at ``address``; raises DeviceError."""
    limit = MAX_BITS if kind in BIT_KINDS else MAX_REGISTERS
    if not 1 <= count <= limit:
        raise ValueError(f"--count: 1 to {limit} for {kind}, got {count}")
    if not 0 <= address <= 65535 or address + count > 65536:
        raise ValueError(f"--address: {address}+{count} runs past 65535")
    req = ReadRequest(kind, address, count, ())
    data = await link.read(f"unit {unit}", unit, req, timeout)
    return ProbeResult(unit, kind, address, tuple(int(v) for v in data))


def _fmt(value: float | int) -> str:
    if isinstance(value, float):
        return f"{value:.7g}"
    return str(value)


def format_probe(
    result: ProbeResult, *, type_name: str | None = None, order: str | None = None
) -> list[str]:
    """Raw words (hex, decimal, signed) and decoded values, in every order unless given."""
    lines: list[str] = []
    if result.kind in BIT_KINDS:
        lines.append("  address  bit")
        for i, bit in enumerate(result.values):
            lines.append(f"  {result.address + i:<7d}  {bit}")
        return lines
    words = np.array(result.values, dtype=np.uint16)
    lines.append("  address  hex     unsigned  signed")
    for i, w in enumerate(result.values):
        signed = w - 0x10000 if w >= 0x8000 else w
        lines.append(f"  {result.address + i:<7d}  0x{w:04X}  {w:<8d}  {signed}")
    types = [type_name] if type_name else ["int32", "uint32", "float32"]
    orders = [order] if order else list(WORD_ORDERS)
    for t in types:
        if t == "bool":
            continue
        width = REGISTER_WIDTH[t]
        n = len(words) // width
        if n == 0:
            lines.append(f"  {t}: needs {width} registers, got {len(words)}")
            continue
        lines.append(f"  as {t}" + ("" if order else " (every order: pick the sensible one)"))
        matrix = words[: n * width].reshape(n, width)
        for o in orders:
            if width == 1 and o in ("CDAB", "DCBA") and not order:
                continue  # 16-bit values ignore word order: CDAB = ABCD, DCBA = BADC
            decoded = decode_words(matrix, t, o).tolist()
            cells = "  ".join(
                f"@{result.address + k * width}={_fmt(v)}" for k, v in enumerate(decoded)
            )
            lines.append(f"    {o}  {cells}")
    return lines


# ---------------------------------------------------------------------------- scan


@dataclass(frozen=True, slots=True)
class ScanHit:
    """A unit id that answered, and what it said."""

    unit: int
    answer: str


async def scan(
    link: ModbusLink,
    units: Iterable[int],
    *,
    kind: str = "holding",
    address: int = 0,
    timeout: float = 0.2,
) -> list[ScanHit]:
    """Ask each unit for one register; list those that answer (exceptions count as answers)."""
    hits: list[ScanHit] = []
    req = ReadRequest(kind, address, 1, ())
    for unit in units:
        try:
            data = await link.read(f"unit {unit}", unit, req, timeout)
        except DeviceException as exc:
            if exc.code in _GATEWAY_NO_DEVICE:
                continue
            name = EXCEPTION_NAMES.get(exc.code, "unknown exception")
            hits.append(ScanHit(unit, f"exception {exc.code} ({name}) for {req}"))
        except DeviceError:
            continue
        else:
            v = int(data[0])
            shown = str(v) if kind in BIT_KINDS else f"0x{v:04X} {v}"
            hits.append(ScanHit(unit, f"{kind} {address} = {shown}"))
    return hits


# ---------------------------------------------------------------------------- check --probe


@dataclass(slots=True)
class DeviceDiscovery:
    """One device's discovery: the reader (plan and refused spans) or why it failed."""

    device: Device
    reader: AdaptiveReader
    error: DeviceError | None = None


async def discover_site(site: SiteConfig) -> list[DeviceDiscovery]:
    """Read each device once through its shared link, learning what it refuses."""
    links: dict[str, ModbusLink] = {}
    out: list[DeviceDiscovery] = []

    async def one_line(devices: Sequence[Device], link: ModbusLink) -> None:
        for dev in devices:  # one owner per bus: devices on a line go one after another
            found = DeviceDiscovery(dev, AdaptiveReader(dev))
            try:
                await found.reader.discover(link)
            except DeviceError as exc:
                found.error = exc
            out.append(found)

    lines: dict[str, list[Device]] = {}
    for dev in site.devices:
        key = link_key(dev.connection)
        lines.setdefault(key, []).append(dev)
        if key not in links:
            links[key] = ModbusLink(dev.connection, timeout=dev.timeout)
    try:
        async with asyncio.TaskGroup() as tg:
            for key, devices in lines.items():
                tg.create_task(one_line(devices, links[key]), name=f"discover {key}")
    finally:
        for link in links.values():
            link.close()
    order = {dev.id: i for i, dev in enumerate(site.devices)}
    return sorted(out, key=lambda d: order[d.device.id])
