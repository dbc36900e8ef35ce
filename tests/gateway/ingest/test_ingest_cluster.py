"""The city platform under load, with real parts: 4 site gateways on their own simulators publish
QoS 1 into a 3-node NATS cluster's MQTT; ``hazardgw ingest`` worker processes share the stream's
consumer and write to VictoriaMetrics. One NATS node dies (the stream's leader), then one worker
(SIGKILL), and a third worker joins mid-run.

What the gateways published is known independently: each gateway also writes its own sink to a
second VictoriaMetrics, line for line the records it publishes. At the end the platform's database
must hold every one of those samples, once per series and timestamp (VictoriaMetrics deduplicates
a sample written twice at the same timestamp, as InfluxDB overwrites it), with the same values.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import nats
import pytest

from gateway.app import Gateway
from gateway.config import load_site
from simulators import SiteSimulator
from tests.gateway.ingest.harness import (
    IngestProcess,
    shard_sites,
    wait_consumer,
    wait_drained,
    write_ingest_config,
)
from tests.gateway.ingest.test_gateway_on_nats import port_of
from tests.harness.nats import NatsCluster
from tests.harness.victoria_metrics import Series, VictoriaMetrics, find_binary

pytestmark = pytest.mark.integration

STORE = "$MQTT_msgs"  # the cluster's store of QoS 1 MQTT messages, which the workers consume
DEDUP = ("-dedup.minScrapeInterval=1ms",)  # a sample written twice is kept once, as in InfluxDB
#: Measurements both paths write from the same records (``gateway`` lines differ by design: the
#: gateway's own sink adds sink counters the MQTT status does not carry).
COMPARED = '{__name__=~"(gas|tank|elevator|crane|alarm|device_status)_.*"}'
EXACT_VALUES = ("gas_", "tank_", "elevator_", "crane_")


def series_key(s: Series) -> tuple[str, tuple[tuple[str, str], ...]]:
    return s.name, tuple(sorted(s.labels.items()))


@contextlib.asynccontextmanager
async def running_sites(paths: list[Path]) -> AsyncIterator[list[Gateway]]:
    t0 = time.monotonic()
    fast = lambda: t0 + (time.monotonic() - t0) * 20.0  # noqa: E731  a gas leak within seconds
    sites = [load_site(p) for p in paths]
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        sims = [
            await stack.enter_async_context(
                SiteSimulator(site, scenario="gas-leak", seed=i, clock=fast)
            )
            for i, site in enumerate(sites)
        ]
        gateways = [Gateway(site, backoff_max=1.0) for site in sites]
        tasks = [asyncio.create_task(gw.run(stop)) for gw in gateways]
        try:
            yield gateways
        finally:
            for sim in sims:  # devices go quiet: what the gateways hold drains out
                await sim.__aexit__(None, None, None)
            stack.pop_all()
            deadline = time.monotonic() + 60
            while any(
                gw.publisher.backlog or (gw.sink is not None and gw.sink.buffered)
                for gw in gateways
            ):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def stream_leader(urls: list[str]) -> str | None:
    nc = await nats.connect(urls)
    try:
        info = await nc.jetstream().stream_info(STORE)
        return info.cluster.leader if info.cluster else None
    finally:
        await nc.close()


async def test_nothing_lost_when_a_nats_node_and_a_worker_die(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    if find_binary() is None:
        pytest.skip("victoria-metrics is not installed")
    with (
        VictoriaMetrics.launch(tmp_path / "platform", extra_args=DEDUP) as vm,
        VictoriaMetrics.launch(tmp_path / "direct") as direct,
    ):
        paths = shard_sites(tmp_path, 4, mqtt_urls=nats_cluster.mqtt_urls, influx_url=direct.url)
        config = write_ingest_config(tmp_path, influx_url=vm.url, sites=paths, ack_wait=3.0)
        workers = [
            IngestProcess(f"w{i}", config, nats_cluster.nats_urls, tmp_path) for i in range(3)
        ]
        workers[0].start()
        workers[1].start()
        try:
            # the MQTT layer makes its streams when a first client connects; the workers then
            # make their consumer, and from then on every QoS 1 message is kept for them
            async with aiomqtt.Client("127.0.0.1", port_of(nats_cluster.mqtt_urls[0])):
                pass
            nc = await nats.connect(nats_cluster.nats_urls)
            try:
                await wait_consumer(nc.jetstream(), STORE, "ingest", 60)
            finally:
                await nc.close()
            async with running_sites(paths) as gateways:
                await until(lambda: all(w.written()[0] > 0 for w in workers[:2]), 30)
                await asyncio.sleep(3)
                # the stream's leader dies under load
                leader = await stream_leader(nats_cluster.nats_urls)
                index = next(i for i, n in enumerate(nats_cluster.nodes) if n.name == leader)
                nats_cluster.kill(index)
                await asyncio.sleep(6)
                # then a worker, without a chance to acknowledge what it holds
                workers[0].kill()
                await asyncio.sleep(4)
                before = workers[1].written()[0]
                workers[2].start()  # a worker joins mid-run and takes a share
                await until(lambda: workers[2].written()[0] > 0, 30)
                await asyncio.sleep(3)
                assert workers[1].written()[0] > before, "the running worker keeps its share"
                # every gateway is on a live node again (MQTT sessions live in JetStream: a
                # node takes new ones once the cluster has moved the dead node's leaders)
                await until(lambda: all(gw.publisher.stats.connected for gw in gateways), 60)
            live = [n.nats_url for n in nats_cluster.nodes if n.running]
            nc = await nats.connect(live)
            try:
                pending = await wait_drained(nc.jetstream(), STORE, "ingest", 60)
            finally:
                await nc.close()
            assert pending == (0, 0)
        finally:
            for w in workers:
                w.stop()
        published = {series_key(s): s for s in direct.export(COMPARED)}
        stored = {series_key(s): s for s in vm.export(COMPARED)}
    samples = sum(len(s.timestamps) for s in published.values())
    assert samples > 500, "the load was real"
    assert any(k[0].startswith("alarm_") for k in published), "alarms were raised"
    missing = {
        k: sorted(set(s.timestamps) - set(stored[k].timestamps if k in stored else []))
        for k, s in published.items()
    }
    missing = {k: v for k, v in missing.items() if v}
    lost = sum(map(len, missing.values()))
    assert not missing, f"{lost} samples lost: {list(missing.items())[:3]}"
    for key, s in stored.items():
        assert len(s.timestamps) == len(set(s.timestamps)), f"{key} has a timestamp twice"
        assert key in published, f"{key} was not published by any gateway"
        if key[0].startswith(EXACT_VALUES):
            assert s.samples == published[key].samples, key
