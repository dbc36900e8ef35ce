"""The platform's decoder writes what the gateway's own sink writes for the same record."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from gateway.alarms import event_message
from gateway.config import load_site
from gateway.ingest.decode import UNREGISTERED_MEASUREMENT, PlatformDecoder
from gateway.sinks.lineprotocol import LineEncoder
from gateway.telemetry import device_status_payload
from rules import State
from rules._model import AlarmTransition
from tests.harness.paths import EXAMPLE_SITE

SITE = load_site(EXAMPLE_SITE)
SID = SITE.site.id


def subject(*levels: str) -> str:
    return ".".join(("hazard", SID, *levels))


@pytest.fixture
def decoder() -> PlatformDecoder:
    return PlatformDecoder([SITE], "hazard")


def test_telemetry_line_is_the_gateway_sinks_line(decoder: PlatformDecoder) -> None:
    encoder = LineEncoder(SID)
    for device in SITE.devices:
        values: dict[str, float | int | None] = {}
        quality: dict[str, str] = {}
        for i, p in enumerate(device.points):
            integer = p.type == "bool" or (p.type.startswith(("int", "uint")) and p.scale == 1)
            values[p.name] = (i % 2) if integer else 0.25 * i + 0.1
            quality[p.name] = "good"
        values[device.points[0].name], quality[device.points[0].name] = None, "bad"
        payload = json.dumps({"ts": 1_700_000_000_123, "values": values, "quality": quality})
        got = decoder.decode(subject(device.id, "telemetry"), payload.encode())
        want = encoder.telemetry(device, 1_700_000_000_123, values, quality)
        assert got.outcome == "line" and got.line == want, device.id
        assert want is not None and want.startswith(device.measurement + ",")


def test_device_status_line_is_the_gateway_sinks_line(decoder: PlatformDecoder) -> None:
    payload = device_status_payload(1_700_000_000_000, False, "timeout", 12.5, 3)
    got = decoder.decode(subject("face1-gas", "status"), payload)
    want = LineEncoder(SID).device_status(
        1_700_000_000_000, device="face1-gas", online=False, latency_ms=12.5, errors=3
    )
    assert got.line == want


def test_alarm_event_line_is_the_gateway_sinks_line(decoder: PlatformDecoder) -> None:
    t = AlarmTransition(
        id="face1-gas/ch4/ch4_face",
        device="face1-gas",
        point="ch4",
        rule="ch4_face",
        level="HH",
        priority=1,
        from_state=State.NORMAL,
        to_state=State.UNACK_ACTIVE,
        value=1.62,
        limit=1.5,
        message="CH4 1.62 %",
        ts=1_700_000_000.4567,
    )
    msg = event_message(f"hazard/{SID}", t)
    got = decoder.decode(msg.topic.replace("/", "."), msg.payload)
    # what Gateway._record_transition hands to its sink
    want = LineEncoder(SID).alarm(
        round(t.ts * 1000),
        device=t.device,
        point=t.point,
        rule=t.rule,
        level=t.level,
        state=str(t.to_state),
        value=t.value,
        limit=t.limit,
    )
    assert got.line == want
    no_limit = event_message(f"hazard/{SID}", dataclasses.replace(t, limit=math.nan))
    line = decoder.decode(no_limit.topic.replace("/", "."), no_limit.payload).line
    assert line is not None and "limit=" not in line


def test_what_is_not_written(decoder: PlatformDecoder) -> None:
    skipped = [
        (subject("cmd", "alarm", "ack"), b'{"id": "x"}'),
        (subject("cmd", "reply"), b'{"ok": true}'),
        (subject("alarms", "face1-gas", "ch4", "ch4_face"), b'{"ts": 1, "state": "UNACK_ACTIVE"}'),
        (subject("face1-gas", "status"), b""),  # a retained message being deleted
        ("other.site.dev.telemetry", b'{"ts": 1, "values": {}}'),
        (subject("gateway", "status"), b'{"ts": 1, "online": false}'),  # the will
    ]
    for subj, payload in skipped:
        assert decoder.decode(subj, payload).outcome == "skipped", subj
    flood = b'{"type": "flood", "flood": true, "id": "flood", "ts": 1, "count": 12}'
    assert decoder.decode(subject("events", "alarm"), flood).outcome == "skipped"


def test_invalid_payloads_say_why(decoder: PlatformDecoder) -> None:
    cases = {
        b"{not json": "not JSON",
        b"[1, 2]": "not a JSON object",
        b'{"values": {"ch4": 1.0}}': "KeyError",
        b'{"ts": "yesterday", "values": {}}': "ts must be integer",
    }
    for payload, reason in cases.items():
        got = decoder.decode(subject("face1-gas", "telemetry"), payload)
        assert got.outcome == "invalid" and reason in got.reason, payload


def test_gateway_status_becomes_a_gateway_line(decoder: PlatformDecoder) -> None:
    doc = {"ts": 5, "online": True, "devices": 13, "devices_online": 12, "points_per_s": 80.5}
    line = decoder.decode(subject("gateway", "status"), json.dumps(doc).encode()).line
    assert line == f"gateway,site={SID} points_per_s=80.5,devices_online=12i,devices_total=13i 5"


def test_a_device_without_a_site_file_is_written_not_lost(decoder: PlatformDecoder) -> None:
    doc = {"ts": 7, "values": {"ch4": 0.5, "fault": 1, "o2": None}, "quality": {}}
    doc["quality"] = {"ch4": "good", "fault": "good", "o2": "bad"}
    got = decoder.decode("hazard.new-site.gas9.telemetry", json.dumps(doc).encode())
    assert got.line == f"{UNREGISTERED_MEASUREMENT},device=gas9,site=new-site ch4=0.5,fault=1i 7"
    assert decoder.unregistered_messages == 1


def test_what_pythons_json_accepts_is_still_decoded(decoder: PlatformDecoder) -> None:
    """The fast parser refuses NaN and integers beyond 64 bits; such a message is decoded as
    before (the NaN point is not written, the huge integer is out of int64 and left out), not
    turned into an invalid message that would lose its other points."""
    payload = b'{"ts": 9, "values": {"a": NaN, "b": 2.5, "c": 123456789012345678901234567890}}'
    got = decoder.decode("hazard.new-site.dev1.telemetry", payload)
    assert got.outcome == "line"
    assert got.line == f"{UNREGISTERED_MEASUREMENT},device=dev1,site=new-site b=2.5 9"
    bad_utf8 = decoder.decode(subject("face1-gas", "telemetry"), b'{"ts": 1, "values": "\xff"}')
    assert bad_utf8.outcome == "invalid" and "not JSON" in bad_utf8.reason
