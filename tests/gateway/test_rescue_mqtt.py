"""A rescue end to end: a simulated lift traps a passenger, the running gateway opens the
retained rescue record on a real Mosquitto, and the rescuer's commands over MQTT stamp its
stages (they enter through the gateway's one command entry, like every command)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import parse_site
from simulators import SCENARIOS, SiteSimulator
from simulators.scenarios import ScenarioContext, scenario
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Message, listening
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

P = "rq/lift-site"
TAGS = {"registration_code": "31104101002019110007", "maintenance_unit": "Lift Co."}
TRAP_AT_ONCE = "test-trap-at-once"

if TRAP_AT_ONCE not in SCENARIOS:

    @scenario(TRAP_AT_ONCE, "the car's first journey stops between floors (test only)")
    def _trap_at_once(ctx: ScenarioContext) -> None:
        for device in ctx.of_kind("elevator"):
            ctx.model(device.id).set(trap_at=0.0, trap_for=600.0)


def lift(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "lift-a",
        "profile": "elevator",
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
        "poll_interval": 0.2,
        "timeout": 0.5,
        "tags": TAGS,
        **extra,
    }


async def test_trapped_lift_rescue_over_mqtt(mosquitto: Mosquitto) -> None:
    port = free_port()
    sim_site = parse_site({"site": {"id": "lift-site"}, "devices": [lift(port)]})
    async with SiteSimulator(sim_site, TRAP_AT_ONCE):
        site = parse_site(
            {
                "site": {"id": "lift-site"},
                "mqtt": {"url": mosquitto.url, "topic_prefix": "rq"},
                "rules": ["rules/packs/elevator.yaml"],
                "rescue": {"arrive_within_min": 20},
                # a short hold so the test need not wait the pack's 30 s
                "devices": [lift(port, limits={"elevator_trapped": {"for_s": 2}})],
            }
        )
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        records: list[tuple[bytes, bool]] = []
        replies: list[dict[str, Any]] = []
        try:

            def note(message: Message) -> None:
                if message.topic.endswith("reply"):
                    replies.append(message.doc)
                else:
                    records.append((message.payload, message.retain))

            async with listening(
                mosquitto.port, f"{P}/rescue/lift-a", f"{P}/cmd/reply", on_message=note
            ) as heard:
                client = heard.client
                async with asyncio.timeout(30):
                    while not records:  # noqa: ASYNC110 (filled by the listener)
                        await asyncio.sleep(0.1)
                opened = json.loads(records[-1][0])
                assert opened["open"] is True and opened["alarm"] == "lift-a/floor/elevator_trapped"
                assert opened["registration_code"] == TAGS["registration_code"]
                assert opened["maintenance_unit"] == TAGS["maintenance_unit"]
                assert opened["targets_min"]["arrival"] == 20

                arrive = json.dumps({"device": "lift-a", "user": "li.rescuer"})
                # a command for a lift with no open rescue is refused and changes nothing
                wrong = json.dumps({"device": "lift-b", "user": "li.rescuer"})
                await client.publish(f"{P}/cmd/rescue/arrive", wrong, qos=1)
                await client.publish(f"{P}/cmd/rescue/arrive", arrive, qos=1)
                async with asyncio.timeout(10):
                    while len(replies) < 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                assert replies[0]["ok"] is False and "no open rescue" in replies[0]["error"]
                assert replies[1]["ok"] is True
                async with asyncio.timeout(10):
                    while json.loads(records[-1][0])["stages"]["arrived"] is None:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                assert json.loads(records[-1][0])["users"]["arrived"] == "li.rescuer"

                n = len(records)
                release = json.dumps({"device": "lift-a", "user": "li.rescuer"})
                await client.publish(f"{P}/cmd/rescue/release", release, qos=1)
                async with asyncio.timeout(10):
                    while len(records) < n + 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                final, cleared = records[n], records[n + 1]
                assert json.loads(final[0])["open"] is False
                assert json.loads(final[0])["stages"]["released"] is not None
                assert cleared[0] == b""
                assert replies[-1]["ok"] is True
        finally:
            stop.set()
            async with asyncio.timeout(20):
                await task
