"""The time-series sink behind the durable outbox, and the outbox counters in the gateway's stats.

Fast tests (a scripted writer, a real SQLite outbox in a temp dir); the chaos tests run the same
paths against real services.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import InfluxConfig, OutboxConfig
from gateway.delivery import TickTransaction
from gateway.outbox import AsyncOutbox, Outbox, OutboxEntry
from gateway.sinks.influx import OUTBOX_STREAM, InfluxSink, InfluxWriteError
from hazardgw.demo import demo_site
from tests.harness.paths import ROOT

CONFIG = InfluxConfig(url="http://127.0.0.1:9", org="o", bucket="b", flush_interval=0.05)


class ScriptedWriter:
    """Fails while ``down`` is set; records every body it was given otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.bodies: list[str] = []
        self.attempts = 0

    async def __call__(self, body: str) -> None:
        self.attempts += 1
        if self.down:
            raise InfluxWriteError("connection refused", retryable=True)
        self.bodies.append(body)

    @property
    def lines(self) -> list[str]:
        return [line for body in self.bodies for line in body.split("\n")]


async def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition the code under test offers no event for."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_lines_wait_in_the_outbox_through_an_outage_and_keep_their_order(
    tmp_path: Path,
) -> None:
    writer = ScriptedWriter()
    async with (
        AsyncOutbox(tmp_path / "o.sqlite3") as outbox,
        InfluxSink(
            CONFIG,
            "s1",
            token=None,
            writer=writer,
            outbox=outbox,
            backoff_initial=0.01,
            backoff_max=0.05,
        ) as sink,
    ):
        for i in range(50):
            sink.add_lines(f"gas,site=s1,device=d1 ch4={i / 100} {1000 + i}")
        sink.add_device_status("d1", 2000, True, 1.5, 0)
        sink.add_alarm(
            2001,
            device="d1",
            point="ch4",
            rule="r",
            level="H",
            state="UNACK_ACTIVE",
            value=1.2,
            limit=1.0,
        )
        await _wait(lambda: outbox.depth(OUTBOX_STREAM) == 52 and writer.attempts >= 2)
        kinds = [s.entry.kind for s in await outbox.peek(OUTBOX_STREAM, 100)]
        assert kinds == ["telemetry"] * 50 + ["status", "alarm"]
        assert sink.stats.buffered_lines == 52
        assert not sink.stats.connected

        writer.down = False
        assert await sink.flush(timeout=10)
        assert outbox.depth(OUTBOX_STREAM) == 0
    assert [line.rsplit(" ", 1)[1] for line in writer.lines] == [
        *map(str, range(1000, 1050)),
        "2000",
        "2001",
    ]
    assert sink.stats.written_lines == 52


async def test_lines_survive_the_sink_going_away_without_closing(tmp_path: Path) -> None:
    """Committed lines are on disk: a new process finds them (here: a new Outbox on the file)."""
    writer = ScriptedWriter()
    path = tmp_path / "o.sqlite3"
    async with AsyncOutbox(path) as outbox:
        sink = InfluxSink(CONFIG, "s1", token=None, writer=writer, outbox=outbox)
        await sink.__aenter__()
        sink.add_lines(["gas,site=s1,device=d1 ch4=0.1 1", "gas,site=s1,device=d1 ch4=0.2 2"])
        await _wait(lambda: outbox.depth(OUTBOX_STREAM) == 2)
        await sink.aclose()  # no delivery happened: the lines stay
    with Outbox(path) as reopened:
        payloads = [s.entry.payload for s in reopened.peek(OUTBOX_STREAM, 10)]
    assert payloads == [b"gas,site=s1,device=d1 ch4=0.1 1", b"gas,site=s1,device=d1 ch4=0.2 2"]


async def test_refused_batches_are_dropped_not_retried_forever(tmp_path: Path) -> None:
    class Refusing(ScriptedWriter):
        async def __call__(self, body: str) -> None:
            self.attempts += 1
            raise InfluxWriteError("HTTP 400: bad line", retryable=False, status=400)

    writer = Refusing()
    async with (
        AsyncOutbox(tmp_path / "o.sqlite3") as outbox,
        InfluxSink(CONFIG, "s1", token=None, writer=writer, outbox=outbox) as sink,
    ):
        sink.add_lines("gas,site=s1,device=d1 ch4=oops 1")
        assert await sink.flush(timeout=10)
        assert outbox.depth(OUTBOX_STREAM) == 0
        assert sink.stats.rejected_lines == 1


async def test_outbox_drops_reach_the_status_payload_and_the_gateway_line(
    tmp_path: Path,
) -> None:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", "mqtt://127.0.0.1:9")
    site = dataclasses.replace(
        site,
        influx=CONFIG,
        outbox=OutboxConfig(path=str(tmp_path / "o.sqlite3"), max_mb=1.0),
    )
    gw = Gateway(site)
    async with AsyncOutbox(tmp_path / "o.sqlite3", max_bytes=20_000) as outbox:
        gw.outbox = outbox
        gw.transaction = gw.publisher.transaction = TickTransaction(outbox)
        async with InfluxSink(
            CONFIG,
            "s1",
            token=None,
            writer=ScriptedWriter(),
            outbox=outbox,
            transaction=gw.transaction,
        ) as sink:
            gw.sink = sink
            await outbox.put_many(
                "mqtt", [OutboxEntry("telemetry", "d", "t", b"x" * 1000) for _ in range(40)]
            )
            dropped = outbox.stats().dropped_telemetry
            assert dropped > 0
            gw._publish_stats({"points_per_s": 1.0, "poll_lag_ms": 0.5, "poll_lag_p99_ms": 1.0,
                               "requests_per_s": 1.0}, 10.0)  # fmt: skip
            staged = gw.transaction._staged
            status = json.loads(staged["mqtt"][-1].payload)
            assert status["outbox_dropped"] == dropped
            assert status["outbox_depth"] == outbox.stats().rows
            assert {"telemetry_messages", "alarm_transitions", "started"} <= status.keys()
            (line,) = [e for e in staged[OUTBOX_STREAM] if e.topic == "gateway"]
            assert line.kind == "telemetry"
            assert f"outbox_dropped={dropped}i" in line.payload.decode()
            await gw.transaction.commit()  # both streams, one transaction
            assert outbox.depth(OUTBOX_STREAM) == 1


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("alarm,site=s,device=d state=1i 1", "alarm"),
        ("device_status,site=s,device=d online=1i 1", "status"),
        ("gas,site=s,device=d ch4=0.1 1", "telemetry"),
        ("gateway,site=s outbox_depth=0i 1", "telemetry"),
        ("alarm\\,x,site=s v=1 1", "telemetry"),
    ],
)
async def test_added_lines_get_their_kind_from_the_measurement(
    tmp_path: Path, line: str, kind: str
) -> None:
    async with (
        AsyncOutbox(tmp_path / "o.sqlite3") as outbox,
        InfluxSink(CONFIG, "s", token=None, writer=ScriptedWriter(), outbox=outbox) as sink,
    ):
        sink.add_lines(line)
        await sink.commit()
        assert [s.entry.kind for s in await outbox.peek(OUTBOX_STREAM, 10)] == [kind]
