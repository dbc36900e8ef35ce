"""The one delivery mode without a durable outbox: the same outbox code, kept in memory.

An :class:`Outbox` at :data:`MEMORY` has the durable one's order, bound and drop policy; the
sink used without an outbox (``outbox: {enabled: false}``) keeps its lines in one, so alarms
and device status outlive a database outage that fills it, and the oldest telemetry goes first.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from gateway.config import InfluxConfig
from gateway.outbox import MEMORY, AsyncOutbox, Outbox, OutboxEntry
from gateway.sinks.influx import OUTBOX_STREAM, InfluxSink, InfluxWriteError

TS = 1_760_000_000_000


def entry(kind: str, payload: bytes) -> OutboxEntry:
    return OutboxEntry(kind, "d1", "gas", payload)  # type: ignore[arg-type]


def test_memory_outbox_keeps_order_and_drops_oldest_telemetry_never_alarms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Outbox(MEMORY, max_rows=4) as outbox:
        assert outbox.in_memory
        outbox.put_batches({"influx": [entry("alarm", b"a0"), entry("telemetry", b"t0")]})
        outbox.put_many("influx", [entry("telemetry", b"t1"), entry("status", b"s0")])
        outbox.put_many("influx", [entry("telemetry", b"t2"), entry("alarm", b"a1")])
        stored = [s.entry.payload for s in outbox.peek("influx", 10)]
        assert stored == [b"a0", b"s0", b"t2", b"a1"]
        assert outbox.stats().dropped_telemetry == 2
        outbox.ack("influx", outbox.peek("influx", 1)[0].seq)
        assert outbox.depth("influx") == 3
    with Outbox(MEMORY) as other:  # nothing of it is left anywhere
        assert other.depth("influx") == 0
    assert os.listdir(tmp_path) == []


class DownWriter:
    def __init__(self) -> None:
        self.down = True
        self.lines: list[str] = []

    async def __call__(self, body: str) -> None:
        if self.down:
            raise InfluxWriteError("connection refused", retryable=True)
        self.lines += body.split("\n")


async def test_sink_without_outbox_keeps_alarms_and_status_through_a_full_outage() -> None:
    cfg = InfluxConfig(url="http://127.0.0.1:9", org="o", bucket="b", batch_size=2)
    writer = DownWriter()
    async with InfluxSink(
        cfg,
        "s1",
        token=None,
        writer=writer,
        max_buffer=5,
        backoff_initial=0.01,
        backoff_max=0.02,
        rng=random.Random(1),
    ) as sink:
        assert sink.in_memory
        sink.add_alarm(
            TS, device="d1", point="ch4", rule="r", level="HH", state="UNACK_ACTIVE",
            value=1.6, limit=1.5,
        )  # fmt: skip
        for i in range(10):
            sink.add_gateway(TS + i, {"uptime_s": float(i)})
            await asyncio.sleep(0)
        sink.add_device_status("d1", TS + 20, False, None, 3)
        await sink.commit()
        assert sink.stats.dropped_lines == 7  # 12 lines, 5 kept: the oldest telemetry went
        assert sink.stats.buffered_lines == 5
        writer.down = False
        assert await sink.flush(5)
        assert sink.stats.buffered_lines == 0
    measurements = [line.split(",", 1)[0] for line in writer.lines]
    assert measurements == ["alarm", "gateway", "gateway", "gateway", "device_status"]
    assert [line.rsplit(" ", 1)[1] for line in writer.lines[1:4]] == [
        str(TS + 7),
        str(TS + 8),
        str(TS + 9),
    ]


async def test_sink_uses_the_outbox_stream_it_is_given(tmp_path: Path) -> None:
    cfg = InfluxConfig(url="http://127.0.0.1:9", org="o", bucket="b")
    async with (
        AsyncOutbox(tmp_path / "o.sqlite3") as outbox,
        InfluxSink(cfg, "s1", token=None, writer=DownWriter(), outbox=outbox) as sink,
    ):
        assert not sink.in_memory
        sink.add_gateway(TS, {"uptime_s": 1.0})
        await sink.commit()
        assert outbox.depth(OUTBOX_STREAM) == 1
