"""The power-off interlock end to end: simulators -> gateway -> Mosquitto.

A gas leak at the coal face (example site, simulated 30x faster) must put area ``face-1`` in
power-off on the retained ``P/interlock/face-1`` topic, with the methane alarm that demands it
among the causes and ``"power_off": true`` in that alarm's retained state; a subscriber that
arrives later gets the same retained state. With the face detector's feed frozen on
(``feed-stuck``), ``feed_abnormal`` is raised for that feed point.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import SiteConfig
from hazardgw.demo import demo_site
from simulators import SiteSimulator
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import listening
from tests.harness.paths import ROOT

pytestmark = pytest.mark.integration

BASE = "il/demo-site-01"


def site_on(broker: Mosquitto) -> SiteConfig:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", broker.url)
    return dataclasses.replace(site, mqtt=site.mqtt.model_copy(update={"topic_prefix": "il"}))


async def first(port: int, topics: list[str], want: Any, timeout: float) -> dict[str, Any]:
    """Every message on ``topics`` until ``want(topic, doc)``; returns the last doc per topic."""
    async with listening(port, *topics) as heard:
        found = await heard.wait_for(want, timeout)
        return {m.topic: m.doc for m in heard.messages[: heard.messages.index(found) + 1]}


def fast_clock(factor: float = 30.0) -> Any:
    t0 = time.monotonic()
    return lambda: t0 + (time.monotonic() - t0) * factor


async def test_gas_leak_puts_the_area_in_power_off_on_a_retained_topic(
    mosquitto: Mosquitto,
) -> None:
    site = site_on(mosquitto)
    interlock = f"{BASE}/interlock/face-1"
    async with SiteSimulator(site, scenario="gas-leak", seed=1, clock=fast_clock()):
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            last = await first(
                mosquitto.port,
                [interlock, f"{BASE}/alarms/+/ch4/#"],
                lambda topic, doc: topic == interlock and bool(doc and doc["power_off"]),
                40,
            )
            area = last[interlock]
            assert set(area) == {"ts", "power_off", "causes", "feed", "since"}
            assert area["power_off"] is True and area["feed"] in ("on", "off")
            assert area["since"] <= area["ts"]
            cause = area["causes"][0]
            assert cause.split("/")[1] == "ch4"
            # the alarm demanding it says so in its retained state (published in the same tick)
            alarm = last[f"{BASE}/alarms/{cause}"]
            assert (alarm["level"], alarm["power_off"], alarm["priority"]) == ("HH", True, 1)
            # a control room connecting now gets the retained state
            again = await first(mosquitto.port, [interlock], lambda _t, _d: True, 5)
            assert again[interlock]["power_off"] is True
            assert cause in again[interlock]["causes"]
        finally:
            stop.set()
            await task


async def test_feed_stuck_raises_feed_abnormal(mosquitto: Mosquitto) -> None:
    site = site_on(mosquitto)
    feed_alarm = f"{BASE}/alarms/face1-gas/feed_on/feed_abnormal"
    async with SiteSimulator(site, scenario="feed-stuck", seed=1, clock=fast_clock()):
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            last = await first(
                mosquitto.port,
                [feed_alarm, f"{BASE}/interlock/face-1"],
                lambda topic, doc: topic == feed_alarm and bool(doc),
                40,
            )
            alarm = last[feed_alarm]
            assert (alarm["state"], alarm["priority"]) == ("UNACK_ACTIVE", 1)
            area = last[f"{BASE}/interlock/face-1"]
            assert area["power_off"] is True and area["feed"] == "on"
        finally:
            stop.set()
            await task
