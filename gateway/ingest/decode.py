"""A site's MQTT messages, as they arrive on the platform's NATS subjects, to line protocol.

The MQTT topic ``{prefix}/{site}/{device}/telemetry`` is the NATS subject
``{prefix}.{site}.{device}.telemetry``. What is written, and how, is exactly what the gateway's
own sink writes for the same record (one encoder, :mod:`gateway.sinks.lineprotocol`):

==================================  ===============================================================
subject (after the prefix)          line
==================================  ===============================================================
``{site}.{device}.telemetry``       the profile's measurement, one field per good point; device
                                    tags and field types from the site file
``{site}.{device}.status``          ``device_status``
``{site}.events.alarm``             ``alarm``, one per transition (``"type": "transition"``)
``{site}.gateway.status``           ``gateway`` (the fields the status carries)
anything else                       nothing: retained alarm states (the transitions carry the same),
                                    commands and replies, interlocks, reports
==================================  ===============================================================

A device whose site file the worker does not have is still written, so nothing is lost: under
the measurement ``unregistered`` with tags ``site`` and ``device``, field types as in the JSON
(integers stay integers), and counted, so the operator adds the site file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from fieldmodel.model import Device
from gateway.config import SiteConfig
from gateway.sinks.lineprotocol import (
    MAINTENANCE,
    LineEncoder,
    TelemetryEncoder,
    alarm_line,
    alarm_state,
    device_status_line,
    gateway_line,
)
from gateway.topics import EVENTS_ALARM, GATEWAY_STATUS, RESERVED_DEVICE_IDS, STATUS, TELEMETRY

__all__ = ["UNREGISTERED_MEASUREMENT", "Decoded", "PlatformDecoder"]

log = logging.getLogger(__name__)

UNREGISTERED_MEASUREMENT: Final = "unregistered"
# the two site-level topics written, as (first, last) subject tokens after the site
_GATEWAY_STATUS: Final = tuple(GATEWAY_STATUS.split("/"))
_EVENTS_ALARM: Final = tuple(EVENTS_ALARM.split("/"))

#: ``gateway`` line fields taken from the retained gateway status: line field <- status key.
GATEWAY_STATUS_FIELDS: Final[Mapping[str, str]] = {
    "points_per_s": "points_per_s",
    "poll_lag_ms": "poll_lag_ms",
    "outbox_depth": "outbox_depth",
    "outbox_dropped": "outbox_dropped",
    "devices_online": "devices_online",
    "devices_total": "devices",
}

Outcome = Literal["line", "skipped", "invalid"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one message becomes: a line, nothing to write (``skipped``), or ``invalid`` (a
    payload that is not the contract's JSON; ``reason`` says why)."""

    outcome: Outcome
    line: str | None = None
    reason: str = ""


_SKIP: Final = Decoded("skipped")


@dataclass
class _Site:
    encoder: LineEncoder
    devices: dict[str, Device] = field(default_factory=dict)


class PlatformDecoder:
    """Decodes messages of every site under one topic prefix; keeps an encoder per device."""

    def __init__(self, sites: Iterable[SiteConfig], topic_prefix: str = "hazard") -> None:
        self.prefix_tokens = tuple(topic_prefix.split("/"))
        self.subject_prefix = ".".join(self.prefix_tokens)
        self._sites: dict[str, _Site] = {}
        for site in sites:
            known = _Site(LineEncoder(site.site.id), {d.id: d for d in site.devices})
            self._sites[site.site.id] = known
        self._unregistered: dict[tuple[str, str], TelemetryEncoder] = {}
        self.unregistered_messages = 0

    @property
    def subjects(self) -> str:
        """The stream's subject filter: everything under the prefix."""
        return f"{self.subject_prefix}.>"

    def decode(self, subject: str, payload: bytes) -> Decoded:
        tokens = subject.split(".")
        n = len(self.prefix_tokens)
        if tuple(tokens[:n]) != self.prefix_tokens or len(tokens) < n + 3:
            return _SKIP
        site_id, first, kind = tokens[n], tokens[n + 1], tokens[-1]
        rest = len(tokens) - n
        if rest == 3 and (first, kind) == _GATEWAY_STATUS:
            return self._with_doc(payload, lambda doc: self._gateway(site_id, doc))
        if rest == 3 and (first, kind) == _EVENTS_ALARM:
            return self._with_doc(payload, lambda doc: self._alarm(site_id, doc))
        if rest != 3 or first in RESERVED_DEVICE_IDS:
            return _SKIP
        if kind == TELEMETRY:
            return self._with_doc(payload, lambda doc: self._telemetry(site_id, first, doc))
        if kind == STATUS:
            return self._with_doc(payload, lambda doc: self._status(site_id, first, doc))
        return _SKIP

    # ------------------------------------------------------------------ per kind

    @staticmethod
    def _with_doc(payload: bytes, make: Any) -> Decoded:
        if not payload:
            return _SKIP  # an empty retained message deletes state: nothing to write
        try:
            doc = _loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return Decoded("invalid", reason=f"not JSON: {exc}")
        if not isinstance(doc, dict):
            return Decoded("invalid", reason="payload is not a JSON object")
        try:
            line = make(doc)
        except (KeyError, TypeError, ValueError) as exc:
            return Decoded("invalid", reason=f"{type(exc).__name__}: {exc}")
        return Decoded("line", line) if line is not None else _SKIP

    def _telemetry(self, site_id: str, device_id: str, doc: dict[str, Any]) -> str | None:
        ts, values, quality = _ts(doc), doc["values"], doc.get("quality")
        if not isinstance(values, dict) or not (quality is None or isinstance(quality, dict)):
            raise TypeError("values and quality must be objects")
        # a device in maintenance (calibration) reports its points as "maintenance": the gateway
        # writes them on a line tagged quality=maintenance, and so does the platform
        maintenance = quality is not None and MAINTENANCE in quality.values()
        site = self._sites.get(site_id)
        device = site.devices.get(device_id) if site is not None else None
        if site is not None and device is not None:
            return site.encoder.telemetry(device, ts, values, quality, maintenance=maintenance)
        encoder = self._unregistered.get((site_id, device_id))
        if encoder is None:
            log.warning(
                "telemetry of %s/%s, which no site file names: written as %r until it is added",
                site_id,
                device_id,
                UNREGISTERED_MEASUREMENT,
            )
            integer = {k: isinstance(v, int) for k, v in values.items() if v is not None}
            encoder = TelemetryEncoder.without_config(
                UNREGISTERED_MEASUREMENT, site_id, device_id, integer
            )
            self._unregistered[(site_id, device_id)] = encoder
        self.unregistered_messages += 1
        return encoder.encode(ts, values, quality, maintenance=maintenance)

    @staticmethod
    def _status(site_id: str, device_id: str, doc: dict[str, Any]) -> str:
        latency = doc.get("latency_ms")
        return device_status_line(
            site_id,
            _ts(doc),
            device=device_id,
            online=bool(doc["online"]),
            latency_ms=float(latency) if latency is not None else None,
            errors=int(doc.get("errors") or 0),
        )

    @staticmethod
    def _alarm(site_id: str, doc: dict[str, Any]) -> str | None:
        if doc.get("type", "transition") != "transition":
            return None  # flood start / end: announced, not an alarm's state
        value, limit = doc.get("value"), doc.get("limit")
        return alarm_line(
            site_id,
            _ts(doc),
            device=str(doc["device"]),
            point=str(doc["point"]),
            rule=str(doc["rule"]),
            level=str(doc["level"]),
            state=alarm_state(str(doc["to"])),
            value=float(value) if value is not None else None,
            limit=float(limit) if limit is not None else None,
        )

    @staticmethod
    def _gateway(site_id: str, doc: dict[str, Any]) -> str | None:
        if not doc.get("online", False):
            return None  # the will (or a clean stop): no counters to write
        fields = {name: doc.get(key) for name, key in GATEWAY_STATUS_FIELDS.items()}
        return gateway_line(site_id, _ts(doc), fields)


def _loads(payload: bytes) -> Any:
    """The JSON document of a payload: orjson (a quarter of the standard parser's time on a
    50-point telemetry message), and the standard parser for what orjson refuses but Python's
    json accepts (``NaN``, integers beyond 64 bits), so the accepted documents stay the same."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


def _ts(doc: Mapping[str, Any]) -> int:
    ts = doc["ts"]
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise TypeError(f"ts must be integer epoch milliseconds, got {ts!r}")
    return ts
