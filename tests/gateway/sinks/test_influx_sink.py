"""InfluxSink batching, retry, bounds and logging, against a scripted in-process writer."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from gateway.config import InfluxConfig
from gateway.sinks import InfluxSink, InfluxSinkError, InfluxWriteError, influx_token
from tests.gateway.sinks.devices import TS, make_device

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


class FakeWriter:
    """Records bodies; fails while ``down`` is set (retryable) or with a given status."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.attempts = 0
        self.down = False
        self.fail_status: int | None = None
        self.sent = asyncio.Event()
        self.attempted = asyncio.Event()

    async def wait_attempts(self, n: int) -> None:
        while self.attempts < n:
            self.attempted.clear()
            await self.attempted.wait()

    async def __call__(self, body: str) -> None:
        self.attempts += 1
        self.attempted.set()
        await asyncio.sleep(0)
        if self.down:
            raise InfluxWriteError("ClientConnectorError: connection refused", retryable=True)
        if self.fail_status is not None:
            status, self.fail_status = self.fail_status, None
            raise InfluxWriteError(
                f"HTTP {status}", retryable=status not in (400, 422), status=status
            )
        self.bodies.append(body)
        self.sent.set()

    @property
    def lines(self) -> list[str]:
        return [line for body in self.bodies for line in body.split("\n")]


def config(**kw: object) -> InfluxConfig:
    base: dict[str, object] = {"url": "http://127.0.0.1:1", "org": "o", "bucket": "b"}
    return InfluxConfig.model_validate(base | kw)


def sink_with(writer: FakeWriter, **kw: object) -> InfluxSink:
    cfg = config(**{k: v for k, v in kw.items() if k in ("batch_size", "flush_interval")})
    rest = {k: v for k, v in kw.items() if k not in ("batch_size", "flush_interval")}
    return InfluxSink(
        cfg,
        "s1",
        token=None,
        writer=writer,
        backoff_initial=0.01,
        backoff_max=0.05,
        rng=random.Random(1),
        **rest,  # type: ignore[arg-type]
    )


async def test_full_batch_is_written_without_waiting_for_the_interval() -> None:
    writer = FakeWriter()
    async with sink_with(writer, batch_size=3, flush_interval=60) as sink:
        for i in range(3):
            sink.add_device_status(f"d{i}", TS, True, 1.0, 0)
        await asyncio.wait_for(writer.sent.wait(), 2)
        assert len(writer.bodies) == 1
        assert writer.lines[0].startswith("device_status,device=d0,site=s1 ")
        assert sink.stats.written_lines == 3


async def test_partial_batch_is_written_after_flush_interval() -> None:
    writer = FakeWriter()
    async with sink_with(writer, batch_size=1000, flush_interval=0.05) as sink:
        sink.add_gateway(TS, {"points_per_s": 10.0})
        await asyncio.sleep(0.01)
        assert writer.bodies == []
        await asyncio.wait_for(writer.sent.wait(), 2)
        assert writer.lines == [f"gateway,site=s1 points_per_s=10.0 {TS}"]


async def test_lines_are_split_into_batches_in_order() -> None:
    writer = FakeWriter()
    async with sink_with(writer, batch_size=4, flush_interval=0.01) as sink:
        for i in range(10):
            sink.add_gateway(TS + i, {"points_per_s": float(i)})
        assert await sink.flush(2)
    assert [len(b.split("\n")) for b in writer.bodies] == [4, 4, 2]
    assert [int(line.rsplit(" ", 1)[1]) - TS for line in writer.lines] == list(range(10))


async def test_outage_keeps_data_logs_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.sinks.influx")
    writer = FakeWriter()
    writer.down = True
    dev = make_device()
    async with sink_with(writer, batch_size=5, flush_interval=0.01) as sink:
        for i in range(12):
            sink.add_telemetry(dev, TS + i, {"ch4": i / 100}, {"ch4": "good"})
        await asyncio.wait_for(writer.wait_attempts(6), 5)
        assert writer.bodies == []
        stats = sink.stats
        assert not stats.connected
        assert stats.buffered_lines == 12
        assert stats.failed_batches >= 5
        assert stats.last_error is not None
        assert "refused" in stats.last_error
        writer.down = False
        assert await sink.flush(2)
        assert sink.stats.connected
    assert [int(line.rsplit(" ", 1)[1]) - TS for line in writer.lines] == list(range(12))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(errors) == 1
    assert "failing" in errors[0].getMessage()
    assert len(infos) == 1
    assert "recovered" in infos[0].getMessage()


async def test_backoff_grows_and_is_capped() -> None:
    writer = FakeWriter()
    writer.down = True
    sink = sink_with(writer, batch_size=1, flush_interval=0.01)
    delays = [sink.writer.failed(InfluxWriteError("x", retryable=True), 1) for _ in range(10)]
    assert 0.005 <= delays[0] <= 0.01
    assert all(d <= 0.05 for d in delays)
    assert max(delays[5:]) > 0.02  # reached the cap region, jittered


async def test_rejected_batch_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    writer = FakeWriter()
    writer.fail_status = 400
    async with sink_with(writer, batch_size=2, flush_interval=0.01) as sink:
        sink.add_lines(["bad line", "worse line", f"gateway,site=s1 x=1.0 {TS}"])
        assert await sink.flush(2)
        assert sink.stats.rejected_lines == 2
        assert sink.stats.connected
    assert writer.lines == [f"gateway,site=s1 x=1.0 {TS}"]
    assert any("refused 2 lines" in r.getMessage() for r in caplog.records)


async def test_too_large_batch_is_halved() -> None:
    writer = FakeWriter()
    writer.fail_status = 413
    async with sink_with(writer, batch_size=8, flush_interval=0.01) as sink:
        sink.add_lines([f"gateway,site=s1 x={i}.0 {TS + i}" for i in range(8)])
        assert await sink.flush(2)
    assert [len(b.split("\n")) for b in writer.bodies] == [4, 4]
    assert len(writer.lines) == 8


async def test_buffer_bound_drops_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    writer = FakeWriter()
    writer.down = True
    async with sink_with(writer, batch_size=2, flush_interval=0.01, max_buffer=5) as sink:
        for i in range(9):
            sink.add_gateway(TS + i, {"uptime_s": float(i)})
            await asyncio.sleep(0.005)
        await sink.commit()  # the last lines reach the (in-memory) outbox and its bound
        assert sink.stats.dropped_lines == 4
        assert sink.stats.buffered_lines == 5
        writer.down = False
        assert await sink.flush(2)
    kept = [int(line.rsplit(" ", 1)[1]) - TS for line in writer.lines]
    assert len(kept) == 5
    assert kept == sorted(kept)
    assert kept[-1] == 8
    full = [r for r in caplog.records if "reached its bound" in r.getMessage()]
    assert len(full) == 1


async def test_add_lines_accepts_bodies_and_bytes() -> None:
    writer = FakeWriter()
    async with sink_with(writer, batch_size=100, flush_interval=0.01) as sink:
        sink.add_lines(f"a,site=s1 x=1.0 {TS}\n\nb,site=s1 y=2i {TS}\n")
        sink.add_lines(f"c,site=s1 z=3.0 {TS}\r\n".encode())
        assert await sink.flush(2)
    assert writer.lines == [
        f"a,site=s1 x=1.0 {TS}",
        f"b,site=s1 y=2i {TS}",
        f"c,site=s1 z=3.0 {TS}",
    ]


async def test_direct_write_raises_for_the_caller_to_keep_its_copy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.sinks.influx")
    writer = FakeWriter()
    async with sink_with(writer, batch_size=100, flush_interval=30) as sink:
        assert await sink.write([f"a,site=s1 x=1.0 {TS}"]) == 1
        writer.down = True
        for _ in range(3):
            with pytest.raises(InfluxWriteError) as info:
                await sink.write(f"a,site=s1 x=2.0 {TS}\n".encode())
            assert info.value.retryable
            assert info.value.retry_after is not None
            assert 0 < info.value.retry_after <= 0.05
        assert not sink.stats.connected
        writer.down = False
        assert await sink.write(f"a,site=s1 x=2.0 {TS}") == 1
        assert sink.stats.connected
        writer.fail_status = 400
        assert await sink.write(["bad", "worse"]) == 0  # refused for good: drop, do not retry
        assert sink.stats.rejected_lines == 2
        writer.fail_status = 413
        assert await sink.write([f"b,site=s1 y={i}.0 {TS}" for i in range(4)]) == 4
        assert await sink.write("") == 0
    assert writer.lines[:2] == [f"a,site=s1 x=1.0 {TS}", f"a,site=s1 x=2.0 {TS}"]
    assert len(writer.lines) == 6
    levels = [r.levelname for r in caplog.records if "failing" in r.getMessage()]
    assert levels == ["ERROR"]  # three failures in a row: one ERROR
    assert sum("recovered" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(InfluxSinkError, match="not started"):
        await InfluxSink(config(), "s1", token=None).write("x")


async def test_close_writes_what_is_left() -> None:
    writer = FakeWriter()
    async with sink_with(writer, batch_size=1000, flush_interval=30) as sink:
        sink.add_gateway(TS, {"uptime_s": 1.0})
    assert writer.lines == [f"gateway,site=s1 uptime_s=1.0 {TS}"]


async def test_close_gives_up_after_timeout_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    writer = FakeWriter()
    writer.down = True
    async with sink_with(writer, batch_size=10, flush_interval=0.01, close_timeout=0.2) as sink:
        sink.add_gateway(TS, {"uptime_s": 1.0})
    assert any("1 lines not written" in r.getMessage() for r in caplog.records)


def test_token_from_environment_is_never_in_messages() -> None:
    cfg = config(token_env="HAZARD_TEST_TOKEN")
    assert influx_token(cfg, {"HAZARD_TEST_TOKEN": "s3cret"}) == "s3cret"
    assert influx_token(config(), {}) is None
    with pytest.raises(InfluxSinkError, match="'HAZARD_TEST_TOKEN', which is not set") as info:
        influx_token(cfg, {})
    sink = InfluxSink(cfg, "s1", token="s3cret")
    assert "s3cret" not in repr(sink)
    assert "s3cret" not in str(info.value)


def test_buffer_must_hold_a_batch() -> None:
    with pytest.raises(ValueError, match="at least one batch"):
        InfluxSink(config(batch_size=100), "s1", token=None, max_buffer=10)
