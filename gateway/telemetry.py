"""MQTT payloads and topics, per the contract in DESIGN.md."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from fieldmodel.quality import BAD, GOOD, MAINTENANCE, QUALITY_NAMES

if TYPE_CHECKING:  # (the site config imports this module for RESERVED_DEVICE_IDS)
    from gateway.points import DeviceRows

__all__ = [
    "RESERVED_DEVICE_IDS",
    "Topics",
    "device_status_payload",
    "encode_doc",
    "json_payload",
    "telemetry_doc",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


#: First levels of the topic tree under ``P`` that are not devices. A device's topics are
#: ``P/{device}/...``, so a device id equal to one of these would publish into that subtree
#: (``gateway`` overwrites the gateway status, ``cmd`` is answered as a command): the site config
#: refuses them. Add the first level of every new topic here.
RESERVED_DEVICE_IDS: Final = frozenset(
    {"gateway", "cmd", "alarms", "events", "interlock", "report", "rescue"}
)


class Topics:
    """Topic names under ``P = {topic_prefix}/{site_id}``."""

    def __init__(self, prefix: str, site_id: str) -> None:
        self.base = f"{prefix.rstrip('/')}/{site_id}"
        self.gateway_status = f"{self.base}/gateway/status"
        self.events_alarm = f"{self.base}/events/alarm"
        self.cmd_ack = f"{self.base}/cmd/alarm/ack"
        self.cmd_shelve = f"{self.base}/cmd/alarm/shelve"
        self.cmd_unshelve = f"{self.base}/cmd/alarm/unshelve"
        self.cmd_out_of_service = f"{self.base}/cmd/alarm/out_of_service"
        self.cmd_return_to_service = f"{self.base}/cmd/alarm/return_to_service"
        self.cmd_filter = f"{self.base}/cmd/#"
        self.cmd_reply = f"{self.base}/cmd/reply"
        self.cmd_maintenance = f"{self.base}/cmd/device/maintenance"
        self.cmd_maintenance_end = f"{self.base}/cmd/device/maintenance/end"
        self.cmd_rescue_arrive = f"{self.base}/cmd/rescue/arrive"
        self.cmd_rescue_release = f"{self.base}/cmd/rescue/release"
        self.events_maintenance = f"{self.base}/events/maintenance"
        self.report_daily = f"{self.base}/report/daily"

    def telemetry(self, device: str) -> str:
        return f"{self.base}/{device}/telemetry"

    def status(self, device: str) -> str:
        return f"{self.base}/{device}/status"

    def alarm(self, device: str, point: str, rule: str) -> str:
        return f"{self.base}/alarms/{device}/{point}/{rule}"


def encode_doc(doc: dict[str, Any]) -> bytes:
    return _dumps(doc).encode()


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
    return _dumps(
        {
            "ts": ts_ms,
            "online": online,
            "error": error,
            "latency_ms": lat,
            "errors": errors,
            "maintenance": maintenance,
        }
    ).encode()


def json_payload(obj: Any) -> bytes:
    return _dumps(obj).encode()
