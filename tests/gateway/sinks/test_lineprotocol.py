"""Line-protocol encoding: escaping, integer vs float fields, skipped values, the four kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldmodel.registers import is_integer_point
from gateway.config import BUILTIN_PROFILES, load_profile
from gateway.sinks.lineprotocol import (
    ALARM_STATE_CODES,
    LineEncoder,
    TelemetryEncoder,
    alarm_line,
    device_status_line,
    escape_key,
    escape_measurement,
    format_float,
    format_int,
    gateway_line,
)
from tests.gateway.sinks.devices import TS, make_device


def split_line(line: str) -> tuple[str, dict[str, str], int]:
    """(series key, fields, ts) of a line whose keys need no escaping."""
    series, fields, ts = line.split(" ")
    return series, dict(f.split("=", 1) for f in fields.split(",")), int(ts)


# ---------------------------------------------------------------- escaping


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("face-1", "face-1"),
        ("face 1", r"face\ 1"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ("back\\slash", "back\\\\slash"),
        ("line\nbreak", r"line\nbreak"),
        ("综采工作面", "综采工作面"),
    ],
)
def test_escape_key(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


def test_escape_measurement_keeps_equals_signs() -> None:
    assert escape_measurement("a b,c=d") == r"a\ b\,c=d"


def test_device_tags_are_escaped_sorted_and_empty_ones_left_out() -> None:
    dev = make_device(area="face 1,east", zone="综采", empty="")
    enc = TelemetryEncoder(dev, "xinmi-mine-01")
    assert enc.prefix == r"gas,area=face\ 1\,east,device=face1-gas,site=xinmi-mine-01,zone=综采"


# ---------------------------------------------------------------- field types


def test_integer_points_per_profile() -> None:
    kinds = {p.name: is_integer_point(p) for p in load_profile("gas_detector").points}
    assert kinds["status"] is True  # uint16, unscaled: a code
    assert kinds["co"] is True  # uint16 ppm, unscaled
    assert kinds["fault"] is True  # bool -> 0/1
    assert kinds["runtime_h"] is True  # uint32, unscaled
    assert kinds["ch4"] is False  # int16 * 0.01
    assert kinds["temperature"] is False  # offset -50
    assert kinds["ch4_precise"] is False  # float32
    crane = {p.name: is_integer_point(p) for p in load_profile("tower_crane").points}
    assert crane["hoist_cycles"] is True
    assert crane["wind_ms"] is False


def test_format_float_and_int() -> None:
    assert format_float(0.42) == "0.42"
    assert format_float(3) == "3.0"
    assert format_float(1e-5) == "1e-05"
    assert format_float(np.float64(1.5)) == "1.5"
    assert format_float(math.nan) is None
    assert format_float(math.inf) is None
    assert format_int(True) == "1i"
    assert format_int(False) == "0i"
    assert format_int(7.0) == "7i"
    assert format_int(np.uint16(65535)) == "65535i"
    assert format_int(np.int64(-3)) == "-3i"
    assert format_int(math.nan) is None
    assert format_int(2**63) is None  # uint64 past int64: InfluxDB cannot store it
    assert format_int(np.uint64(2**63 + 5)) is None
    assert format_int(2**63 - 1) == f"{2**63 - 1}i"


def test_telemetry_line_types_and_quality() -> None:
    dev = make_device(area="face-1")
    enc = LineEncoder("s1")
    values: dict[str, float | int | bool | None] = {
        "status": 1,
        "ch4": 0.42,
        "co": 12.0,  # from a float64 point table: still an integer field
        "o2": 20.9,
        "h2s": None,
        "fault": False,
        "alarm_high": True,
        "ch4_precise": math.nan,
        "lel": 3.5,
    }
    quality = dict.fromkeys(values, "good") | {"lel": "stale"}
    line = enc.telemetry(dev, TS, values, quality)
    assert line is not None
    series, fields, ts = split_line(line)
    assert series == "gas,area=face-1,device=face1-gas,site=s1"
    assert fields == {
        "status": "1i",
        "ch4": "0.42",
        "co": "12i",
        "o2": "20.9",
        "fault": "0i",
        "alarm_high": "1i",
    }
    assert ts == TS


def test_telemetry_without_quality_writes_every_value_and_unknown_names_as_float() -> None:
    dev = make_device()
    line = LineEncoder("s1").telemetry(dev, TS, {"ch4": 1.0, "derived_rate": 2, "flag": True})
    assert line == "gas,device=face1-gas,site=s1 ch4=1.0,derived_rate=2.0,flag=1i " + str(TS)


def test_telemetry_with_no_good_point_is_no_line() -> None:
    dev = make_device()
    enc = LineEncoder("s1")
    assert enc.telemetry(dev, TS, {"ch4": 0.4}, {"ch4": "bad"}) is None
    assert enc.telemetry(dev, TS, {"ch4": None}, {"ch4": "good"}) is None
    assert enc.telemetry(dev, TS, {}, {}) is None


def test_encoder_cache_follows_the_device_object() -> None:
    enc = LineEncoder("s1")
    a = make_device(area="a")
    b = make_device(area="b")
    assert enc.telemetry_encoder(a) is enc.telemetry_encoder(a)
    assert "area=b" in enc.telemetry_encoder(b).prefix


@pytest.mark.parametrize("profile", sorted(BUILTIN_PROFILES))
def test_every_builtin_point_encodes(profile: str) -> None:
    dev = make_device(profile, dev_id="d1")
    values = {p.name: 1 for p in dev.points}
    line = LineEncoder("s1").telemetry(dev, TS, values, dict.fromkeys(values, "good"))
    assert line is not None
    _, fields, _ = split_line(line)
    assert set(fields) == {p.name for p in dev.points}
    for p in dev.points:
        assert fields[p.name] == ("1i" if is_integer_point(p) else "1.0")


# ---------------------------------------------------------------- alarm, status, gateway


def test_alarm_line() -> None:
    line = alarm_line(
        "s1",
        TS,
        device="face1-gas",
        point="ch4",
        rule="ch4_t1",
        level="HH",
        state="UNACK_ACTIVE",
        value=1.62,
        limit=1.5,
    )
    assert line == (
        "alarm,device=face1-gas,level=HH,point=ch4,rule=ch4_t1,site=s1 "
        f"state=1i,active=1i,value=1.62,limit=1.5 {TS}"
    )


def test_alarm_state_codes_are_the_documented_ones() -> None:
    assert dict(ALARM_STATE_CODES) == {
        "NORMAL": 0,
        "UNACK_ACTIVE": 1,
        "ACK_ACTIVE": 2,
        "RTN_UNACK": 3,
        "SHELVED": 4,
        "SUPPRESSED": 5,
        "OUT_OF_SERVICE": 6,
    }


@pytest.mark.parametrize(
    ("state", "active"),
    [("NORMAL", 0), ("UNACK_ACTIVE", 1), ("ACK_ACTIVE", 1), ("RTN_UNACK", 0), ("shelved", 0)],
)
def test_alarm_active_follows_state(state: str, active: int) -> None:
    kw = {"device": "d", "point": "p", "rule": "r", "level": "H", "value": None, "limit": None}
    line = alarm_line("s1", TS, state=state, **kw)  # type: ignore[arg-type]
    _, fields, _ = split_line(line)
    assert fields == {"state": f"{ALARM_STATE_CODES[state.upper()]}i", "active": f"{active}i"}


def test_alarm_active_can_be_given_and_unknown_state_raises() -> None:
    line = alarm_line(
        "s1", TS, device="d", point="p", rule="r", level="H", state="SHELVED",
        value=math.nan, limit=2.0, active=True,
    )  # fmt: skip
    assert split_line(line)[1] == {"state": "4i", "active": "1i", "limit": "2.0"}
    with pytest.raises(ValueError, match="unknown alarm state 'LATCHED'"):
        alarm_line(
            "s1", TS, device="d", point="p", rule="r", level="H", state="LATCHED",
            value=None, limit=None,
        )  # fmt: skip


def test_device_status_line() -> None:
    line = device_status_line("s1", TS, device="d1", online=True, latency_ms=12.5, errors=0)
    assert line == f"device_status,device=d1,site=s1 online=1i,latency_ms=12.5,errors=0i {TS}"
    offline = device_status_line("s1", TS, device="d1", online=False, latency_ms=None, errors=3)
    assert offline == f"device_status,device=d1,site=s1 online=0i,errors=3i {TS}"


def test_gateway_line_types() -> None:
    line = gateway_line(
        "s1",
        TS,
        {"points_per_s": 60000, "poll_lag_ms": 3.25, "outbox_depth": 12.0, "extra": 1, "x": None},
    )
    assert line == (
        f"gateway,site=s1 points_per_s=60000.0,poll_lag_ms=3.25,outbox_depth=12i,extra=1.0 {TS}"
    )
    assert gateway_line("s1", TS, {"poll_lag_ms": math.nan}) is None


# ---------------------------------------------------------------- properties

tag_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=20,
)


def unescape(text: str) -> str:
    out, i = [], 0
    mapping = {"n": "\n", "r": "\r", "t": "\t"}
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(mapping.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


@given(key=tag_text, value=tag_text)
def test_escaped_tags_split_back_to_the_original(key: str, value: str) -> None:
    line = alarm_line(
        "s1", TS, device=value, point=key, rule="r", level="H", state="NORMAL",
        value=None, limit=None,
    )  # fmt: skip
    series, fields, ts = split_unescaped(line, " ")
    assert ts == str(TS)
    assert fields == "state=0i,active=0i"
    tags = {
        unescape(k): unescape(v)
        for k, v in (split_unescaped(part, "=") for part in split_unescaped(series, ",")[1:])
    }
    assert tags["device"] == value
    assert tags["point"] == key


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_round_trip_or_are_skipped(value: float) -> None:
    text = format_float(value)
    if math.isfinite(value):
        assert text is not None
        assert float(text) == value
    else:
        assert text is None
