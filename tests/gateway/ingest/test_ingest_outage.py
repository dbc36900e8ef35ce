"""A worker while the database is away: it keeps its batch, retries with back-off, tells the
server it is still working on the messages (the outage outlasts ``ack_wait``), and afterwards has
written every message once, in the order each device published them. Real NATS (one node with
JetStream and MQTT), real VictoriaMetrics stopped and started again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import aiomqtt
import nats
import pytest

from gateway.ingest.config import parse_ingest
from gateway.ingest.worker import MQTT_STORE, IngestWorker
from gateway.sinks.influx import InfluxWriteError
from tests.gateway.ingest.harness import EXAMPLE_SITE, wait_consumer, wait_drained
from tests.harness.nats import NatsCluster, nats_binary
from tests.harness.victoria_metrics import VictoriaMetrics, find_binary

pytestmark = pytest.mark.integration

DEVICES = ("face1-gas", "face1-return-gas")


class RecordingWriter:
    """Writes to the real database over HTTP and records each body the database took."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/api/v2/write?org=o&bucket=b&precision=ms"
        self.bodies: list[str] = []
        self.failures = 0

    async def __call__(self, body: str) -> None:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(self.url, data=body.encode(), timeout=aiohttp.ClientTimeout(10)) as r,
            ):
                if r.status >= 300:
                    raise InfluxWriteError(f"HTTP {r.status}", retryable=True, status=r.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.failures += 1
            raise InfluxWriteError(str(exc), retryable=True) from exc
        self.bodies.append(body)


async def publish(port: int, start: int, count: int) -> None:
    # a client id of its own per connection: NATS jails a client id that reconnects at once
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"site-gw-{start}") as client:
        for i in range(start, start + count):
            for dev in DEVICES:
                doc = {"ts": 1_700_000_000_000 + i, "values": {"ch4": i / 1000}, "quality": {}}
                doc["quality"] = {"ch4": "good"}
                topic = f"hazard/demo-site-01/{dev}/telemetry"
                await client.publish(topic, json.dumps(doc), qos=1)


async def test_database_outage_keeps_order_and_loses_nothing(tmp_path: Path) -> None:
    if nats_binary() is None or find_binary() is None:
        pytest.skip("needs nats-server and victoria-metrics")
    with (
        NatsCluster.launch(tmp_path / "nats", nodes=1) as cluster,
        # a write that timed out here but landed is sent again: the same series and timestamp,
        # which InfluxDB overwrites and VictoriaMetrics keeps once with this flag
        VictoriaMetrics.launch(tmp_path, extra_args=("-dedup.minScrapeInterval=1ms",)) as vm,
    ):
        cfg = parse_ingest(
            {
                "nats": {"urls": cluster.nats_urls, "ack_wait": 4.0},
                "influx": {"url": vm.url, "org": "o", "bucket": "b", "batch_size": 50},
                "sites": [str(EXAMPLE_SITE)],
            }
        )
        writer = RecordingWriter(vm.url)
        worker = IngestWorker(cfg, token=None, name="w-outage", writer=writer)
        port = int(cluster.mqtt_urls[0].rsplit(":", 1)[1])
        async with aiomqtt.Client("127.0.0.1", port):  # the MQTT layer makes its streams
            pass
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        nc = await nats.connect(cluster.nats_urls)
        try:
            await wait_consumer(nc.jetstream(), MQTT_STORE, "ingest", 30)
            await publish(port, 0, 100)
            vm.stop()  # the database goes away under load
            await publish(port, 100, 300)
            await asyncio.sleep(10)  # past ack_wait: the worker must keep its messages
            assert writer.failures >= 2, worker.stats.describe()
            vm.start()
            await publish(port, 400, 100)
            drained = await wait_drained(nc.jetstream(), MQTT_STORE, "ingest", 90)
            assert drained == (0, 0), worker.stats.describe()
        finally:
            await nc.close()
            stop.set()
            await task
        written = [line for body in writer.bodies for line in body.split("\n")]
        assert worker.stats.lines == len(written) == 1000, (
            f"every message written once: {worker.stats.describe()}, {len(written)} written"
        )
        for dev in DEVICES:
            ts = [int(line.rsplit(" ", 1)[1]) for line in written if f"device={dev}" in line]
            assert ts == sorted(ts) and len(ts) == 500, f"{dev}: written in order"
            assert len(vm.samples("gas_ch4", device=dev)) == 500
