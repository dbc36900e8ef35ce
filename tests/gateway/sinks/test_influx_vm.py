"""The sink against a real server speaking the InfluxDB v2 write API (VictoriaMetrics).

What the sink writes is read back with the same value and the same millisecond timestamp, for
every record kind; an outage of the server loses nothing and keeps each series in order.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from fieldmodel.registers import is_integer_point
from gateway.config import BUILTIN_PROFILES, InfluxConfig
from gateway.sinks import InfluxSink, InfluxWriteError
from gateway.sinks.lineprotocol import ALARM_STATE_CODES
from tests.gateway.sinks.devices import make_device
from tests.harness.victoria_metrics import VictoriaMetrics

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return int(time.time() * 1000)


def sink_for(vm: VictoriaMetrics, **kw: object) -> InfluxSink:
    cfg = InfluxConfig(
        url=vm.url, org="safety", bucket="hazard", batch_size=500, flush_interval=0.05
    )
    return InfluxSink(
        cfg,
        "xinmi-mine-01",
        token="not-checked-by-vm",
        backoff_initial=0.05,
        backoff_max=0.5,
        **kw,  # type: ignore[arg-type]
    )


async def test_every_telemetry_value_reads_back_with_its_timestamp(vm: VictoriaMetrics) -> None:
    rng = random.Random(7)
    devices = [
        make_device(profile, dev_id=f"{profile.replace('_', '-')}-{n}", area=f"area {n}")
        for profile in sorted(BUILTIN_PROFILES)
        for n in (1, 2)
    ]
    t0 = now_ms() - 60_000
    expected: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    async with sink_for(vm) as sink:
        for step in range(20):
            ts = t0 + step * 1000 + rng.randrange(1000)  # arbitrary milliseconds
            for dev in devices:
                values: dict[str, float | int | bool | None] = {}
                quality: dict[str, str] = {}
                for p in dev.points:
                    if p.type == "bool":
                        v: float | int | bool = rng.random() < 0.5
                    elif is_integer_point(p):
                        v = rng.randrange(0, 60000)
                    else:
                        v = round(rng.uniform(-50, 500), rng.randrange(0, 6))
                    good = rng.random() < 0.9
                    values[p.name] = v if good else None
                    quality[p.name] = "good" if good else "bad"
                    if good:
                        key = (dev.measurement + "_" + p.name, dev.id, f"area {dev.id[-1]}")
                        expected.setdefault(key, []).append((ts, float(v)))
                sink.add_telemetry(dev, ts, values, quality)
        assert await sink.flush(10)
        assert sink.stats.failed_batches == 0
    total = sum(len(v) for v in expected.values())
    series = vm.wait_for_samples(
        '{__name__=~"(gas|tank|elevator|crane)_.*",site="xinmi-mine-01"}', total
    )
    got = {(s.name, s.labels["device"], s.labels["area"]): s.samples for s in series}
    assert got == expected
    assert all(set(s.labels) == {"site", "device", "area"} for s in series)


async def test_alarm_and_device_status_read_back(vm: VictoriaMetrics) -> None:
    t = now_ms() - 10_000
    async with sink_for(vm) as sink:
        sink.add_alarm(
            t, device="face1-gas", point="ch4", rule="ch4_t1", level="HH",
            state="UNACK_ACTIVE", value=1.62, limit=1.5,
        )  # fmt: skip
        sink.add_alarm(
            t + 1500, device="face1-gas", point="ch4", rule="ch4_t1", level="HH",
            state="ACK_ACTIVE", value=1.7, limit=1.5,
        )  # fmt: skip
        sink.add_alarm(
            t + 9001, device="face1-gas", point="ch4", rule="ch4_t1", level="HH",
            state="NORMAL", value=0.4, limit=1.5,
        )  # fmt: skip
        sink.add_alarm(
            t + 7, device="hoist-plc", point="comm", rule="comm_fail", level="HH",
            state="UNACK_ACTIVE", value=None, limit=None,
        )  # fmt: skip
        sink.add_device_status("face1-gas", t, True, 12.5, 0)
        sink.add_device_status("face1-gas", t + 1001, False, None, 3)
        sink.add_gateway(t, {"points_per_s": 61234.5, "poll_lag_ms": 3.25, "outbox_depth": 17})
        assert await sink.flush(10)
    vm.wait_for_samples('{__name__=~"alarm_.*|device_status_.*|gateway_.*"}', 20)
    tags = {"device": "face1-gas", "point": "ch4", "rule": "ch4_t1", "level": "HH"}
    codes = ALARM_STATE_CODES
    assert vm.samples("alarm_state", **tags) == [
        (t, codes["UNACK_ACTIVE"]),
        (t + 1500, codes["ACK_ACTIVE"]),
        (t + 9001, codes["NORMAL"]),
    ]
    assert vm.samples("alarm_active", **tags) == [(t, 1), (t + 1500, 1), (t + 9001, 0)]
    assert vm.samples("alarm_value", **tags) == [(t, 1.62), (t + 1500, 1.7), (t + 9001, 0.4)]
    assert vm.samples("alarm_limit", **tags) == [(t, 1.5), (t + 1500, 1.5), (t + 9001, 1.5)]
    comm = {"device": "hoist-plc", "rule": "comm_fail"}
    assert vm.samples("alarm_state", **comm) == [(t + 7, 1)]
    assert vm.samples("alarm_value", **comm) == []
    assert vm.samples("device_status_online", device="face1-gas") == [(t, 1), (t + 1001, 0)]
    assert vm.samples("device_status_latency_ms", device="face1-gas") == [(t, 12.5)]
    assert vm.samples("device_status_errors", device="face1-gas") == [(t, 0), (t + 1001, 3)]
    assert vm.samples("gateway_points_per_s", site="xinmi-mine-01") == [(t, 61234.5)]
    assert vm.samples("gateway_outbox_depth", site="xinmi-mine-01") == [(t, 17)]
    [alarm] = vm.export('{__name__="alarm_state",device="face1-gas"}')
    assert alarm.labels == {"site": "xinmi-mine-01", **tags}


async def test_tags_with_spaces_commas_equals_and_unicode(vm: VictoriaMetrics) -> None:
    dev = make_device("tank_gauge", dev_id="t-101", area="罐区 A,east=1", owner="ops team")
    t = now_ms()
    async with sink_for(vm) as sink:
        sink.add_telemetry(dev, t, {"level": 12.345}, {"level": "good"})
        assert await sink.flush(10)
    [series] = vm.wait_for_samples('{__name__="tank_level"}', 1)
    assert series.labels["area"] == "罐区 A,east=1"
    assert series.labels["owner"] == "ops team"
    assert series.samples == [(t, 12.345)]


async def test_outage_loses_nothing_and_keeps_order(vm: VictoriaMetrics) -> None:
    dev = make_device("gas_detector", dev_id="face1-gas")
    t0 = now_ms() - 120_000
    n_before, n_during, n_after = 30, 60, 30
    async with sink_for(vm) as sink:

        async def produce(start: int, count: int) -> None:
            for i in range(start, start + count):
                sink.add_telemetry(dev, t0 + i * 100, {"ch4": i / 100, "co": i}, None)
                await asyncio.sleep(0.002)

        await produce(0, n_before)
        assert await sink.flush(10)
        vm.stop()
        await produce(n_before, n_during)  # written while the database is gone
        await asyncio.sleep(0.5)
        assert not sink.stats.connected
        assert sink.stats.buffered_lines > 0
        assert sink.stats.failed_batches >= 1
        vm.start()  # same port, same storage: the data written before is still there
        await produce(n_before + n_during, n_after)
        assert await sink.flush(30)
        assert sink.stats.connected
        assert sink.stats.dropped_lines == 0
    total = n_before + n_during + n_after
    vm.wait_for_samples('{__name__=~"gas_(ch4|co)"}', 2 * total)
    ch4 = vm.samples("gas_ch4", device="face1-gas")
    co = vm.samples("gas_co", device="face1-gas")
    assert [ts for ts, _ in ch4] == [t0 + i * 100 for i in range(total)]
    assert [v for _, v in ch4] == [i / 100 for i in range(total)]
    assert co == [(t0 + i * 100, float(i)) for i in range(total)]


async def test_direct_writes_for_the_outbox_raise_while_down(vm: VictoriaMetrics) -> None:
    t = now_ms()
    lines = [f"gateway,site=xinmi-mine-01 outbox_depth={i}i {t + i}" for i in range(3)]
    async with sink_for(vm) as sink:
        assert await sink.write(lines[:1]) == 1
        vm.stop()
        with pytest.raises(InfluxWriteError) as info:
            await sink.write("\n".join(lines[1:]))
        assert info.value.retryable
        assert info.value.retry_after is not None
        vm.start()
        assert await sink.write("\n".join(lines[1:]).encode()) == 2
    vm.wait_for_samples('{__name__="gateway_outbox_depth"}', 3)
    assert vm.samples("gateway_outbox_depth", site="xinmi-mine-01") == [
        (t, 0),
        (t + 1, 1),
        (t + 2, 2),
    ]
