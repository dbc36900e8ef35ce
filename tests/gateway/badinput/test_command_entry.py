"""Commands are acts of one moment: a command that carries the MQTT retain flag, or a ``ts``
older (or further ahead) than a bound, is refused where commands enter the gateway, before any
command topic is dispatched — present ones and any added later."""

from __future__ import annotations

import json

import pytest

from gateway.commands import MAX_COMMAND_AGE_S, entry_refusal

NOW = 1_800_000_000.0


def cmd(**fields: object) -> bytes:
    return json.dumps({"id": "face1-gas/ch4/ch4_face", "user": "op", **fields}).encode()


def test_a_retained_command_is_refused_whatever_it_says() -> None:
    for payload in (cmd(), cmd(minutes=1440), b"{not json", b""):
        reason = entry_refusal(payload, retained=True, now=NOW)
        assert reason is not None and "retain" in reason


def test_a_live_command_without_ts_passes() -> None:
    assert entry_refusal(cmd(), retained=False, now=NOW) is None


@pytest.mark.parametrize(
    "age_s",
    [0.0, 1.0, MAX_COMMAND_AGE_S - 1, -5.0],  # -5: a control room clock a little ahead
)
def test_a_fresh_ts_passes(age_s: float) -> None:
    payload = cmd(ts=round((NOW - age_s) * 1000))
    assert entry_refusal(payload, retained=False, now=NOW) is None


@pytest.mark.parametrize("age_s", [MAX_COMMAND_AGE_S + 1, 3600.0, 86_400.0, NOW])
def test_an_old_ts_is_refused(age_s: float) -> None:
    reason = entry_refusal(cmd(ts=round((NOW - age_s) * 1000)), retained=False, now=NOW)
    assert reason is not None and "old" in reason


def test_a_ts_far_ahead_is_refused() -> None:
    reason = entry_refusal(cmd(ts=round((NOW + 3600) * 1000)), retained=False, now=NOW)
    assert reason is not None and "ahead" in reason


@pytest.mark.parametrize("ts", ["1800000000000", True, None, [1], 1e400, float("nan")])
def test_a_ts_that_is_not_epoch_milliseconds_is_refused(ts: object) -> None:
    payload = json.dumps({"id": "x", "user": "op", "ts": ts}).encode()
    reason = entry_refusal(payload, retained=False, now=NOW)
    assert reason is not None and "'ts'" in reason


def test_payloads_the_dispatcher_refuses_anyway_pass_the_entry() -> None:
    # malformed or oversized commands get their own precise error from the command handler
    for payload in (b"{not json", b"\xff", b"[1]", b"x" * 100_000):
        assert entry_refusal(payload, retained=False, now=NOW) is None
