"""The resolved field model: points, profiles, devices and their connections.

Frozen dataclasses built once, from a site file, by :mod:`gateway.config` (which checks the file
and names the key path of every problem); the Modbus driver, the point table, the sinks and the
simulators read them. Everything here is already checked: a :class:`Point`'s register kind,
type, bit and address agree (see :mod:`fieldmodel.registers` for the types).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fieldmodel.registers import BIT_KINDS, REGISTER_WIDTH, DataType, RegisterKind, WordOrder

__all__ = [
    "DEFAULT_REFUSAL_RECHECK",
    "Connection",
    "Device",
    "Parity",
    "Point",
    "Profile",
    "RtuConnection",
    "RtuOverTcpConnection",
    "TcpConnection",
]

#: Seconds after which address ranges a device refused are tried again.
DEFAULT_REFUSAL_RECHECK = 600.0
Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, slots=True)
class Point:
    """A resolved, checked point of one device."""

    name: str
    register: RegisterKind
    address: int
    type: DataType
    order: WordOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = None
    unit: str = ""
    description: str = ""
    writable: bool = False

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) this point spans."""
        if self.register in BIT_KINDS:
            return 1
        return REGISTER_WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class Profile:
    """A device kind's register map, shared by the gateway and the simulators."""

    name: str
    kind: str
    measurement: str
    description: str
    points: tuple[Point, ...]
    source: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpConnection:
    """Modbus TCP."""

    transport: Literal["tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: int = 502


@dataclass(frozen=True, slots=True, kw_only=True)
class RtuOverTcpConnection:
    """Raw RTU frames over TCP: a serial device server in front of an RS-485 line."""

    transport: Literal["rtu-over-tcp"] = "rtu-over-tcp"
    host: str
    port: int
    baudrate: int = 9600
    #: Seconds of silence between frames (None: 3.5 character times at ``baudrate``).
    frame_gap: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RtuConnection:
    """Modbus RTU on a local serial port."""

    transport: Literal["rtu"] = "rtu"
    port: str
    baudrate: int = 9600
    parity: Parity = "N"
    stopbits: int = 1
    bytesize: int = 8
    #: Seconds of silence between frames (None: 3.5 character times at ``baudrate``).
    frame_gap: float | None = None


Connection = TcpConnection | RtuOverTcpConnection | RtuConnection


@dataclass(frozen=True, slots=True)
class Device:
    """A resolved device: its connection, its profile and its merged, checked points."""

    id: str
    profile: Profile
    connection: Connection
    unit: int
    poll_interval: float
    timeout: float
    tags: Mapping[str, str]
    points: tuple[Point, ...]
    limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    max_gap: int = 8
    refusal_recheck: float = DEFAULT_REFUSAL_RECHECK
    """Seconds after which address ranges the device refused are tried again."""
    limits_reason: str | None = None
    #: Last calibration as Unix epoch seconds (None: not given in the site file).
    calibrated_at: float | None = None

    @property
    def kind(self) -> str:
        return self.profile.kind

    @property
    def measurement(self) -> str:
        return self.profile.measurement
