"""The example site end to end: simulators -> gateway -> Mosquitto, values and alarms.

Values on MQTT must equal the simulator's registers decoded here independently (struct, not the
gateway's codec); a gas leak must raise the coal-mine methane alarm, and an ack command over MQTT
must acknowledge it (an unknown alarm gets an error reply and changes nothing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.config import SiteConfig
from hazardgw.demo import demo_site
from simulators import SiteSimulator
from tests.fieldmodel.struct_reference import decode_point
from tests.harness.mosquitto import Mosquitto
from tests.harness.paths import ROOT

pytestmark = pytest.mark.integration


def site_on(broker: Mosquitto) -> SiteConfig:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", broker.url)
    return dataclasses.replace(site, mqtt=site.mqtt.model_copy(update={"topic_prefix": "e2e"}))


async def collect(port: int, topic: str, want: Any, timeout: float) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(timeout):
            async for msg in client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else b""
                got.append((str(msg.topic), json.loads(payload) if payload else None))
                if want(got):
                    return got
    return got


async def test_static_site_values_equal_registers(mosquitto: Mosquitto) -> None:
    site = site_on(mosquitto)
    async with SiteSimulator(site, scenario="static", seed=3) as sim:
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            ids = {d.id for d in site.devices}
            got = await collect(
                mosquitto.port,
                "e2e/demo-site-01/+/telemetry",
                lambda msgs: {t.split("/")[2] for t, _ in msgs} >= ids,
                20,
            )
        finally:
            stop.set()
            await task
        latest = {t.split("/")[2]: doc for t, doc in got}
        checked = 0
        for dev in site.devices:
            image = sim.registers(dev.id)
            doc = latest[dev.id]
            for p in dev.points:
                assert doc["quality"][p.name] == "good", (dev.id, p.name)
                want = decode_point(p, image)
                assert doc["values"][p.name] == pytest.approx(want, rel=1e-6, abs=1e-9), (
                    dev.id,
                    p.name,
                )
                checked += 1
        assert checked == sum(len(d.points) for d in site.devices)


async def test_gas_leak_raises_methane_alarm_and_ack_over_mqtt(mosquitto: Mosquitto) -> None:
    site = site_on(mosquitto)
    t0 = time.monotonic()
    fast = lambda: t0 + (time.monotonic() - t0) * 30.0  # noqa: E731  30x simulated time
    base = "e2e/demo-site-01"
    alarm_id = "face1-gas/ch4/ch4_face"
    async with SiteSimulator(site, scenario="gas-leak", seed=1, clock=fast):
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            got = await collect(
                mosquitto.port,
                f"{base}/alarms/face1-gas/ch4/#",
                lambda msgs: any(d and d.get("state") == "UNACK_ACTIVE" for _, d in msgs),
                30,
            )
            topic, state = next((t, d) for t, d in got if d and d["state"] == "UNACK_ACTIVE")
            assert state["value"] >= state["limit"] >= 1.0
            alarm_id = topic.removeprefix(f"{base}/alarms/")
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                await client.subscribe(f"{base}/cmd/reply", qos=1)
                await client.subscribe(f"{base}/alarms/{alarm_id}", qos=1)
                await client.publish(
                    f"{base}/cmd/alarm/ack", json.dumps({"id": "nope/x/y", "user": "op"}), qos=1
                )
                await client.publish(f"{base}/cmd/alarm/ack", b"{not json", qos=1)
                await client.publish(
                    f"{base}/cmd/alarm/ack", json.dumps({"id": alarm_id, "user": "op"}), qos=1
                )
                replies: list[Any] = []
                acked = False
                async with asyncio.timeout(10):
                    async for msg in client.messages:
                        doc = json.loads(msg.payload) if msg.payload else None
                        if str(msg.topic).endswith("cmd/reply"):
                            replies.append(doc)
                        elif doc and doc["state"] in ("ACK_ACTIVE",):
                            acked = True
                        if len(replies) >= 3 and acked:
                            break
            assert [r["ok"] for r in replies] == [False, False, True]
            assert "nope/x/y" in replies[0]["error"]
            assert "JSON" in replies[1]["error"]
            assert acked
        finally:
            stop.set()
            await task
