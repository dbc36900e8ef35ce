"""A site gateway against a NATS cluster's MQTT listeners exactly as against Mosquitto.

QoS 1 telemetry, retained status and alarms, commands and their replies, the will message, and
``mqtt.urls`` failover when the node the gateway talks to dies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from gateway.app import Gateway
from gateway.config import SiteConfig
from hazardgw.demo import demo_site
from simulators import SiteSimulator
from tests.harness.nats import NatsCluster
from tests.harness.paths import ROOT

pytestmark = pytest.mark.integration

BASE = "plat/demo-site-01"


def site_on(cluster: NatsCluster, urls: list[str]) -> SiteConfig:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", cluster.mqtt_urls[0])
    mqtt = site.mqtt.model_copy(update={"topic_prefix": "plat", "urls": urls, "telemetry_qos": 1})
    return dataclasses.replace(site, mqtt=mqtt)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def subscribe(client: aiomqtt.Client, topic: str, timeout: float = 30) -> None:
    """Subscribe at QoS 1, again while the cluster refuses (SUBACK 0x80): a QoS 1 subscription
    is a JetStream consumer, which cannot be made while the cluster elects a stream leader."""
    async with asyncio.timeout(timeout):
        while True:
            granted = await client.subscribe(topic, qos=1)
            if all(int(getattr(g, "value", g)) < 0x80 for g in granted):
                return
            await asyncio.sleep(0.5)


async def collect(port: int, topic: str, want: Any, timeout: float) -> list[tuple[str, Any, bool]]:
    """(topic, JSON payload, retain flag) of messages on ``topic`` until ``want(got)``."""
    got: list[tuple[str, Any, bool]] = []
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await subscribe(client, topic)
        async with asyncio.timeout(timeout):
            async for msg in client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else b""
                got.append((str(msg.topic), json.loads(payload) if payload else None, msg.retain))
                if want(got):
                    return got
    return got


async def test_gateway_on_nats_mqtt_alarms_commands_and_failover(
    nats_cluster: NatsCluster,
) -> None:
    n1, n2, n3 = (port_of(u) for u in nats_cluster.mqtt_urls)
    site = site_on(nats_cluster, nats_cluster.mqtt_urls)
    t0 = time.monotonic()
    fast = lambda: t0 + (time.monotonic() - t0) * 30.0  # noqa: E731  30x simulated time
    async with SiteSimulator(site, scenario="gas-leak", seed=1, clock=fast):
        gw = Gateway(site, backoff_max=1.0)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            await gw.publisher.wait_connected(15)
            assert gw.publisher.port == n1  # the first node of mqtt.urls
            # QoS 1 telemetry, seen through another node of the cluster
            got = await collect(n3, f"{BASE}/face1-gas/telemetry", lambda m: len(m) >= 2, 20)
            assert all(doc["quality"]["ch4"] == "good" for _, doc, _ in got)
            # the methane alarm, retained: a subscriber that comes later gets it from node 2
            got = await collect(
                n2,
                f"{BASE}/alarms/face1-gas/ch4/#",
                lambda m: any(d and d["state"] == "UNACK_ACTIVE" for _, d, _ in m),
                40,
            )
            await asyncio.sleep(0.5)
            got = await collect(n2, f"{BASE}/alarms/face1-gas/ch4/#", lambda m: len(m) >= 1, 10)
            topic, alarm, retained = got[0]
            assert retained and alarm["state"] == "UNACK_ACTIVE"
            assert alarm["value"] >= alarm["limit"] >= 1.0
            alarm_id = topic.removeprefix(f"{BASE}/alarms/")
            status = await collect(n3, f"{BASE}/gateway/status", lambda m: len(m) >= 1, 10)
            assert status[0][1]["online"] is True and status[0][2]  # retained
            # a command through node 2 reaches the gateway on node 1; the reply comes back
            async with aiomqtt.Client("127.0.0.1", n2) as client:
                await subscribe(client, f"{BASE}/cmd/reply")
                await subscribe(client, f"{BASE}/alarms/{alarm_id}")
                await client.publish(
                    f"{BASE}/cmd/alarm/ack", json.dumps({"id": alarm_id, "user": "op"}), qos=1
                )
                reply, acked = None, False
                async with asyncio.timeout(15):
                    async for msg in client.messages:
                        doc = json.loads(msg.payload) if msg.payload else None
                        if str(msg.topic).endswith("cmd/reply"):
                            reply = doc
                        elif doc and doc["state"] == "ACK_ACTIVE":
                            acked = True
                        if reply is not None and acked:
                            break
            assert reply is not None and reply["ok"] is True
            # the node the gateway talks to dies: it fails over to the next one in order
            nats_cluster.kill(0)
            deadline = time.monotonic() + 20
            while gw.publisher.port == n1 or not gw.publisher.stats.connected:
                assert time.monotonic() < deadline, "gateway did not fail over to node 2"
                await asyncio.sleep(0.1)
            # node 2 first; while the cluster moves the dead node's JetStream leaders node 2 can
            # refuse the session for a moment, and then node 3 takes it
            assert gw.publisher.port in (n2, n3)
            # telemetry flows again once the cluster has re-elected the leaders of the MQTT
            # layer's streams that lived on node 1 (QoS 1 messages are stored there first)
            got = await collect(n3, f"{BASE}/face1-gas/telemetry", lambda m: len(m) >= 2, 60)
            assert len(got) >= 2
        finally:
            stop.set()
            await task


async def test_will_message_on_nats_when_the_gateway_dies(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    """A gateway process killed outright: the cluster publishes its retained will."""
    site = site_on(nats_cluster, nats_cluster.mqtt_urls[1:])
    doc = yaml.safe_load((ROOT / "hazardgw" / "examples" / "site.yaml").read_text())
    doc["mqtt"] = {"urls": list(site.mqtt.brokers), "topic_prefix": "plat", "keepalive": 5}
    for dev, resolved in zip(doc["devices"], site.devices, strict=True):
        dev["connection"] = dataclasses.asdict(resolved.connection)
    doc["rules"] = [str(ROOT / r) for r in doc["rules"]]
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    n3 = port_of(nats_cluster.mqtt_urls[2])
    async with SiteSimulator(site, scenario="static", seed=1):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "hazardgw", "run", "-c", str(path), "--log-level", "WARNING"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=tmp_path,
        )
        try:
            got = await collect(
                n3,
                f"{BASE}/gateway/status",
                lambda m: any(d and d["online"] for _, d, _ in m),
                30,
            )
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            got = await collect(
                n3,
                f"{BASE}/gateway/status",
                lambda m: any(d and d["online"] is False for _, d, _ in m),
                30,
            )
            assert any(d["online"] is False for _, d, _ in got)
            # and it stays retained for whoever looks next
            later = await collect(n3, f"{BASE}/gateway/status", lambda m: len(m) >= 1, 10)
            assert later[0][1]["online"] is False and later[0][2]
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
