"""Bad commands end to end: a running Gateway, a real Mosquitto, a live alarm. Every malformed,
oversized or wrong command on the ack/shelve topics gets an error reply; commands on other topics
get nothing; the alarm stays as it was and the gateway keeps running — then a good ack works."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.config import SiteConfig, parse_site
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Message, listening
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

P = "bi/cmd-site"
ALARM = "face1-gas/_device/gas_comm"  # the device has no server: communication failure
BAD_ON_ACK = [
    b"{not json",
    b"\xff\xfe\xfa",
    b"[1, 2]",
    b"null",
    json.dumps({"id": ALARM}).encode(),
    json.dumps({"id": 7, "user": "op"}).encode(),
    json.dumps({"id": ALARM, "user": ["op"]}).encode(),
    json.dumps({"id": "nope/x/y", "user": "op"}).encode(),
    json.dumps({"id": ALARM, "user": "op", "pad": "x" * 5000}).encode(),
    json.dumps({"id": ALARM, "user": "op\ud800"}).encode(),
    b"",
]
BAD_ON_SHELVE = [
    json.dumps({"id": ALARM, "user": "op", "minutes": 10**400}).encode(),
    json.dumps({"id": ALARM, "user": "op", "minutes": "30"}).encode(),
    b'{"id": "%s", "user": "op", "minutes": NaN}' % ALARM.encode(),
    json.dumps({"id": ALARM, "user": "op", "minutes": -1}).encode(),
]
OTHER_TOPICS = [f"{P}/cmd/alarm/delete", f"{P}/cmd/alarm", f"{P}/cmd/anything/else"]


def _command_site(mosquitto: Mosquitto) -> SiteConfig:
    """One methane detector at a main return (no power-off: gas_comm) under prefix ``bi``."""
    return parse_site(
        {
            "site": {"id": "cmd-site"},
            "mqtt": {"url": mosquitto.url, "topic_prefix": "bi"},
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


async def test_bad_commands_over_mqtt_change_nothing(mosquitto: Mosquitto) -> None:
    site = _command_site(mosquitto)
    gw = Gateway(site, backoff_max=1.0)
    assert gw.alarms is not None
    engine = gw.alarms.engine
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    replies: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def note(message: Message) -> None:
        (replies if message.topic.endswith("reply") else events).append(message.doc)

    try:
        async with listening(
            mosquitto.port, f"{P}/cmd/reply", f"{P}/events/alarm", on_message=note
        ) as heard:
            client = heard.client
            await gw.publisher.wait_connected(15)
            async with asyncio.timeout(20):
                while engine.state(ALARM).state.value != "UNACK_ACTIVE":  # noqa: ASYNC110 (engine state)
                    await asyncio.sleep(0.1)
            before = repr(engine.state(ALARM))
            await asyncio.sleep(0.5)
            events.clear()

            for payload in BAD_ON_ACK:
                await client.publish(f"{P}/cmd/alarm/ack", payload, qos=1)
            for payload in BAD_ON_SHELVE:
                await client.publish(f"{P}/cmd/alarm/shelve", payload, qos=1)
            for topic in OTHER_TOPICS:
                await client.publish(topic, json.dumps({"id": ALARM, "user": "op"}), qos=1)
            n_bad = len(BAD_ON_ACK) + len(BAD_ON_SHELVE) + len(OTHER_TOPICS)
            deadline = time.monotonic() + 15
            while len(replies) < n_bad and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything more would arrive now

            assert len(replies) == n_bad, replies
            assert all(r["ok"] is False and r["error"] for r in replies), replies
            assert all(r["ts"] > 0 for r in replies), replies  # unknown topics' replies too
            unknown = [r for r in replies if "unknown command topic" in r["error"]]
            assert len(unknown) == len(OTHER_TOPICS)
            assert repr(engine.state(ALARM)) == before
            assert events == []
            assert not task.done()

            good = json.dumps({"id": ALARM, "user": "li.na"})
            await client.publish(f"{P}/cmd/alarm/ack", good, qos=1)
            async with asyncio.timeout(10):
                while len(replies) <= n_bad:  # noqa: ASYNC110 (filled by the listener)
                    await asyncio.sleep(0.05)
            assert replies[-1]["ok"] is True
            assert engine.state(ALARM).state.value == "ACK_ACTIVE"
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


async def test_retained_and_old_commands_are_refused_at_entry(mosquitto: Mosquitto) -> None:
    """A shelve left retained on the broker by yesterday's operator is refused at every start,
    like a retained command on any other command topic; a live command with an old ``ts`` is
    refused too; a live, fresh one works."""
    site = _command_site(mosquitto)
    shelve = json.dumps({"id": ALARM, "user": "old-operator", "minutes": 1440})
    retained_topics = [f"{P}/cmd/alarm/shelve", f"{P}/cmd/device/maintenance"]
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for topic in retained_topics:
            await client.publish(topic, shelve, qos=1, retain=True)
    for _start in range(2):  # refused again at the next start: never acted on
        gw = Gateway(site, backoff_max=1.0)
        assert gw.alarms is not None
        engine = gw.alarms.engine
        stop = asyncio.Event()
        async with listening(mosquitto.port, f"{P}/cmd/reply") as heard:
            client = heard.client
            task = asyncio.create_task(gw.run(stop))
            try:
                got = await heard.wait_count(f"{P}/cmd/reply", len(retained_topics), 20)
                replies = [m.doc for m in got]
                assert [r["ok"] for r in replies] == [False, False], replies
                assert all("retain" in r["error"] and r["ts"] > 0 for r in replies), replies
                async with asyncio.timeout(20):
                    while engine.state(ALARM).state.value != "UNACK_ACTIVE":  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                assert engine.state(ALARM).shelved_until is None

                now_ms = int(time.time() * 1000)
                old = json.dumps({"id": ALARM, "user": "op", "ts": now_ms - 3_600_000})
                fresh = json.dumps({"id": ALARM, "user": "op", "ts": now_ms})
                await client.publish(f"{P}/cmd/alarm/ack", old, qos=1)
                await client.publish(f"{P}/cmd/alarm/ack", fresh, qos=1)
                got = await heard.wait_count(f"{P}/cmd/reply", len(retained_topics) + 2, 10)
                old_reply, fresh_reply = [m.doc for m in got[-2:]]
                assert old_reply["ok"] is False and "old" in old_reply["error"], old_reply
                assert fresh_reply["ok"] is True, fresh_reply
                assert engine.state(ALARM).state.value == "ACK_ACTIVE"
            finally:
                stop.set()
                async with asyncio.timeout(20):
                    await task
