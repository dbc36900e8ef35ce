"""The telemetry record and both of its encoders against the contracts (DESIGN.md: the
``P/{device}/telemetry`` payload and the InfluxDB line of a profile's measurement).

The references below restate the contracts as plainly as possible (a document of values by
name, ``null`` when not read, integers for integer points, quality names; one line field per
read point, ``Ni`` for integer points, Python's float repr otherwise) and the encoders must match
them byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fieldmodel.model import Device
from fieldmodel.quality import BAD, GOOD, MAINTENANCE
from fieldmodel.registers import is_integer_point
from gateway.messages import json_payload
from gateway.points import PointTable
from gateway.sinks.lineprotocol import TelemetryEncoder
from gateway.telemetry import (
    TelemetryPayload,
    TelemetrySample,
    sample_from_doc,
    telemetry_payload,
)
from tests.gateway.sinks.devices import TS, make_device


def reference_doc(
    device: Device, values: list[float], good: list[bool], *, maintenance: bool
) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    qual: dict[str, str] = {}
    for point, v, ok in zip(device.points, values, good, strict=True):
        vals[point.name] = (int(v) if is_integer_point(point) else v) if ok else None
        qual[point.name] = ("maintenance" if maintenance else "good") if ok else "bad"
    return {"ts": TS, "values": vals, "quality": qual}


def reference_line(
    device: Device, site: str, values: list[float], good: list[bool], *, maintenance: bool
) -> str | None:
    tags = {"site": site, "device": device.id, **device.tags}
    if maintenance:
        tags["quality"] = "maintenance"
    head = device.measurement + "".join(f",{k}={v}" for k, v in sorted(tags.items()) if v)
    fields = []
    for point, v, ok in zip(device.points, values, good, strict=True):
        if not ok or not math.isfinite(v):
            continue
        if is_integer_point(point):
            if -(2**63) <= v < 2**63:
                fields.append(f"{point.name}={int(v)}i")
        else:
            fields.append(f"{point.name}={v!r}")
    return f"{head} {','.join(fields)} {TS}" if fields else None


def poll_of(device: Device) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """A decoded poll of the gas detector: floats, scaled integers, bits, one failed point."""
    by_name = {
        "status": 3.0,  # uint16 code: integer
        "ch4": 0.42,  # int16 scaled 0.01: float
        "co": 12.0,  # uint16: integer
        "o2": 20.900000000000002,  # scaled: float, repr kept exactly
        "h2s": math.nan,  # failed: bad, NaN
        "lel": 3.5,
        "temperature": -12.5,
        "fault": 0.0,  # bool: 0/1 integer
        "alarm_low": 1.0,
        "alarm_high": 0.0,
        "ch4_range": 4.0,  # scaled uint16: a float even when whole
        "ch4_precise": 1e-7,
        "runtime_h": 4_294_967_295.0,  # uint32 at its top
        "supply_v": 23.999999999999996,
        "feed_on": 1.0,
        "relay_cut": 0.0,
    }
    names = [p.name for p in device.points]
    assert set(names) == set(by_name), "the gas detector profile changed: update this test"
    values = np.array([by_name[n] for n in names], dtype=np.float64)
    return values, np.isfinite(values)


@pytest.mark.parametrize("maintenance", [False, True])
def test_a_poll_encodes_as_the_contract_says(maintenance: bool) -> None:
    device = make_device(area="face 1", zone="综采")
    table = PointTable([device])
    rows = table.devices[0]
    values, good = poll_of(device)
    sample = TelemetrySample.from_poll(rows, TS, values, good, maintenance=maintenance)
    want_doc = reference_doc(device, values.tolist(), good.tolist(), maintenance=maintenance)
    payload = TelemetryPayload(rows.names, rows.integer).encode(sample)
    assert payload == json_payload(want_doc)
    assert payload == telemetry_payload(sample)
    assert json.loads(payload)["values"]["h2s"] is None
    assert json.loads(payload)["values"]["co"] == 12 and b'"co":12,' in payload
    assert json.loads(payload)["quality"]["h2s"] == "bad"

    line = TelemetryEncoder(device, "xinmi-mine-01").encode_sample(sample)
    want_line = reference_line(
        device, "xinmi-mine-01", values.tolist(), good.tolist(), maintenance=maintenance
    )
    # the reference does no escaping: compare with the tag values escaped by hand
    assert want_line is not None and line is not None
    assert line == want_line.replace("area=face 1", r"area=face\ 1")
    assert ",co=12i," in line and "h2s" not in line and ",ch4_range=4.0," in line
    assert line.startswith("gas,area=face\\ 1,device=face1-gas,")
    assert (",quality=maintenance" in line) is maintenance


def test_the_mask_decides_integer_fields_not_the_names() -> None:
    device = make_device()
    rows = PointTable([device]).devices[0]
    values, good = poll_of(device)
    flipped = dataclasses.replace(rows, integer=~rows.integer)
    sample = TelemetrySample.from_poll(flipped, TS, values, good)
    doc = json.loads(telemetry_payload(sample))
    assert doc["values"]["co"] == 12.0 and isinstance(doc["values"]["co"], float)
    assert doc["values"]["ch4_range"] == 4 and isinstance(doc["values"]["ch4_range"], int)
    line = TelemetryEncoder(device, "s1").encode_sample(sample)
    assert line is not None and ",co=12.0," in line and ",ch4_range=4i," in line


def test_no_read_point_is_no_line_and_every_value_null() -> None:
    device = make_device()
    rows = PointTable([device]).devices[0]
    n = len(rows.names)
    values = np.full(n, np.nan)
    sample = TelemetrySample.from_poll(rows, TS, values, np.zeros(n, bool))
    doc = json.loads(telemetry_payload(sample))
    assert set(doc["values"].values()) == {None}
    assert set(doc["quality"].values()) == {"bad"}
    assert TelemetryEncoder(device, "s1").encode_sample(sample) is None


def test_a_non_finite_value_marked_read_is_null_in_the_payload_and_left_out_of_the_line() -> None:
    names = ("a", "b")
    sample = TelemetrySample(
        device="d",
        names=names,
        integer=np.zeros(2, bool),
        ts_ms=TS,
        values=np.array([math.inf, 1.5]),
        quality=np.array([GOOD, GOOD], dtype=np.uint8),
    )
    assert telemetry_payload(sample) == (
        b'{"ts":%d,"values":{"a":null,"b":1.5},"quality":{"a":"good","b":"good"}}' % TS
    )
    enc = TelemetryEncoder.without_config("m", "s", "d", {})
    assert enc.encode_sample(sample) == f"m,device=d,site=s b=1.5 {TS}"


def test_integers_beyond_int64_are_json_integers_but_no_line_field() -> None:
    names = ("big", "small")
    sample = TelemetrySample(
        device="d",
        names=names,
        integer=np.ones(2, bool),
        ts_ms=TS,
        values=np.array([2.0**64 - 2048, -3.0]),
        quality=np.array([GOOD, GOOD], dtype=np.uint8),
    )
    assert json.loads(telemetry_payload(sample))["values"] == {"big": 2**64 - 2048, "small": -3}
    enc = TelemetryEncoder.without_config("m", "s", "d", {})
    assert enc.encode_sample(sample) == f"m,device=d,site=s small=-3i {TS}"


def test_names_are_escaped_for_json_and_for_the_line() -> None:
    names = ('say "hi"', "温度 a,b=c")
    sample = TelemetrySample(
        device="d",
        names=names,
        integer=np.zeros(2, bool),
        ts_ms=TS,
        values=np.array([1.0, 2.0]),
        quality=np.zeros(2, np.uint8),
    )
    doc = {
        "ts": TS,
        "values": dict(zip(names, [1.0, 2.0], strict=True)),
        "quality": dict.fromkeys(names, "good"),
    }
    assert telemetry_payload(sample) == json_payload(doc)
    enc = TelemetryEncoder.without_config("m", "s", "d", {})
    assert (
        enc.encode_sample(sample) == f'm,device=d,site=s say\\ "hi"=1.0,温度\\ a\\,b\\=c=2.0 {TS}'
    )


@pytest.mark.parametrize("maintenance", [False, True])
def test_a_received_payload_becomes_the_same_record_and_the_same_line(maintenance: bool) -> None:
    """The platform's path: payload -> document -> record -> line, equal to the gateway's."""
    device = make_device(area="a1")
    rows = PointTable([device]).devices[0]
    values, good = poll_of(device)
    sample = TelemetrySample.from_poll(rows, TS, values, good, maintenance=maintenance)
    doc = json.loads(telemetry_payload(sample))
    enc = TelemetryEncoder(device, "s1")
    again = sample_from_doc(
        device.id,
        doc["ts"],
        doc["values"],
        doc["quality"],
        enc.integer_fields,
        maintenance=maintenance,
    )
    assert again.names == rows.names
    assert np.array_equal(again.integer, rows.integer)
    assert np.array_equal(again.quality, sample.quality)
    assert enc.encode_sample(again) == enc.encode_sample(sample)
    assert enc.encode(doc["ts"], doc["values"], doc["quality"], maintenance=maintenance) == (
        enc.encode_sample(sample)
    )


def test_from_poll_shares_the_rows_and_sets_quality_codes() -> None:
    rows = PointTable([make_device()]).devices[0]
    n = len(rows.names)
    good = np.arange(n) % 3 != 1
    values = np.where(good, 1.0, np.nan)
    plain = TelemetrySample.from_poll(rows, TS, values, good)
    assert plain.names is rows.names and plain.integer is rows.integer and plain.values is values
    assert plain.device == "face1-gas" and plain.quality.dtype == np.uint8
    assert plain.quality.tolist() == [GOOD if g else BAD for g in good] and not plain.maintenance
    held = TelemetrySample.from_poll(rows, TS, values, good, maintenance=True)
    assert held.quality.tolist() == [MAINTENANCE if g else BAD for g in good] and held.maintenance
