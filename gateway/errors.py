"""The gateway's exceptions, in one shallow tree.

::

    GatewayError
    ├── ConfigError          a site file or profile is wrong; carries every ConfigIssue
    ├── DeviceError          a field device could not be read (device id, address, cause)
    │   ├── DeviceOffline    connection refused, reset or timed out
    │   └── DeviceException  the device answered with a Modbus exception code
    ├── ReadsStopped         a read was not sent: the gateway is stopping (not a device fault)
    └── BrokerError          the MQTT broker connection failed or was lost (normal weather)

Library errors (pymodbus, aiomqtt, influxdb-client) are mapped to these once, at the boundary,
with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules.yamlfile import short_repr

__all__ = [
    "BrokerError",
    "ConfigError",
    "ConfigIssue",
    "DeviceError",
    "DeviceException",
    "DeviceOffline",
    "GatewayError",
    "ReadsStopped",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where, what is wrong, and the offending value."""

    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}: {self.message} (got {short_repr(self.value)})"


class ConfigError(GatewayError):
    """A site file or profile is wrong. ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class DeviceError(GatewayError):
    """A field device could not be read."""

    def __init__(self, device: str, message: str, *, address: int | None = None) -> None:
        self.device = device
        self.address = address
        where = f" at address {address}" if address is not None else ""
        super().__init__(f"{device}{where}: {message}")


class DeviceOffline(DeviceError):
    """The device did not answer: refused, reset, or timed out."""


class DeviceException(DeviceError):
    """The device answered with a Modbus exception response."""

    def __init__(
        self, device: str, message: str, *, address: int | None = None, code: int = 0
    ) -> None:
        self.code = code
        super().__init__(device, message, address=address)


class ReadsStopped(GatewayError):
    """A read was not sent because the link stopped taking requests (the gateway is stopping).

    Not a :class:`DeviceError`: the device did nothing wrong and must not be marked offline."""

    def __init__(self, device: str) -> None:
        self.device = device
        super().__init__(f"{device}: not read, the gateway is stopping")


class BrokerError(GatewayError):
    """The MQTT broker refused or dropped the connection, or it failed while in use.

    Normal weather: the publisher reconnects (to the next node of a cluster) and replays."""
