"""The gateway status counts exactly the records with ``started <= ts <= status ts``, without
waiting: records stamped in the status's millisecond or later are left out of its counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway import app as app_module
from gateway.app import Gateway
from gateway.config import load_site
from gateway.poller import PollResult
from tests.gateway.badinput.alarm_fixture import ACK, FACE_CH4, live_alarms

SITE = """
site: {id: counts}
mqtt: {url: "mqtt://127.0.0.1:1", topic_prefix: t}
outbox: {enabled: false}
devices:
  - {id: gas-1, profile: gas_detector, connection: {transport: tcp, host: 127.0.0.1, port: 1},
     unit: 1, poll_interval: 1.0}
"""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_status_counts_records_up_to_its_ts_and_does_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    gw = Gateway(load_site(path))
    rows = gw.table.devices[0]
    n = len(rows.names)
    clock = Clock(1_764_000_000.0004)  # 0.4 ms into a millisecond
    monkeypatch.setattr(app_module.time, "time", clock)

    def sleep(_: float) -> None:
        raise AssertionError("the status must not wait")

    monkeypatch.setattr(app_module.time, "sleep", sleep)

    def poll(ts: float) -> None:
        values = np.ones(n)
        gw.on_poll(PollResult(rows, ts, values, np.ones(n, bool), None, 0.001, 0.0, 1))

    poll(1_763_999_999.9995)  # ts ...999 ms
    poll(1_764_000_000.0000)  # ts ...000 ms: the current millisecond
    poll(1_764_000_000.0001)
    poll(1_764_000_000.0003)
    gw._publish_stats(gw.stats.snapshot() | {"points_per_s": 0.0, "requests_per_s": 0.0}, 0.0)
    status = json.loads(gw.publisher._retained[gw.topics.gateway_status].payload)
    assert status["ts"] == 1_763_999_999_999
    # the first record's ts (...999) is the status's; the three of ...000 are after it
    assert gw.stats.telemetry_messages == 4
    assert status["telemetry_messages"] == 1
    assert status["alarm_transitions"] == 0

    clock.t = 1_764_000_000.0011
    poll(1_764_000_000.0010)  # ts ...001
    gw._publish_stats(gw.stats.snapshot() | {"points_per_s": 0.0, "requests_per_s": 0.0}, 0.0)
    status = json.loads(gw.publisher._retained[gw.topics.gateway_status].payload)
    assert status["ts"] == 1_764_000_000_000
    assert status["telemetry_messages"] == 4  # everything but the ...001 record


def test_alarm_transitions_are_counted_by_their_rounded_ts() -> None:
    alarms = live_alarms()
    service = alarms.service
    total = service.transitions
    assert total >= 3  # two raised, one acknowledged
    ack_ms = round(alarms.clock.now * 1000)  # the acknowledgement's ts
    assert service.transitions_through(ack_ms) == total
    assert service.transitions_through(ack_ms - 1) == total - 1
    # an acknowledgement 0.6 ms into a millisecond is stamped (rounded) with the next one
    alarms.clock.now += 1.0006
    service.handle_command(ACK, b'{"id": "%s", "user": "op"}' % FACE_CH4.encode())
    assert service.transitions == total + 1
    status_ms = int(alarms.clock.now * 1000) - 1
    assert service.transitions_through(status_ms) == total
    assert service.transitions_through(status_ms + 1) == total  # rounded up past this ms
    assert service.transitions_through(status_ms + 2) == total + 1
