"""Out of service, return to service and unshelve end to end: a running Gateway, a real
Mosquitto, a live alarm. Each command gets a reply and an event with user and reason; the
retained alarm shows OUT_OF_SERVICE to a console that connects later; a retained command is
refused at entry like any other; a refused command changes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.config import parse_site
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Message, listening
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

P = "lc/oos-site"
ALARM = "face1-gas/_device/gas_comm"  # the device has no server: communication failure


async def retained_state(port: int) -> dict[str, Any]:
    """What a console connecting now reads on the alarm's retained topic."""
    async with aiomqtt.Client("127.0.0.1", port) as late:
        await late.subscribe(f"{P}/alarms/{ALARM}", qos=1)
        async with asyncio.timeout(10):
            async for msg in late.messages:
                assert isinstance(msg.payload, bytes)
                doc: dict[str, Any] = json.loads(msg.payload)
                return doc
    raise AssertionError("no retained alarm state")


async def test_out_of_service_return_and_unshelve_over_mqtt(mosquitto: Mosquitto) -> None:
    site = parse_site(
        {
            "site": {"id": "oos-site"},
            "mqtt": {"url": mosquitto.url, "topic_prefix": "lc"},
            "rules": ["rules/packs/coal_mine.yaml"],
            "devices": [
                {
                    "id": "face1-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": free_port()},
                    "tags": {"position": "main_return"},
                    "poll_interval": 0.5,
                    "timeout": 0.3,
                }
            ],
        }
    )
    # yesterday's command left retained on the broker: refused at entry when the gateway starts
    stale = json.dumps({"id": ALARM, "user": "old-operator", "reason": "left over"})
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish(f"{P}/cmd/alarm/out_of_service", stale, qos=1, retain=True)
    gw = Gateway(site, backoff_max=1.0)
    assert gw.alarms is not None
    engine = gw.alarms.engine
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    replies: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def note(message: Message) -> None:
        (replies if message.topic.endswith("reply") else events).append(message.doc)

    try:
        async with listening(
            mosquitto.port, f"{P}/cmd/reply", f"{P}/events/alarm", on_message=note
        ) as heard:
            client = heard.client

            async def command(verb: str, **doc: Any) -> dict[str, Any]:
                n = len(replies)
                await client.publish(f"{P}/cmd/alarm/{verb}", json.dumps(doc), qos=1)
                async with asyncio.timeout(10):
                    while len(replies) <= n:  # noqa: ASYNC110 (filled by the listener)
                        await asyncio.sleep(0.05)
                return replies[-1]

            async def next_event(n: int) -> dict[str, Any]:
                async with asyncio.timeout(10):
                    while len(events) <= n:  # noqa: ASYNC110 (filled by the listener)
                        await asyncio.sleep(0.05)
                return events[n]

            task = asyncio.create_task(gw.run(stop))
            await gw.publisher.wait_connected(15)
            async with asyncio.timeout(20):
                while engine.state(ALARM).state.value != "UNACK_ACTIVE":  # noqa: ASYNC110 (engine state)
                    await asyncio.sleep(0.1)
                while not replies:  # noqa: ASYNC110 (filled by the listener)
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            (refused,) = replies
            assert refused["ok"] is False and "retain" in refused["error"], refused
            assert engine.state(ALARM).state.value == "UNACK_ACTIVE"
            events.clear()
            replies.clear()

            # an error: not out of service, so nothing to return
            bad = await command("return_to_service", id=ALARM, user="li.na")
            assert bad["ok"] is False and "not out of service" in bad["error"], bad

            reply = await command("out_of_service", id=ALARM, user="li.na", reason="cable cut")
            assert reply["ok"] is True, reply
            out = await next_event(0)
            assert (out["id"], out["from"], out["to"], out["user"], out["reason"]) == (
                ALARM,
                "UNACK_ACTIVE",
                "OUT_OF_SERVICE",
                "li.na",
                "cable cut",
            )
            assert (await retained_state(mosquitto.port))["state"] == "OUT_OF_SERVICE"

            reply = await command("return_to_service", id=ALARM, user="li.na", reason="fixed")
            assert reply["ok"] is True, reply
            back = await next_event(1)
            assert (back["from"], back["to"], back["user"], back["reason"]) == (
                "OUT_OF_SERVICE",
                "UNACK_ACTIVE",  # still failing: shown to the operator again
                "li.na",
                "fixed",
            )

            assert (await command("shelve", id=ALARM, user="zhang", minutes=30))["ok"] is True
            assert (await next_event(2))["to"] == "SHELVED"
            reply = await command("unshelve", id=ALARM, user="zhang", reason="crew on site")
            assert reply["ok"] is True, reply
            unshelved = await next_event(3)
            assert (unshelved["from"], unshelved["to"], unshelved["reason"]) == (
                "SHELVED",
                "UNACK_ACTIVE",
                "crew on site",
            )
            assert (await retained_state(mosquitto.port))["state"] == "UNACK_ACTIVE"
            await asyncio.sleep(0.5)
            assert len(events) == 4, events  # the refused commands published no event
            assert not task.done()
            assert engine.state(ALARM).state.value == "UNACK_ACTIVE"
    finally:
        stop.set()
        if task is not None:
            async with asyncio.timeout(20):
                await task
