"""MQTT payloads of telemetry and device status (the contract: README.md's topic table)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fieldmodel.quality import BAD, GOOD, MAINTENANCE, QUALITY_NAMES
from gateway.messages import json_payload

if TYPE_CHECKING:
    from gateway.points import DeviceRows

__all__ = [
    "device_status_payload",
    "telemetry_doc",
]


def telemetry_doc(
    dev: DeviceRows,
    ts_ms: int,
    values: npt.NDArray[np.float64],
    good: npt.NDArray[np.bool_],
    *,
    maintenance: bool = False,
) -> dict[str, Any]:
    """The telemetry document: values by point name (``None`` when bad) and their quality
    (``"maintenance"`` instead of ``"good"`` while the device is in maintenance)."""
    vals: dict[str, Any] = {}
    qual: dict[str, str] = {}
    ok_name = QUALITY_NAMES[MAINTENANCE if maintenance else GOOD]
    bad_name = QUALITY_NAMES[BAD]
    for name, v, ok, integer in zip(
        dev.names, values.tolist(), good.tolist(), dev.integer.tolist(), strict=True
    ):
        if ok:
            vals[name] = int(v) if integer else v
            qual[name] = ok_name
        else:
            vals[name] = None
            qual[name] = bad_name
    return {"ts": ts_ms, "values": vals, "quality": qual}


def device_status_payload(
    ts_ms: int,
    online: bool,
    error: str | None,
    latency_ms: float | None,
    errors: int,
    *,
    maintenance: dict[str, Any] | None = None,
) -> bytes:
    """The retained ``P/{device}/status``; ``maintenance`` is ``{"user", "reason", "since",
    "until"}`` (ms) while the device is in maintenance, else null."""
    lat = None if latency_ms is None or math.isnan(latency_ms) else round(latency_ms, 3)
    return json_payload(
        {
            "ts": ts_ms,
            "online": online,
            "error": error,
            "latency_ms": lat,
            "errors": errors,
            "maintenance": maintenance,
        }
    )
