"""The telemetry record of one poll and its MQTT payload; the device status payload.

One good poll becomes one :class:`TelemetrySample`: the device's point names and integer mask
(shared with the point table, not copied), the poll's timestamp, the values array and an array
of quality codes (:mod:`fieldmodel.quality`). Both encoders read it: :func:`telemetry_payload`
(``P/{device}/telemetry``, README.md's topic table) and the line-protocol
:class:`~gateway.sinks.lineprotocol.TelemetryEncoder` (the database line). The city platform's
ingest turns a received payload back into a record with :func:`sample_from_doc`.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from fieldmodel.quality import BAD, GOOD, MAINTENANCE, QUALITY_NAMES
from gateway.messages import json_payload

__all__ = [
    "TelemetryPayload",
    "TelemetrySample",
    "device_status_payload",
    "sample_from_doc",
    "telemetry_payload",
]

if TYPE_CHECKING:
    from gateway.points import DeviceRows

#: Quality name -> code; keyed by ``object`` so any hashable JSON value can be looked up.
_QUALITY_CODES: Final[dict[object, int]] = {name: code for code, name in enumerate(QUALITY_NAMES)}
_QUALITY_TEXTS: Final = tuple(json_payload(name).decode() for name in QUALITY_NAMES)
_GOOD_CODE: Final = np.uint8(GOOD)
_BAD_CODE: Final = np.uint8(BAD)
_MAINTENANCE_CODE: Final = np.uint8(MAINTENANCE)
_add: Final = operator.add


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySample:
    """One device's sample: what a poll read, as arrays aligned with ``names``.

    ``values`` are float64 (NaN where not read); ``quality`` holds one code per point: GOOD or
    BAD, or MAINTENANCE instead of GOOD while the device is in maintenance (calibration);
    ``integer`` marks the points published as integers (bool, unscaled integer types).
    """

    device: str
    names: tuple[str, ...]
    integer: npt.NDArray[np.bool_]
    ts_ms: int
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    #: The device is in maintenance: its read points carry MAINTENANCE, not GOOD.
    maintenance: bool = False

    @classmethod
    def from_poll(
        cls,
        rows: DeviceRows,
        ts_ms: int,
        values: npt.NDArray[np.float64],
        good: npt.NDArray[np.bool_],
        *,
        maintenance: bool = False,
    ) -> TelemetrySample:
        """The record of one poll of the device of ``rows`` (its names and integer mask, not
        copied): ``good`` points are GOOD (MAINTENANCE with ``maintenance``), the others BAD."""
        read = _MAINTENANCE_CODE if maintenance else _GOOD_CODE
        return cls(
            device=rows.device.id,
            names=rows.names,
            integer=rows.integer,
            ts_ms=ts_ms,
            values=values,
            quality=np.where(good, read, _BAD_CODE),
            maintenance=maintenance,
        )


@dataclass(frozen=True, slots=True)
class _Fragments:
    """The JSON text of one list of point names: ``"name":`` per point, and per quality code
    and point ``"name":"good"`` …, and the whole quality object when every point is read."""

    keys: tuple[str, ...]
    quality: tuple[tuple[str, ...], ...]
    all_good: str
    all_maintenance: str


@functools.lru_cache(maxsize=256)
def _fragments(names: tuple[str, ...]) -> _Fragments:
    keys = tuple(json_payload(name).decode() + ":" for name in names)
    quality = tuple(tuple(key + q for key in keys) for q in _QUALITY_TEXTS)
    return _Fragments(
        keys,
        quality,
        "{" + ",".join(quality[GOOD]) + "}",
        "{" + ",".join(quality[MAINTENANCE]) + "}",
    )


class TelemetryPayload:
    """Encodes one device's samples as ``P/{device}/telemetry`` payloads. The JSON text of its
    point names is built once (and shared by the devices of one profile)."""

    __slots__ = ("_fragments", "_int_rows", "integer")

    def __init__(self, names: tuple[str, ...], integer: npt.NDArray[np.bool_]) -> None:
        self.integer = integer
        self._int_rows: list[int] = np.flatnonzero(integer).tolist()
        self._fragments = _fragments(names)

    def encode(self, sample: TelemetrySample) -> bytes:
        """The payload: ``{"ts", "values", "quality"}``, values by point name (``null`` where
        not read, integers for the integer points of the sample's mask) and their quality names.

        Byte for byte what ``json_payload`` makes of that document, keys in point order, at one
        pass over the values. A value that is not finite (the decoder marks such a point bad)
        is written as ``null``.
        """
        fragments = self._fragments
        int_rows = self._int_rows
        if sample.integer is not self.integer:
            int_rows = np.flatnonzero(sample.integer).tolist()
        values = sample.values.tolist()
        codes = sample.quality
        shown = codes == (MAINTENANCE if sample.maintenance else GOOD)
        finite = np.isfinite(sample.values)
        if shown.all() and finite.all():
            for j in int_rows:
                values[j] = int(values[j])
            texts = list(map(repr, values))
            qual = fragments.all_maintenance if sample.maintenance else fragments.all_good
        else:
            hidden: list[int] = np.flatnonzero(~(shown & finite)).tolist()
            for j in hidden:
                values[j] = 0
            for j in int_rows:
                values[j] = int(values[j])
            texts = list(map(repr, values))
            for j in hidden:
                texts[j] = "null"
            by_code = fragments.quality
            qual = "{" + ",".join([by_code[q][j] for j, q in enumerate(codes.tolist())]) + "}"
        body = ",".join(map(_add, fragments.keys, texts))
        return f'{{"ts":{int(sample.ts_ms)},"values":{{{body}}},"quality":{qual}}}'.encode()


def telemetry_payload(sample: TelemetrySample) -> bytes:
    """The ``P/{device}/telemetry`` payload of one sample (see :meth:`TelemetryPayload.encode`;
    the gateway keeps one :class:`TelemetryPayload` per device instead)."""
    return TelemetryPayload(sample.names, sample.integer).encode(sample)


def sample_from_doc(
    device: str,
    ts_ms: int,
    values: Mapping[str, Any],
    quality: Mapping[str, Any] | None,
    integer: Mapping[str, bool],
    *,
    maintenance: bool = False,
) -> TelemetrySample:
    """The record of a received telemetry document (``values`` and ``quality`` by point name,
    as :func:`telemetry_payload` writes them): a point is read when its value is not null and
    its quality is ``"good"`` (``"maintenance"`` with ``maintenance``); with ``quality`` None
    every point with a value is read. ``integer`` says which names are integer points; a name
    it does not know is one when its value is a JSON ``true``/``false``.

    Raises ValueError or TypeError for a value that is not a number.

    A platform worker calls this for every message, so the common document (every quality a
    name, every name a known point) is read with C-level ``map`` calls, not a Python loop per
    point; the rest takes the loops below.
    """
    names = tuple(values)
    raw = list(values.values())
    read = MAINTENANCE if maintenance else GOOD
    array = np.array(raw, dtype=np.float64)  # a null is NaN
    codes: list[int]
    if quality is None:
        codes = [BAD if v is None else read for v in raw]
    else:
        try:
            codes = list(map(_QUALITY_CODES.get, map(quality.get, names), repeat(BAD)))
        except TypeError:  # a quality that is not a name (unhashable)
            codes = [
                _QUALITY_CODES.get(q, BAD) if isinstance(q, str) else BAD
                for q in map(quality.get, names)
            ]
        if None in raw:
            codes = [BAD if v is None else c for v, c in zip(raw, codes, strict=True)]
    flags: list[bool | None] = list(map(integer.get, names))
    if None in flags:  # names that are not the device's points: integer when a JSON bool
        flags = [isinstance(v, bool) if f is None else f for f, v in zip(flags, raw, strict=True)]
    return TelemetrySample(
        device=device,
        names=names,
        integer=np.array(flags, dtype=np.bool_),
        ts_ms=ts_ms,
        values=array,
        quality=np.array(codes, dtype=np.uint8),
        maintenance=maintenance,
    )


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
