"""Bad alarm commands through AlarmService.handle_command over a real rules engine: malformed,
oversized, non-UTF-8, non-object JSON, wrong-type fields, unknown alarms and unknown topics each
get exactly one error reply, publish nothing else and change no alarm."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.alarm_service import MAX_COMMAND_BYTES
from gateway.messages import OutboundMessage
from tests.gateway.badinput.alarm_fixture import (
    ACK,
    BASE,
    FACE_CH4,
    REPLY,
    RETURN_CH4,
    SHELVE,
    Alarms,
    live_alarms,
)

ALARM_IDS = [FACE_CH4, RETURN_CH4, "face1-gas/ch4/nope", "nope/x/y", "", "/", "a" * 300]
TOPICS = [
    ACK,
    SHELVE,
    f"{BASE}/cmd/alarm/delete",
    f"{BASE}/cmd/alarm",
    f"{BASE}/cmd/alarm/ack/extra",
    "hz/other-site/cmd/alarm/ack",
    f"{BASE}/cmd/reply",
    "",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
#: fields of the right names with values of any type (including, sometimes, a valid one)
command_fields = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(ALARM_IDS) | json_values,
        "user": st.sampled_from(["op", "", " ", "x" * 200]) | json_values,
        "minutes": st.sampled_from([0, -1, 1441, 10**400, 1e308, 0.5, True, "30"]) | json_values,
        "extra": json_values,
    },
)
payloads = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    command_fields.map(lambda d: json.dumps(d).encode()),
    command_fields.map(lambda d: json.dumps(d).encode()[:-1]),  # truncated
    command_fields.map(lambda d: json.dumps(d).encode("utf-16")),
    st.integers(MAX_COMMAND_BYTES - 20, MAX_COMMAND_BYTES + 2000).map(
        lambda n: json.dumps({"id": FACE_CH4, "user": "op", "pad": "x" * n}).encode()
    ),
)


@pytest.fixture(scope="module")
def alarms() -> Alarms:
    return live_alarms()


def one_reply(replies: list[OutboundMessage]) -> dict[str, Any]:
    assert len(replies) == 1
    (reply,) = replies
    assert (reply.topic, reply.qos, reply.retain, reply.kind) == (REPLY, 1, False, "reply")
    doc = json.loads(reply.payload.decode("utf-8"))  # always valid UTF-8 JSON
    assert isinstance(doc, dict)
    assert isinstance(doc["ok"], bool)
    return doc


def assert_refused(alarms: Alarms, topic: str, payload: bytes) -> dict[str, Any]:
    before = alarms.snapshot()
    alarms.published.clear()
    doc = one_reply(alarms.service.handle_command(topic, payload))
    assert doc["ok"] is False
    assert isinstance(doc["error"], str) and doc["error"]
    assert alarms.snapshot() == before
    assert alarms.published == []
    return doc


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(topic=st.sampled_from(TOPICS), payload=payloads)
def test_any_command_gets_one_reply_and_a_refusal_changes_nothing(
    alarms: Alarms, topic: str, payload: bytes
) -> None:
    before = alarms.snapshot()
    alarms.published.clear()
    doc = one_reply(alarms.service.handle_command(topic, payload))
    if doc["ok"]:
        # only a well-formed command on the ack/shelve topic for a real alarm gets here
        assert topic in (ACK, SHELVE)
        assert len(payload) <= MAX_COMMAND_BYTES
        request = json.loads(payload)
        assert request["id"] in (FACE_CH4, RETURN_CH4)
    else:
        assert alarms.snapshot() == before
        assert alarms.published == []


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        (ACK, b"{not json", "not UTF-8 JSON"),
        (ACK, b"\xff\xfe\x00\x01", "not UTF-8 JSON"),
        (ACK, json.dumps({"id": FACE_CH4, "user": "op"}).encode("utf-16"), "not UTF-8 JSON"),
        (ACK, b"[1, 2, 3]", "JSON object"),
        (ACK, b'"ack"', "JSON object"),
        (ACK, b"null", "JSON object"),
        (ACK, b"[" * 3000 + b"]" * 3000, "larger than"),
        (ACK, b"[" * 2000 + b"]" * 2000, "nested too deeply"),
        (ACK, b'{"id": 42, "user": "op"}', "'id'"),
        (ACK, b'{"id": ["face1-gas", "ch4"], "user": "op"}', "'id'"),
        (ACK, json.dumps({"id": FACE_CH4}).encode(), "'user'"),
        (ACK, json.dumps({"id": FACE_CH4, "user": {"name": "op"}}).encode(), "'user'"),
        (ACK, json.dumps({"id": FACE_CH4, "user": "x" * 129}).encode(), "'user'"),
        (ACK, json.dumps({"id": "nope/x/y", "user": "op"}).encode(), "unknown alarm"),
        (ACK, json.dumps({"id": RETURN_CH4, "user": "op"}).encode(), RETURN_CH4),
        (SHELVE, json.dumps({"id": FACE_CH4, "user": "op"}).encode(), "'minutes'"),
        (SHELVE, json.dumps({"id": FACE_CH4, "user": "op", "minutes": "30"}).encode(), "minutes"),
        (SHELVE, json.dumps({"id": FACE_CH4, "user": "op", "minutes": True}).encode(), "minutes"),
        (SHELVE, json.dumps({"id": FACE_CH4, "user": "op", "minutes": 0}).encode(), "minutes"),
        (SHELVE, json.dumps({"id": FACE_CH4, "user": "op", "minutes": -5}).encode(), "minutes"),
        (
            SHELVE,
            json.dumps({"id": FACE_CH4, "user": "op", "minutes": 10**400}).encode(),
            "minutes",
        ),
        (SHELVE, b'{"id": "%s", "user": "op", "minutes": 1e400}' % FACE_CH4.encode(), "minutes"),
        (SHELVE, b'{"id": "%s", "user": "op", "minutes": NaN}' % FACE_CH4.encode(), "minutes"),
        (
            SHELVE,
            b'{"id": "%s", "user": "op", "minutes": -Infinity}' % FACE_CH4.encode(),
            "minutes",
        ),
        (f"{BASE}/cmd/alarm/delete", json.dumps({"id": FACE_CH4, "user": "op"}).encode(), "topic"),
        ("hz/other/cmd/alarm/ack", json.dumps({"id": FACE_CH4, "user": "op"}).encode(), "topic"),
    ],
)
def test_hand_written_bad_commands(alarms: Alarms, topic: str, payload: bytes, error: str) -> None:
    doc = assert_refused(alarms, topic, payload)
    assert error in doc["error"]


def test_oversized_command_is_refused_before_parsing(alarms: Alarms) -> None:
    payload = json.dumps({"id": FACE_CH4, "user": "op", "pad": "x" * MAX_COMMAND_BYTES}).encode()
    doc = assert_refused(alarms, ACK, payload)
    assert doc["request"] is None  # not echoed: it was never parsed


@pytest.mark.parametrize("field", ["user", "id", "note"])
def test_lone_surrogates_in_a_valid_ack_change_nothing(field: str) -> None:
    """JSON escapes can spell half a UTF-16 pair; no reply or event could carry it."""
    alarms = live_alarms()  # its own: the shared one may have been acknowledged by a valid ack
    request = {"id": FACE_CH4, "user": "op"}
    request[field] = request.get(field, "") + "\ud800"
    payload = json.dumps(request).encode()  # ensure_ascii: the surrogate travels as \\ud800
    assert_refused(alarms, ACK, payload)
    assert alarms.state(FACE_CH4) == "UNACK_ACTIVE"


def test_huge_minutes_does_not_overflow(alarms: Alarms) -> None:
    for minutes in (10**400, -(10**400), 2**1024, 1e308, math.inf):
        payload = json.dumps({"id": FACE_CH4, "user": "op", "minutes": minutes}).encode()
        assert_refused(alarms, SHELVE, payload)


def test_a_good_command_still_works_after_the_bad_ones() -> None:
    alarms = live_alarms()
    for payload in (b"{", b"\xff", b"[]", b'{"id": 1}'):
        assert_refused(alarms, ACK, payload)
    ok = json.dumps({"id": FACE_CH4, "user": "zhang.wei"}).encode()
    doc = one_reply(alarms.service.handle_command(ACK, ok))
    assert doc == {**doc, "ok": True, "error": None}
    assert alarms.state(FACE_CH4) == "ACK_ACTIVE"
    events = [m for m in alarms.published if m.topic == f"{BASE}/events/alarm"]
    (event,) = events
    assert json.loads(event.payload)["user"] == "zhang.wei"
