"""Gateway -> MQTT and -> victoria-metrics (InfluxDB v2 write API) in one run.

Every value the gateway published on MQTT is found in the database with the same value and
timestamp; device status and alarm transitions are there too. With the durable outbox and with
``outbox: {enabled: false}`` (the lines then go through an outbox in memory).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.config import InfluxConfig, OutboxConfig
from hazardgw.demo import demo_site
from simulators import SiteSimulator
from tests.harness.mosquitto import Mosquitto
from tests.harness.paths import ROOT
from tests.harness.victoria_metrics import VictoriaMetrics

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("durable", [True, False], ids=["durable-outbox", "outbox-off"])
async def test_everything_published_lands_in_the_database(
    mosquitto: Mosquitto, vm: VictoriaMetrics, tmp_path: Path, durable: bool
) -> None:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", mosquitto.url)
    site = dataclasses.replace(
        site,
        influx=InfluxConfig(url=vm.url, org="safety", bucket="hazard", flush_interval=0.2),
        outbox=OutboxConfig(path=str(tmp_path / "outbox.sqlite3")) if durable else None,
    )
    t0 = time.monotonic()
    fast = lambda: t0 + (time.monotonic() - t0) * 30.0  # noqa: E731
    published: list[tuple[str, dict[str, Any]]] = []
    async with SiteSimulator(site, scenario="gas-leak", seed=2, clock=fast):
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                await client.subscribe("hazard/demo-site-01/#", qos=1)
                async with asyncio.timeout(40):
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else b""
                        if payload:
                            published.append((str(msg.topic), json.loads(payload)))
                        if (
                            any(t.endswith("/events/alarm") for t, _ in published)
                            and len(published) > 60
                        ):
                            break
        finally:
            stop.set()
            await task  # the sink flushes what it holds on the way out

    telemetry = [(t.split("/")[2], d) for t, d in published if t.endswith("/telemetry")]
    assert telemetry
    measurement = {d.id: d.measurement for d in site.devices}
    expected: dict[tuple[str, str, str], set[tuple[int, float]]] = {}
    for device, doc in telemetry:
        for point, value in doc["values"].items():
            if doc["quality"][point] == "good" and value is not None:
                key = (measurement[device], point, device)
                expected.setdefault(key, set()).add((doc["ts"], float(value)))

    def missing_values() -> list[tuple[tuple[str, str, str], int, float]]:
        stored = vm.export('{__name__=~"(gas|tank|elevator|crane)_.*"}')
        by_key = {
            (s.name.split("_", 1)[0], s.name.split("_", 1)[1], s.labels["device"]): dict(s.samples)
            for s in stored
        }
        return [
            (key, ts, value)
            for key, samples in expected.items()
            for ts, value in samples
            if by_key.get(key, {}).get(ts) != pytest.approx(value, rel=1e-9, abs=1e-9)
        ]

    missing = missing_values()
    for _ in range(20):  # the newest rows may take a moment to become searchable
        if not missing:
            break
        await asyncio.sleep(0.5)
        missing = missing_values()
    assert not missing, f"{len(missing)} published values not in the database: {missing[:5]}"

    statuses = vm.export('{__name__="device_status_online"}')
    assert {s.labels["device"] for s in statuses} == {d.id for d in site.devices}
    events = [  # (area events, e.g. an unexpected power loss, have no device)
        d for t, d in published if t.endswith("/events/alarm") and "id" in d and "device" in d
    ]
    alarm_series = vm.export('{__name__="alarm_state"}')
    stored_alarm_ts = {(s.labels["device"], t) for s in alarm_series for t in s.timestamps}
    for ev in events:
        assert (ev["device"], ev["ts"]) in stored_alarm_ts
