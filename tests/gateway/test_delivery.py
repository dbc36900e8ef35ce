"""The explicit transaction of a tick (gateway/delivery.py): a sample's MQTT message and its
database line reach the outbox together or not at all.

Faults are real: a SQLite trigger that aborts the insert of the database line (after the MQTT
row of the same transaction went in), and a process SIGKILLed while it commits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gateway.app import Gateway
from gateway.config import InfluxConfig, MqttConfig, OutboxConfig
from gateway.delivery import TickTransaction
from gateway.mqtt import MQTT_STREAM
from gateway.outbox import AsyncOutbox, Outbox, OutboxEntry, OutboxError
from gateway.poller import PollResult
from gateway.sinks.influx import OUTBOX_STREAM, InfluxSink, InfluxWriteError
from hazardgw.demo import demo_site

ROOT = Path(__file__).resolve().parents[2]
FAIL_INFLUX = (
    "CREATE TRIGGER fail_influx BEFORE INSERT ON entries WHEN NEW.stream = 'influx' "
    "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
)


def _fault(outbox: AsyncOutbox, on: bool) -> None:
    """Make every insert into the influx stream fail inside the SQLite transaction (or not)."""
    with outbox.outbox._guard("inject a fault") as db:
        db.execute(FAIL_INFLUX if on else "DROP TRIGGER fail_influx")


def _stage_sample(tx: TickTransaction, i: int) -> None:
    """One sample's two legs, as Gateway.on_poll stages them: the message, then the line."""
    tx.stage(MQTT_STREAM, [OutboxEntry("telemetry", "d1", "hazard/s/d1/telemetry", b"%d" % i)])
    tx.stage(OUTBOX_STREAM, [OutboxEntry("telemetry", "d1", "gas", b"gas,site=s v=%d %d" % (i, i))])


async def _payloads(outbox: AsyncOutbox, stream: str) -> list[bytes]:
    return [s.entry.payload for s in await outbox.peek(stream, 1000)]


async def test_a_failed_commit_keeps_neither_leg_and_the_retry_commits_both(
    tmp_path: Path,
) -> None:
    async with AsyncOutbox(tmp_path / "o.sqlite3") as outbox:
        tx = TickTransaction(outbox)
        _stage_sample(tx, 0)
        await tx.commit()
        _fault(outbox, True)
        _stage_sample(tx, 1)
        with pytest.raises(OutboxError, match="injected fault"):
            await tx.commit()
        # the MQTT row went in before the line failed: the whole transaction was rolled back
        assert await _payloads(outbox, MQTT_STREAM) == [b"0"]
        assert len(await _payloads(outbox, OUTBOX_STREAM)) == 1
        assert outbox.depth(MQTT_STREAM) == outbox.depth(OUTBOX_STREAM) == 1
        assert tx.pending(MQTT_STREAM) == tx.pending(OUTBOX_STREAM) == 1  # kept, staged
        _stage_sample(tx, 2)  # staged while failing: goes behind the kept sample
        _fault(outbox, False)
        await tx.commit()
        assert await _payloads(outbox, MQTT_STREAM) == [b"0", b"1", b"2"]
        lines = await _payloads(outbox, OUTBOX_STREAM)
        assert [line.rsplit(b" ", 1)[1] for line in lines] == [b"0", b"1", b"2"]
        assert tx.pending(MQTT_STREAM) == tx.pending(OUTBOX_STREAM) == 0


async def test_the_commit_task_retries_until_the_fault_is_gone(tmp_path: Path) -> None:
    async with AsyncOutbox(tmp_path / "o.sqlite3") as outbox:
        tx = TickTransaction(outbox, retry_s=0.01)
        task = asyncio.create_task(tx.run())
        try:
            _fault(outbox, True)
            _stage_sample(tx, 0)
            await asyncio.sleep(0.1)  # several failed attempts
            assert outbox.depth(MQTT_STREAM) == outbox.depth(OUTBOX_STREAM) == 0
            assert tx.pending(MQTT_STREAM) == 1
            _fault(outbox, False)
            async with asyncio.timeout(5):
                while tx.pending(MQTT_STREAM) or tx.pending(OUTBOX_STREAM):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert outbox.depth(MQTT_STREAM) == outbox.depth(OUTBOX_STREAM) == 1
        finally:
            task.cancel()


_PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gateway.delivery import TickTransaction
    from gateway.outbox import AsyncOutbox, OutboxEntry

    async def main(path: Path) -> None:
        async with AsyncOutbox(path, linger=0.0) as outbox:
            tx = TickTransaction(outbox)
            commits = asyncio.create_task(tx.run())  # commits while samples are staged
            i = 0
            while True:
                for _ in range(7):
                    tx.stage("mqtt", [OutboxEntry("telemetry", "d", "t", b"%d" % i)])
                    tx.stage("influx", [OutboxEntry("telemetry", "d", "gas", b"%d" % i)])
                    i += 1
                if i % 70 == 0:
                    await tx.commit()
                    print(i, flush=True)  # every sample below i is committed
                else:
                    await asyncio.sleep(0)

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def test_a_process_killed_while_committing_kept_both_legs_or_neither(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        assert child.stdout is not None
        reported = 0
        for n, line in enumerate(child.stdout):
            reported = int(line)
            if n == 30:
                break
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    with Outbox(path) as outbox:
        mqtt = [int(s.entry.payload) for s in outbox.peek("mqtt", 1_000_000)]
        influx = [int(s.entry.payload) for s in outbox.peek("influx", 1_000_000)]
    assert mqtt == influx  # the same samples on both legs: none torn by the kill
    assert mqtt == list(range(len(mqtt)))  # in order, none missing
    assert len(mqtt) >= reported


async def test_the_gateway_commits_a_samples_message_and_line_together(tmp_path: Path) -> None:
    """Gateway.on_poll stages the telemetry message and its line in the gateway's transaction."""
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", "mqtt://127.0.0.1:9")
    site = dataclasses.replace(
        site,
        mqtt=MqttConfig(url="mqtt://127.0.0.1:9", telemetry_qos=1),
        influx=InfluxConfig(url="http://127.0.0.1:9", org="o", bucket="b"),
        outbox=OutboxConfig(path=str(tmp_path / "o.sqlite3")),
    )
    gw = Gateway(site)

    async def down(body: str) -> None:
        raise InfluxWriteError("connection refused", retryable=True)

    async with AsyncOutbox(tmp_path / "o.sqlite3") as outbox:
        gw.outbox = outbox
        gw.transaction = gw.publisher.transaction = TickTransaction(outbox)
        assert site.influx is not None
        async with InfluxSink(
            site.influx, site.site.id, token=None, writer=down, transaction=gw.transaction
        ) as sink:
            gw.sink = sink
            rows = gw.table.devices[0]
            n = len(rows.device.points)

            def poll(ts: float) -> None:
                values = np.arange(n, dtype=np.float64)
                good = np.ones(n, dtype=np.bool_)
                gw.on_poll(PollResult(rows, ts, values, good, None, 0.001, 0.0, 1))

            poll(1_760_000_000.0)
            await gw.transaction.commit()
            telemetry = f"/{rows.device.id}/telemetry"

            def legs() -> tuple[int, int]:
                stored = outbox.outbox
                msgs = [
                    s for s in stored.peek(MQTT_STREAM, 1000) if s.entry.topic.endswith(telemetry)
                ]
                lines = [
                    s
                    for s in stored.peek(OUTBOX_STREAM, 1000)
                    if s.entry.topic == rows.device.measurement
                ]
                return len(msgs), len(lines)

            assert legs() == (1, 1)
            _fault(outbox, True)
            poll(1_760_000_001.0)
            with pytest.raises(OutboxError):
                await gw.transaction.commit()
            assert legs() == (1, 1)  # neither leg of the second sample
            _fault(outbox, False)
            await gw.transaction.commit()
            assert legs() == (2, 2)
