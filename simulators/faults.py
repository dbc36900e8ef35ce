"""Faults a tester injects into a simulated device, from a scenario or at runtime.

=================  ==========================================================================
fault              what a client sees
=================  ==========================================================================
``Drop()``         the device's endpoint refuses connections and closes open ones (on a serial
                   line, where there is no connection, the device goes silent)
``Delay(ms)``      every reply from the device arrives ``ms`` milliseconds late
``ExceptionReply`` every request gets a Modbus exception response (code 1-11, default 4
(code)             device failure)
``Freeze(point)``  the point (or, with no point, every point) keeps its current value
``Spikes(point,    the point jumps by ``magnitude`` (engineering units) on a share
magnitude, p)``    ``probability`` of model updates
``Garbage()``      replies are replaced by random bytes of the same length
``Silence()``      requests are read and never answered
=================  ==========================================================================

:func:`parse_fault` reads the short text forms (``"delay:250"``, ``"exception:2"``,
``"freeze:ch4"``, ``"spikes:ch4:2.5:0.2"``, ``"drop"``, ``"garbage"``, ``"silence"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes

__all__ = [
    "Delay",
    "DeviceFaults",
    "Drop",
    "ExceptionReply",
    "Fault",
    "Freeze",
    "Garbage",
    "Silence",
    "Spikes",
    "parse_fault",
]


@dataclass(frozen=True, slots=True)
class Drop:
    """Refuse and close connections to the device's endpoint."""


@dataclass(frozen=True, slots=True)
class Delay:
    """Answer every request ``ms`` milliseconds late."""

    ms: float

    def __post_init__(self) -> None:
        if self.ms < 0:
            raise ValueError(f"delay must be >= 0 ms, got {self.ms}")


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """Answer every request with Modbus exception ``code``."""

    code: int = int(ExcCodes.DEVICE_FAILURE)

    def __post_init__(self) -> None:
        valid = sorted(int(c) for c in ExcCodes)
        if self.code not in valid:
            raise ValueError(f"exception code {self.code} is not one of {valid}")


@dataclass(frozen=True, slots=True)
class Freeze:
    """Hold one point (or every point, when ``point`` is None) at its current value."""

    point: str | None = None


@dataclass(frozen=True, slots=True)
class Spikes:
    """Add ``magnitude`` to ``point`` on a share ``probability`` of model updates."""

    point: str
    magnitude: float
    probability: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"spike probability must be within 0..1, got {self.probability}")


@dataclass(frozen=True, slots=True)
class Garbage:
    """Replace every reply by random bytes of the same length."""


@dataclass(frozen=True, slots=True)
class Silence:
    """Never answer."""


Fault = Drop | Delay | ExceptionReply | Freeze | Spikes | Garbage | Silence


@dataclass(slots=True)
class DeviceFaults:
    """The faults active on one device (what the servers and the value pipeline consult)."""

    drop: bool = False
    delay_s: float = 0.0
    exception: int | None = None
    garbage: bool = False
    silence: bool = False
    frozen: set[str | None] = field(default_factory=set)
    spikes: dict[str, Spikes] = field(default_factory=dict)

    def add(self, fault: Fault) -> None:
        """Activate ``fault`` (a second fault of the same kind replaces the first)."""
        match fault:
            case Drop():
                self.drop = True
            case Delay(ms=ms):
                self.delay_s = ms / 1000.0
            case ExceptionReply(code=code):
                self.exception = code
            case Garbage():
                self.garbage = True
            case Silence():
                self.silence = True
            case Freeze(point=point):
                self.frozen.add(point)
            case Spikes(point=point):
                self.spikes[point] = fault

    @property
    def on_wire(self) -> bool:
        """Whether any fault changes what goes over the wire."""
        return bool(self.drop or self.delay_s or self.garbage or self.silence)


def parse_fault(text: str) -> Fault:
    """Read a fault's short text form, e.g. ``"delay:250"`` or ``"spikes:ch4:2.5"``."""
    name, _, rest = text.strip().partition(":")
    args = [a for a in rest.split(":") if a] if rest else []
    try:
        match name.lower(), args:
            case "drop", []:
                return Drop()
            case "garbage", []:
                return Garbage()
            case "silence", []:
                return Silence()
            case "delay", [ms]:
                return Delay(float(ms))
            case "exception", []:
                return ExceptionReply()
            case "exception", [code]:
                return ExceptionReply(int(code))
            case "freeze", []:
                return Freeze()
            case "freeze", [point]:
                return Freeze(point)
            case "spikes", [point, magnitude]:
                return Spikes(point, float(magnitude))
            case "spikes", [point, magnitude, probability]:
                return Spikes(point, float(magnitude), float(probability))
    except ValueError as exc:
        raise ValueError(f"bad fault {text!r}: {exc}") from None
    raise ValueError(
        f"bad fault {text!r}: expected drop, garbage, silence, delay:MS, exception[:CODE], "
        "freeze[:POINT] or spikes:POINT:MAGNITUDE[:PROBABILITY]"
    )
