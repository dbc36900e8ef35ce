"""InfluxDB line protocol for the gateway's four record kinds: pure, fast, no I/O.

The schema is the contract with the Grafana boards (the full table with types is in
docs/influx.md):

==========================  ===============================  ====================================
measurement                 tags                             fields
==========================  ===============================  ====================================
profile ``measurement``     site, device, + device tags      one per *good* point
``alarm``                   site, device, point, rule,       state (int code), active (0/1 int),
                            level                            value, limit (float)
``device_status``           site, device                     online (0/1 int), latency_ms (float),
                                                             errors (int)
``gateway``                 site                             see :data:`GATEWAY_FIELDS`
``exposure``                site, device, point, rule,       see :data:`EXPOSURE_FIELDS` (one
                            substance                        line per point per closed shift)
``rescue``                  site, device                     see :data:`RESCUE_FIELDS` (one line
                                                             per change of a rescue record)
==========================  ===============================  ====================================

Field types are fixed per point so a series never changes type (InfluxDB rejects a write whose
field type differs from the one already stored):

* ``bool`` points are integers ``0i``/``1i``;
* integer register types (``int16`` … ``uint64``) with ``scale`` 1 and ``offset`` 0 are integers;
* everything else (float types, scaled or offset integers) is a float
  (:func:`fieldmodel.registers.is_integer_point`).

NaN and infinities are skipped (line protocol cannot carry them), as are integers outside int64.
Timestamps are Unix epoch milliseconds: write with precision ``ms``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from fieldmodel.model import Device, Profile
from fieldmodel.quality import GOOD, QUALITY_NAMES
from fieldmodel.quality import MAINTENANCE as MAINTENANCE_QUALITY
from fieldmodel.registers import is_integer_point
from gateway.config import RESERVED_TAGS
from gateway.telemetry import TelemetrySample, sample_from_doc
from rules import DAILY_FIELDS, ShiftExposure, State

__all__ = [
    "ALARM_STATE_CODES",
    "DEVICE_STATUS_FIELDS",
    "EXPOSURE_FIELDS",
    "GATEWAY_FIELDS",
    "MAINTENANCE",
    "LineEncoder",
    "MeasurementSchema",
    "TelemetryEncoder",
    "alarm_line",
    "alarm_state",
    "daily_line",
    "device_status_line",
    "escape_key",
    "escape_measurement",
    "exposure_lines",
    "format_float",
    "format_int",
    "gateway_line",
    "rescue_line",
    "schema_for",
]

#: ISA-18.2 alarm states by name, as the ``state`` field of ``alarm`` stores them: the engine's
#: codes (:attr:`rules.State.code`), for readers of the database (boards, tests).
ALARM_STATE_CODES: Final[Mapping[str, int]] = {s.value: s.code for s in State}
#: States whose condition is active (``active`` = 1 unless the caller says otherwise).
ACTIVE_STATES: Final = frozenset({State.UNACK_ACTIVE, State.ACK_ACTIVE})

#: Fields of ``alarm``: name -> "int" | "float".
ALARM_FIELDS: Final[Mapping[str, str]] = {
    "state": "int",
    "active": "int",
    "value": "float",
    "limit": "float",
}
#: Fields of ``device_status``: name -> "int" | "float".
DEVICE_STATUS_FIELDS: Final[Mapping[str, str]] = {
    "online": "int",
    "latency_ms": "float",
    "errors": "int",
}
#: Fields of ``gateway`` the boards read: name -> "int" | "float". Other numeric fields may be
#: written too (as floats), but a board may only read the ones listed here.
GATEWAY_FIELDS: Final[Mapping[str, str]] = {
    "points_per_s": "float",  # good point values decoded per second
    "poll_lag_ms": "float",  # how late polls start against their schedule (median of recent polls)
    "outbox_depth": "int",  # entries waiting in the durable outbox, all streams
    "outbox_dropped": "int",  # telemetry entries dropped at the outbox bound since start
    "devices_online": "int",
    "devices_total": "int",
    "active_alarms": "int",
    "read_errors": "int",  # failed device reads since start
    "mqtt_connected": "int",  # 0/1
    "influx_buffered": "int",  # lines held by the time-series sink
    "influx_dropped": "int",  # lines dropped at the sink's bound since start
    "influx_rejected": "int",  # lines the server refused (HTTP 400) since start
    "uptime_s": "float",
}
#: Fields of ``exposure`` (one line per exposure rule and point per closed shift, at the shift's
#: start): name -> "int" | "float". Concentrations and limits are in the point's unit.
EXPOSURE_FIELDS: Final[Mapping[str, str]] = {
    "twa": "float",  # the shift's dose / 8 h (GBZ 2.1-2019 8-h TWA of the working day)
    "twa_pct": "float",  # twa in % of PC-TWA (absent for a MAC-only substance)
    "stel_max": "float",  # highest 15-min TWA in the shift
    "peak": "float",  # highest reading in the shift
    "excursions": "int",  # excursions above 3 × PC-TWA begun in the shift
    "measured_s": "float",  # seconds with good readings
    "shift_s": "float",  # length of the shift
    "pc_twa": "float",  # limits as applied (absent when the substance has none)
    "pc_stel": "float",
    "mac": "float",
}
EXPOSURE_TAGS: Final = frozenset({"site", "device", "point", "rule", "substance"})
#: Fields of ``rescue`` (one line each time an elevator rescue record changes: opened,
#: acknowledged, arrived, released, a target missed): name -> "int" | "float".
RESCUE_FIELDS: Final[Mapping[str, str]] = {
    "open": "int",  # 1 while the passengers are not yet released
    "stage": "int",  # last stage reached: 0 raised, 1 acknowledged, 2 arrived, 3 released
    "to_arrival_s": "float",  # from the alarm to the rescuer's arrival (or to now)
    "to_release_s": "float",  # from the alarm to the release (or to now)
    "overdue_arrival": "int",  # 1 when the arrival target is missed
    "overdue_release": "int",
}
RESCUE_TAGS: Final = frozenset({"site", "device"})
#: Tags every telemetry line carries (device tags come on top, but vary by site).
TELEMETRY_TAGS: Final = frozenset({"site", "device"})
ALARM_TAGS: Final = frozenset({"site", "device", "point", "rule", "level"})
DEVICE_STATUS_TAGS: Final = frozenset({"site", "device"})
GATEWAY_TAGS: Final = frozenset({"site"})
#: The daily report (24 h): one line per sensor and day, stamped with the day's local midnight.
DAILY_TAGS: Final = frozenset({"site", "device", "point"})

#: The ``quality`` tag of the lines of a device in maintenance (calibration): its quality name.
MAINTENANCE: Final = QUALITY_NAMES[MAINTENANCE_QUALITY]
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_ESCAPE_MEASUREMENT: Final = str.maketrans(
    {"\\": "\\\\", ",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_ESCAPE_KEY: Final = str.maketrans(
    {"\\": "\\\\", ",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_float_repr: Final = float.__repr__
_isfinite: Final = math.isfinite


def escape_measurement(name: str) -> str:
    """Escape a measurement name: commas, spaces, backslashes and control characters."""
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key: commas, equals signs, spaces, backslashes.

    Newlines, carriage returns and tabs become ``\\n``, ``\\r``, ``\\t`` (two characters each), as
    influxdb-client writes them: line protocol has no way to carry them raw.
    """
    return text.translate(_ESCAPE_KEY)


def format_float(value: float | int | bool) -> str | None:
    """A float field value, or None for NaN and infinities."""
    v = float(value)
    if not _isfinite(v):
        return None
    return _float_repr(v)


def format_int(value: float | int | bool) -> str | None:
    """An integer field value (``42i``), or None for NaN, infinities and values outside int64.

    A non-integral float (which an integer point should never carry) is rounded half to even.
    """
    if isinstance(value, int):  # bool and int
        n = int(value)
    elif isinstance(value, float):
        if not _isfinite(value):
            return None
        n = round(value)
    else:  # numpy scalars: integers exactly, floats via float
        try:
            n = operator.index(value)
        except TypeError:
            v = float(value)
            if not _isfinite(v):
                return None
            n = round(v)
    if n < _INT64_MIN or n > _INT64_MAX:
        return None
    return f"{n}i"


def _tag_set(tags: Iterable[tuple[str, str]]) -> str:
    """``,k=v,k2=v2`` sorted by key (InfluxDB's preferred order); empty values are left out."""
    return "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags) if v != "" and k != ""
    )


def _line(prefix: str, fields: list[str], ts_ms: int) -> str | None:
    if not fields:
        return None
    return f"{prefix} {','.join(fields)} {int(ts_ms)}"


class TelemetryEncoder:
    """Encodes one device's telemetry records (:class:`~gateway.telemetry.TelemetrySample`);
    built once per device, reused per record.

    Per record it formats each written point once (the field keys are escaped once per device),
    so ~60 fields cost a few tens of microseconds.
    """

    __slots__ = (
        "_key_list",
        "_keys",
        "_names",
        "device_id",
        "integer_fields",
        "maintenance_prefix",
        "prefix",
    )

    def __init__(self, device: Device, site_id: str) -> None:
        self._setup(
            device.measurement,
            site_id,
            device.id,
            device.tags,
            {p.name: is_integer_point(p) for p in device.points},
        )

    def _setup(
        self,
        measurement: str,
        site_id: str,
        device_id: str,
        tags: Mapping[str, str],
        integer_fields: Mapping[str, bool],
    ) -> None:
        self.device_id = device_id
        tag_list = [("site", site_id), ("device", device_id)]
        tag_list.extend((k, v) for k, v in tags.items() if k not in RESERVED_TAGS)
        self.prefix = escape_measurement(measurement) + _tag_set(tag_list)
        self.maintenance_prefix = escape_measurement(measurement) + _tag_set(
            [*tag_list, ("quality", MAINTENANCE)]
        )
        #: Point name -> written as an integer, for records received as documents.
        self.integer_fields: Mapping[str, bool] = dict(integer_fields)
        self._keys: dict[str, str] = {name: escape_key(name) + "=" for name in integer_fields}
        self._names: tuple[str, ...] = ()
        self._key_list: list[str] = []

    @classmethod
    def without_config(
        cls, measurement: str, site_id: str, device_id: str, integer_fields: Mapping[str, bool]
    ) -> TelemetryEncoder:
        """An encoder for a device whose config is not at hand (a platform's ingest worker that
        has no site file for it): the measurement is given, the field types come from
        ``integer_fields`` (name -> written as an integer), there are no device tags."""
        encoder = cls.__new__(cls)
        encoder._setup(measurement, site_id, device_id, {}, integer_fields)
        return encoder

    def _field_keys(self, names: tuple[str, ...]) -> list[str]:
        """``key=`` of each name, escaped; kept for the last names seen (a device's own: the
        same tuple for every poll, an equal one for every document a platform worker decodes)."""
        if names is not self._names and names != self._names:
            keys = self._keys
            self._key_list = [keys.get(n) or escape_key(n) + "=" for n in names]
            self._names = names
        return self._key_list

    def encode_sample(self, sample: TelemetrySample) -> str | None:
        """One line with a field per read point of ``sample``, or None when no point was read.

        A point is written when its quality code is GOOD and its value finite; integer points
        (the sample's mask) as ``Ni`` (left out outside int64), the others as floats. A sample
        of a device in maintenance (calibration) writes its MAINTENANCE points instead, on a
        line tagged ``quality=maintenance``, so calibration gas never mixes into the good series.
        """
        values = sample.values
        wanted = sample.quality == (MAINTENANCE_QUALITY if sample.maintenance else GOOD)
        rows: list[int] = np.flatnonzero(wanted & np.isfinite(values)).tolist()
        if not rows:
            return None
        keys = self._field_keys(sample.names)
        numbers = values.tolist()
        integer = sample.integer.tolist()
        fields: list[str] = []
        append = fields.append
        for j in rows:
            v = numbers[j]
            if integer[j]:
                n = round(v)
                if _INT64_MIN <= n <= _INT64_MAX:
                    append(f"{keys[j]}{n}i")
            else:
                append(keys[j] + _float_repr(v))
        prefix = self.maintenance_prefix if sample.maintenance else self.prefix
        return _line(prefix, fields, sample.ts_ms)

    def encode(
        self,
        ts_ms: int,
        values: Mapping[str, float | int | bool | None],
        quality: Mapping[str, str] | None = None,
        *,
        maintenance: bool = False,
    ) -> str | None:
        """The line of a telemetry document (values and quality names by point name, as the
        MQTT payload carries them): its record (:func:`~gateway.telemetry.sample_from_doc`,
        field types from this device's points), encoded by :meth:`encode_sample`.

        A point is written when its value is not None and finite and ``quality[name]`` is
        ``"good"`` (``"maintenance"`` with ``maintenance``); with ``quality`` None every point
        with a value counts. A name that is not one of the device's points is written as a
        float (as an integer for a ``bool``).
        """
        sample = sample_from_doc(
            self.device_id, ts_ms, values, quality, self.integer_fields, maintenance=maintenance
        )
        return self.encode_sample(sample)


class LineEncoder:
    """Encodes every record kind of one site. Keeps a :class:`TelemetryEncoder` per device."""

    __slots__ = ("_telemetry", "site_id")

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        self._telemetry: dict[str, tuple[Device, TelemetryEncoder]] = {}

    def telemetry_encoder(self, device: Device) -> TelemetryEncoder:
        cached = self._telemetry.get(device.id)
        if cached is not None and cached[0] is device:
            return cached[1]
        encoder = TelemetryEncoder(device, self.site_id)
        self._telemetry[device.id] = (device, encoder)
        return encoder

    def telemetry(
        self,
        device: Device,
        ts_ms: int,
        values: Mapping[str, float | int | bool | None],
        quality: Mapping[str, str] | None = None,
        *,
        maintenance: bool = False,
    ) -> str | None:
        """See :meth:`TelemetryEncoder.encode`."""
        return self.telemetry_encoder(device).encode(
            ts_ms, values, quality, maintenance=maintenance
        )

    def alarm(
        self,
        ts_ms: int,
        *,
        device: str,
        point: str,
        rule: str,
        level: str,
        state: State | str,
        value: float | None,
        limit: float | None,
        active: bool | None = None,
    ) -> str:
        """See :func:`alarm_line`."""
        return alarm_line(
            self.site_id,
            ts_ms,
            device=device,
            point=point,
            rule=rule,
            level=level,
            state=state,
            value=value,
            limit=limit,
            active=active,
        )

    def device_status(
        self, ts_ms: int, *, device: str, online: bool, latency_ms: float | None, errors: int
    ) -> str:
        """See :func:`device_status_line`."""
        return device_status_line(
            self.site_id, ts_ms, device=device, online=online, latency_ms=latency_ms, errors=errors
        )

    def gateway(self, ts_ms: int, fields: Mapping[str, float | int | bool | None]) -> str | None:
        """See :func:`gateway_line`."""
        return gateway_line(self.site_id, ts_ms, fields)


def alarm_state(name: str) -> State:
    """The engine's state of an ISA-18.2 state name, any case (a name read from a message).

    Raises ValueError for an unknown name."""
    try:
        return State(name.upper())
    except ValueError:
        raise ValueError(
            f"unknown alarm state {name!r}; one of {', '.join(ALARM_STATE_CODES)}"
        ) from None


def alarm_line(
    site_id: str,
    ts_ms: int,
    *,
    device: str,
    point: str,
    rule: str,
    level: str,
    state: State | str,
    value: float | None,
    limit: float | None,
    active: bool | None = None,
) -> str:
    """One ``alarm`` line. ``state`` is the engine's state (its code is the ``state`` field,
    see :data:`ALARM_STATE_CODES`; a state name read from a message is taken too, any case);
    ``active`` defaults to whether the state is UNACK_ACTIVE or ACK_ACTIVE. ``value`` and
    ``limit`` are left out when None or not finite (a communication-failure alarm has neither).

    Raises ValueError for an unknown state name.
    """
    if not isinstance(state, State):
        state = alarm_state(state)
    if active is None:
        active = state in ACTIVE_STATES
    prefix = "alarm" + _tag_set(
        [("site", site_id), ("device", device), ("point", point), ("rule", rule), ("level", level)]
    )
    fields = [f"state={state.code}i", f"active={1 if active else 0}i"]
    if value is not None and (text := format_float(value)) is not None:
        fields.append("value=" + text)
    if limit is not None and (text := format_float(limit)) is not None:
        fields.append("limit=" + text)
    return f"{prefix} {','.join(fields)} {int(ts_ms)}"


def exposure_lines(site_id: str, shift: ShiftExposure) -> list[str]:
    """``exposure`` lines of one closed shift: one per exposure channel that had a good reading
    in it, stamped with the shift's start (ms). Fields without a value (NaN) are left out."""
    ts_ms = round(shift.start * 1000)
    lines: list[str] = []
    for c, device in enumerate(shift.devices):
        measured = float(shift.measured_s[c])
        if not measured > 0:
            continue
        prefix = "exposure" + _tag_set(
            [
                ("site", site_id),
                ("device", device),
                ("point", shift.points[c]),
                ("rule", shift.rules[c]),
                ("substance", shift.substances[c]),
            ]
        )
        twa, pc_twa = float(shift.twa[c]), float(shift.pc_twa[c])
        values = {
            "twa": twa,
            "twa_pct": 100.0 * twa / pc_twa if pc_twa > 0 else math.nan,
            "stel_max": float(shift.stel_max[c]),
            "peak": float(shift.peak[c]),
            "measured_s": measured,
            "shift_s": shift.end - shift.start,
            "pc_twa": pc_twa,
            "pc_stel": float(shift.pc_stel[c]),
            "mac": float(shift.mac[c]),
        }
        fields = [f"{k}={text}" for k, v in values.items() if (text := format_float(v)) is not None]
        fields.append(f"excursions={int(shift.excursions[c])}i")
        lines.append(f"{prefix} {','.join(fields)} {ts_ms}")
    return lines


def rescue_line(
    site_id: str,
    ts_ms: int,
    *,
    device: str,
    open_: bool,
    stage: int,
    to_arrival_s: float,
    to_release_s: float,
    overdue_arrival: bool,
    overdue_release: bool,
) -> str:
    """One ``rescue`` line: the state of one elevator rescue record (:mod:`gateway.rescue`)."""
    fields = [f"open={int(open_)}i", f"stage={stage}i"]
    for name, value in (("to_arrival_s", to_arrival_s), ("to_release_s", to_release_s)):
        text = format_float(value)
        if text is not None:
            fields.append(f"{name}={text}")
    fields.append(f"overdue_arrival={int(overdue_arrival)}i")
    fields.append(f"overdue_release={int(overdue_release)}i")
    prefix = "rescue" + _tag_set([("site", site_id), ("device", device)])
    return f"{prefix} {','.join(fields)} {ts_ms}"


def device_status_line(
    site_id: str, ts_ms: int, *, device: str, online: bool, latency_ms: float | None, errors: int
) -> str:
    """One ``device_status`` line; ``latency_ms`` is left out when None (no answer)."""
    prefix = "device_status" + _tag_set([("site", site_id), ("device", device)])
    fields = [f"online={1 if online else 0}i"]
    if latency_ms is not None and (text := format_float(latency_ms)) is not None:
        fields.append("latency_ms=" + text)
    if (text := format_int(errors)) is not None:
        fields.append("errors=" + text)
    return f"{prefix} {','.join(fields)} {int(ts_ms)}"


def gateway_line(
    site_id: str, ts_ms: int, fields: Mapping[str, float | int | bool | None]
) -> str | None:
    """One ``gateway`` line. Fields in :data:`GATEWAY_FIELDS` get their listed type; any other
    numeric field is written as a float (a bool as 0/1 integer). None and NaN are left out."""
    out: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        kind = GATEWAY_FIELDS.get(name)
        integer = kind == "int" if kind is not None else isinstance(value, bool)
        text = format_int(value) if integer else format_float(value)
        if text is not None:
            out.append(f"{escape_key(name)}={text}")
    return _line("gateway" + _tag_set([("site", site_id)]), out, ts_ms)


def daily_line(
    site_id: str, ts_ms: int, *, device: str, point: str, fields: Mapping[str, float | int]
) -> str | None:
    """One ``daily`` line (fields of :data:`rules.DAILY_FIELDS` with their types; NaN left out,
    e.g. the mean of a sensor with no sample)."""
    out: list[str] = []
    for name, kind in DAILY_FIELDS.items():
        value = fields.get(name)
        if value is None:
            continue
        text = format_int(value) if kind == "int" else format_float(value)
        if text is not None:
            out.append(f"{escape_key(name)}={text}")
    prefix = "daily" + _tag_set([("site", site_id), ("device", device), ("point", point)])
    return _line(prefix, out, ts_ms)


@dataclass(frozen=True, slots=True)
class MeasurementSchema:
    """What the gateway writes under one measurement: tag keys and fields with their types."""

    name: str
    tags: frozenset[str]
    fields: Mapping[str, str]  # field -> "int" | "float"


def schema_for(profiles: Iterable[Profile]) -> dict[str, MeasurementSchema]:
    """The measurements, tags and fields written for devices of these profiles, plus ``alarm``,
    ``device_status``, ``gateway`` and ``exposure``. Device tags are site-specific and not
    included: a board that must work for every site filters on ``site`` and ``device`` only."""
    out: dict[str, MeasurementSchema] = {}
    for profile in profiles:
        fields = {p.name: "int" if is_integer_point(p) else "float" for p in profile.points}
        known = out.get(profile.measurement)
        if known is not None:
            fields = {**known.fields, **fields}
        out[profile.measurement] = MeasurementSchema(profile.measurement, TELEMETRY_TAGS, fields)
    out["alarm"] = MeasurementSchema("alarm", ALARM_TAGS, ALARM_FIELDS)
    out["device_status"] = MeasurementSchema(
        "device_status", DEVICE_STATUS_TAGS, DEVICE_STATUS_FIELDS
    )
    out["gateway"] = MeasurementSchema("gateway", GATEWAY_TAGS, GATEWAY_FIELDS)
    out["daily"] = MeasurementSchema("daily", DAILY_TAGS, DAILY_FIELDS)
    out["exposure"] = MeasurementSchema("exposure", EXPOSURE_TAGS, EXPOSURE_FIELDS)
    out["rescue"] = MeasurementSchema("rescue", RESCUE_TAGS, RESCUE_FIELDS)
    return out
