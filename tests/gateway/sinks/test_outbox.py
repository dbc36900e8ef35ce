"""The durable outbox: order, crash survival, the bound policy, delivery and batching."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.outbox import (
    ROW_OVERHEAD,
    AsyncOutbox,
    EntryKind,
    Outbox,
    OutboxEntry,
    OutboxError,
    StoredEntry,
)
from tests.harness.paths import ROOT

REPO = ROOT


def entry(kind: EntryKind = "telemetry", key: str = "dev1", payload: bytes = b"{}") -> OutboxEntry:
    return OutboxEntry(kind=kind, key=key, topic=f"hazard/site/{key}/{kind}", payload=payload)


def payloads(outbox: Outbox, stream: str) -> list[bytes]:
    return [s.entry.payload for s in outbox.peek(stream, 1_000_000)]


# -- the synchronous core ------------------------------------------------------------------------


def test_entries_round_trip_in_order_per_stream(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.put_many("mqtt", [entry(payload=b"a"), entry("alarm", payload=b"b")])
        outbox.put_many("influx", [entry(payload=b"x")])
        outbox.put_many("mqtt", [entry("status", key="dev2", payload=b"c")])
        stored = outbox.peek("mqtt", 10)
        assert [s.entry.payload for s in stored] == [b"a", b"b", b"c"]
        assert [s.entry.kind for s in stored] == ["telemetry", "alarm", "status"]
        assert stored[2].entry == entry("status", key="dev2", payload=b"c")
        assert [s.seq for s in stored] == sorted(s.seq for s in stored)
        assert payloads(outbox, "influx") == [b"x"]
        assert outbox.depth("mqtt") == 3
        assert outbox.depth("nothing") == 0


def test_order_and_seq_kept_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        outbox.put_many("mqtt", [entry(payload=str(i).encode()) for i in range(100)])
        outbox.ack("mqtt", outbox.peek("mqtt", 100)[-1].seq)  # all delivered
        outbox.put_many("mqtt", [entry(payload=str(i).encode()) for i in range(100, 150)])
        last_seq = outbox.peek("mqtt", 100)[-1].seq
    with Outbox(path) as outbox:
        assert payloads(outbox, "mqtt") == [str(i).encode() for i in range(100, 150)]
        assert outbox.depth("mqtt") == 50
        outbox.put_many("mqtt", [entry(payload=b"after")])
        assert outbox.peek("mqtt", 100)[-1].seq > last_seq  # never reused


def test_stats_count_depth_bytes_and_are_rebuilt_on_open(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    e = entry(payload=b"x" * 100)
    with Outbox(path) as outbox:
        outbox.put_many("mqtt", [e, e])
        outbox.put_many("influx", [e])
        stats = outbox.stats()
    assert e.size == 100 + len(e.topic) + len(e.key) + ROW_OVERHEAD
    assert stats.depth == {"mqtt": 2, "influx": 1}
    assert stats.rows == stats.outbox_depth == 3
    assert stats.bytes == 3 * e.size
    with Outbox(path) as outbox:
        assert outbox.stats().depth == stats.depth
        assert outbox.stats().bytes == stats.bytes


def test_ack_by_seqs_deletes_only_those(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.put_many("mqtt", [entry(payload=bytes([i])) for i in range(5)])
        seqs = [s.seq for s in outbox.peek("mqtt", 5)]
        assert outbox.ack_seqs("mqtt", [seqs[1], seqs[3]]) == 2
        assert outbox.ack_seqs("influx", [seqs[0]]) == 0  # another stream's seq: untouched
        assert payloads(outbox, "mqtt") == [bytes([0]), bytes([2]), bytes([4])]


def test_second_process_cannot_open_the_same_file(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db"), pytest.raises(OutboxError, match="in use"):
        Outbox(tmp_path / "o.db")


def test_closed_outbox_raises(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.close()
    outbox.close()
    with pytest.raises(OutboxError, match="closed"):
        outbox.put_many("mqtt", [entry()])


# -- the bound -----------------------------------------------------------------------------------


def test_bound_drops_oldest_telemetry_never_alarms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.outbox")
    with Outbox(tmp_path / "o.db", max_rows=6) as outbox:
        outbox.put_many("mqtt", [entry(payload=b"t0"), entry("alarm", payload=b"a0")])
        outbox.put_many("influx", [entry(payload=b"i0"), entry(payload=b"i1")])
        outbox.put_many("mqtt", [entry(payload=b"t1"), entry("event", payload=b"e0")])
        outbox.put_many("mqtt", [entry(payload=b"t2"), entry("alarm", payload=b"a1")])
        # 8 rows for 6: the two oldest telemetry entries (t0 in mqtt, i0 in influx) go
        assert payloads(outbox, "mqtt") == [b"a0", b"t1", b"e0", b"t2", b"a1"]
        assert payloads(outbox, "influx") == [b"i1"]
        stats = outbox.stats()
        assert stats.dropped_telemetry == 2
        assert stats.rows == 6
        assert not stats.over_bound
    assert "dropping the oldest telemetry" in caplog.text


def test_only_alarms_left_are_kept_beyond_the_bound_and_new_telemetry_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.outbox")
    with Outbox(tmp_path / "o.db", max_rows=3) as outbox:
        outbox.put_many("mqtt", [entry(payload=b"t0")])
        alarms = [entry("alarm", payload=f"a{i}".encode()) for i in range(5)]
        outbox.put_many("mqtt", alarms)
        assert payloads(outbox, "mqtt") == [a.payload for a in alarms]
        assert outbox.stats().over_bound
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "no telemetry left" in errors[0].getMessage()

        outbox.put_many("mqtt", [entry(payload=b"t1")])  # refused: dropped at once
        assert payloads(outbox, "mqtt") == [a.payload for a in alarms]
        assert outbox.stats().dropped_telemetry == 2
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # once

        outbox.ack("mqtt", outbox.peek("mqtt", 4)[-1].seq)
        assert not outbox.stats().over_bound
    assert "within its bound again" in caplog.text


def test_byte_bound_drops_enough_telemetry(tmp_path: Path) -> None:
    big = entry(payload=b"x" * 1000)
    with Outbox(tmp_path / "o.db", max_bytes=5 * big.size) as outbox:
        outbox.put_many("influx", [big] * 5)
        assert outbox.stats().dropped_telemetry == 0
        outbox.put_many("influx", [entry(payload=b"y" * 2500)])  # needs three entries' room
        stats = outbox.stats()
        assert stats.dropped_telemetry == 3
        assert stats.bytes <= 5 * big.size


# -- crash survival ------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gateway.outbox import AsyncOutbox, Outbox, OutboxEntry

    def batch(n):
        return [
            OutboxEntry("telemetry", f"dev{i % 7}", "t", (f"{n}:{i}:" + "x" * 2000).encode())
            for i in range(BATCH)
        ]

    def run_sync(path, synchronous):
        outbox = Outbox(path, synchronous=synchronous)
        n = 0
        while True:
            outbox.put_many("mqtt", batch(n))
            print(n, flush=True)
            n += 1

    async def run_async(path):
        async with AsyncOutbox(path) as outbox:
            n = 0
            while True:
                await outbox.put_many("mqtt", batch(n))
                print(n, flush=True)
                n += 1

    path, mode = Path(sys.argv[1]), sys.argv[2]
    run_sync(path, mode) if mode != "async" else asyncio.run(run_async(path))
    """
)
_BATCH = 50


@pytest.mark.parametrize("mode", ["NORMAL", "FULL", "async"])
def test_committed_entries_survive_sigkill(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "o.db"
    code = f"BATCH = {_BATCH}\n{_WRITER}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path), mode], stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        assert child.stdout is not None
        reported = []
        for line in child.stdout:
            reported.append(int(line))
            if len(reported) == 40:
                break
        child.send_signal(signal.SIGKILL)
        reported += [int(line) for line in child.stdout]  # printed before it died
        assert child.wait() == -signal.SIGKILL
    assert reported == list(range(len(reported)))

    with Outbox(path) as outbox:
        stored = [p.split(b":")[:2] for p in payloads(outbox, "mqtt")]
    expected = [[str(n).encode(), str(i).encode()] for n in reported for i in range(_BATCH)]
    assert stored[: len(expected)] == expected  # every reported entry, in order
    # what follows is at most whole batches committed but not yet reported, never a torn one
    assert len(stored) % _BATCH == 0
    assert len(stored) - len(expected) <= _BATCH


# -- a model of the policy -----------------------------------------------------------------------


@dataclass
class _Row:
    seq: int
    stream: str
    kind: str
    payload: bytes
    size: int


class _Model:
    """The outbox as a plain list, with the drop policy spelled out."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.rows: list[_Row] = []
        self.next_seq = 1
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.dropped = 0

    def over(self) -> bool:
        return len(self.rows) > self.max_rows or sum(r.size for r in self.rows) > self.max_bytes

    def put(self, stream: str, entries: list[OutboxEntry]) -> None:
        for e in entries:
            self.rows.append(_Row(self.next_seq, stream, e.kind, e.payload, e.size))
            self.next_seq += 1
        while self.over():
            oldest = next((r for r in self.rows if r.kind == "telemetry"), None)
            if oldest is None:
                break
            self.rows.remove(oldest)
            self.dropped += 1

    def stream(self, stream: str) -> list[_Row]:
        return [r for r in self.rows if r.stream == stream]


_kinds = st.sampled_from(["telemetry", "telemetry", "status", "alarm", "event", "reply"])
_streams = st.sampled_from(["mqtt", "influx"])
_entries = st.lists(
    st.builds(lambda k, n: entry(k, payload=b"p" * n), _kinds, st.integers(0, 120)),
    min_size=1,
    max_size=6,
)
_ops = st.one_of(
    st.tuples(st.just("put"), _streams, _entries),
    st.tuples(st.just("ack"), _streams, st.integers(0, 8)),
    st.tuples(st.just("ack_seqs"), _streams, st.lists(st.integers(0, 8), max_size=4)),
    st.tuples(st.just("reopen")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_ops, max_size=30), max_rows=st.integers(2, 12))
def test_matches_the_list_model(ops: list[tuple[object, ...]], max_rows: int) -> None:
    max_bytes = 1200
    model = _Model(max_rows, max_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "o.db"
        outbox = Outbox(path, max_rows=max_rows, max_bytes=max_bytes)
        try:
            for op in ops:
                match op:
                    case ("put", str(stream), list(entries)):
                        outbox.put_many(stream, entries)
                        model.put(stream, entries)
                    case ("ack", str(stream), int(n)):
                        waiting = model.stream(stream)
                        if n and waiting:
                            upto = waiting[min(n, len(waiting)) - 1].seq
                            outbox.ack(stream, upto)
                            model.rows = [
                                r for r in model.rows if r.stream != stream or r.seq > upto
                            ]
                    case ("ack_seqs", str(stream), list(picks)):
                        waiting = model.stream(stream)
                        seqs = [waiting[i].seq for i in picks if i < len(waiting)]
                        outbox.ack_seqs(stream, seqs)
                        model.rows = [r for r in model.rows if r.seq not in seqs]
                    case ("reopen",):
                        outbox.close()
                        outbox = Outbox(path, max_rows=max_rows, max_bytes=max_bytes)
                        model.dropped = 0  # the counter runs since open
                for stream in ("mqtt", "influx"):
                    got = [(s.seq, s.entry.kind, s.entry.payload) for s in outbox.peek(stream, 99)]
                    assert got == [(r.seq, r.kind, r.payload) for r in model.stream(stream)]
                    assert outbox.depth(stream) == len(model.stream(stream))
                stats = outbox.stats()
                assert stats.dropped_telemetry == model.dropped
                assert stats.rows == len(model.rows)
                assert stats.bytes == sum(r.size for r in model.rows)
                assert stats.telemetry_rows == sum(r.kind == "telemetry" for r in model.rows)
                assert stats.over_bound == model.over()
        finally:
            outbox.close()


# -- the asyncio wrapper -------------------------------------------------------------------------


async def test_concurrent_puts_keep_per_key_order_and_share_transactions(tmp_path: Path) -> None:
    keys, per_key = 40, 25

    async def device(key: str) -> None:
        for i in range(per_key):
            await outbox.put("mqtt", entry(key=key, payload=str(i).encode()))

    async with AsyncOutbox(tmp_path / "o.db", linger=0.002) as outbox:
        async with asyncio.TaskGroup() as tg:
            for k in range(keys):
                tg.create_task(device(f"dev{k}"))
        stored = await outbox.peek("mqtt", keys * per_key + 1)
    assert len(stored) == keys * per_key
    by_key: dict[str, list[int]] = {}
    for s in stored:
        by_key.setdefault(s.entry.key, []).append(int(s.entry.payload))
    assert by_key == {f"dev{k}": list(range(per_key)) for k in range(keys)}


@pytest.mark.parametrize("window", [1, 3])
async def test_deliver_stops_on_send_failure_and_resumes_from_that_entry(
    tmp_path: Path, window: int
) -> None:
    path = tmp_path / "o.db"
    sent: list[bytes] = []
    broken = True

    async def send(stored: StoredEntry) -> None:
        if broken and stored.entry.payload == b"5":
            raise ConnectionError("broker gone")
        sent.append(stored.entry.payload)

    async with AsyncOutbox(path) as outbox:
        await outbox.put_many("mqtt", [entry(payload=str(i).encode()) for i in range(10)])
        with pytest.raises(ConnectionError):
            await outbox.deliver("mqtt", send, batch=3, window=window)
        assert sent == [b"0", b"1", b"2", b"3", b"4"]
        assert outbox.depth("mqtt") == 5  # the failed entry and the rest stay
    async with AsyncOutbox(path) as outbox:  # after a restart, too
        broken = False
        assert await outbox.deliver("mqtt", send, batch=3, window=window) == 5
        assert outbox.depth("mqtt") == 0
    assert sent == [str(i).encode() for i in range(10)]


async def test_deliver_window_starts_sends_in_order_and_overlaps_them(tmp_path: Path) -> None:
    started: list[bytes] = []
    in_flight = peak = 0

    async def send(stored: StoredEntry) -> None:
        nonlocal in_flight, peak
        started.append(stored.entry.payload)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)  # the broker's round trip
        in_flight -= 1

    async with AsyncOutbox(tmp_path / "o.db") as outbox:
        await outbox.put_many("mqtt", [entry(payload=b"%03d" % i) for i in range(50)])
        assert await outbox.deliver("mqtt", send, batch=20, window=8) == 50
    assert started == [b"%03d" % i for i in range(50)]
    assert peak == 8


async def test_deliver_batches_acks_whole_batches_only(tmp_path: Path) -> None:
    writes: list[list[bytes]] = []
    fail = True

    async def write(batch: list[StoredEntry]) -> None:
        if fail and len(writes) == 1:
            raise TimeoutError("influx write timed out")
        writes.append([s.entry.payload for s in batch])

    async with AsyncOutbox(tmp_path / "o.db") as outbox:
        await outbox.put_many("influx", [entry(payload=bytes([65 + i])) for i in range(5)])
        with pytest.raises(TimeoutError):
            await outbox.deliver_batches("influx", write, batch=2)
        assert outbox.depth("influx") == 3
        fail = False
        assert await outbox.deliver_batches("influx", write, batch=2) == 3
    assert writes == [[b"A", b"B"], [b"C", b"D"], [b"E"]]


async def test_wait_pending_wakes_on_put(tmp_path: Path) -> None:
    async with AsyncOutbox(tmp_path / "o.db") as outbox:
        waiter = asyncio.create_task(outbox.wait_pending("mqtt"))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await outbox.put("influx", entry())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # another stream
        await outbox.put("mqtt", entry())
        async with asyncio.timeout(5):
            await waiter


async def test_close_commits_pending_puts(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with AsyncOutbox(path, linger=10.0) as outbox:
        puts = [asyncio.create_task(outbox.put("mqtt", entry(payload=b"%d" % i))) for i in range(3)]
        await asyncio.sleep(0)
    await asyncio.gather(*puts)
    with Outbox(path) as reopened:
        assert payloads(reopened, "mqtt") == [b"0", b"1", b"2"]
    with pytest.raises(OutboxError):
        await outbox.put("mqtt", entry())


async def test_put_failure_reaches_the_caller(tmp_path: Path) -> None:
    async with AsyncOutbox(tmp_path / "o.db") as outbox:
        outbox.outbox.close()  # the file goes away under the wrapper
        with pytest.raises(OutboxError, match="closed"):
            await outbox.put("mqtt", entry())
