"""The gas-leak scenario over real sockets: pymodbus TCP simulators -> gateway -> Mosquitto.

The simulator runs ten times faster than the wall clock, so the coal-face methane alarm (1.0 %vol
at ~66 s of scenario time) and the power-off level (1.5 %vol at ~108 s) arrive a few seconds
apart while the gateway polls face1-gas every real second. A subscriber connected before the
gateway starts must see, in order, the alarm raised at H and escalated to HH, as transitions on
``P/events/alarm`` and as the retained state on ``P/alarms/face1-gas/ch4/ch4_face``; a client
connecting afterwards must find the retained HH state.
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
from tests.harness.mosquitto import Mosquitto
from tests.harness.paths import ROOT

pytestmark = pytest.mark.integration

SPEED = 10.0
ALARM = "face1-gas/ch4/ch4_face"


def site_on(broker: Mosquitto) -> SiteConfig:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", broker.url)
    return dataclasses.replace(
        site, mqtt=site.mqtt.model_copy(update={"topic_prefix": "gas-leak-live"})
    )


async def test_face_methane_raises_h_then_hh_on_the_broker(mosquitto: Mosquitto) -> None:
    site = site_on(mosquitto)
    base = f"gas-leak-live/{site.site.id}"
    state_topic = f"{base}/alarms/{ALARM}"
    events: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe(f"{base}/events/alarm", qos=1)
        await client.subscribe(state_topic, qos=1)
        t0 = time.monotonic()
        fast = lambda: t0 + (time.monotonic() - t0) * SPEED  # noqa: E731
        async with SiteSimulator(site, scenario="gas-leak", seed=1, clock=fast):
            gw = Gateway(site)
            stop = asyncio.Event()
            task = asyncio.create_task(gw.run(stop))
            try:
                async with asyncio.timeout(40):
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else b""
                        doc = json.loads(payload) if payload else {}
                        if str(msg.topic) == state_topic:
                            states.append(doc)
                        elif doc.get("id") == ALARM:
                            events.append(doc)
                        if any(e["level"] == "HH" for e in events) and any(
                            s.get("level") == "HH" for s in states
                        ):
                            break
            finally:
                stop.set()
                await task

    assert [(e["from"], e["to"], e["level"]) for e in events] == [
        ("NORMAL", "UNACK_ACTIVE", "H"),
        ("UNACK_ACTIVE", "UNACK_ACTIVE", "HH"),
    ]
    h, hh = events
    assert (h["limit"], h["priority"]) == (1.0, 2) and h["value"] >= 1.0
    assert (hh["limit"], hh["priority"]) == (1.5, 1) and hh["value"] >= 1.5
    assert h["ts"] < hh["ts"]
    assert [(s["state"], s["level"]) for s in states] == [
        ("UNACK_ACTIVE", "H"),
        ("UNACK_ACTIVE", "HH"),
    ]

    # a control room connecting now finds the power-off level retained
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as late:
        await late.subscribe(state_topic, qos=1)
        async with asyncio.timeout(5):
            msg = await anext(aiter(late.messages))
    assert msg.retain
    retained = json.loads(msg.payload if isinstance(msg.payload, bytes) else b"")
    assert (retained["state"], retained["level"], retained["limit"]) == ("UNACK_ACTIVE", "HH", 1.5)
