"""MqttPublisher against the in-memory FakeBroker: replay, queue bounds, retained state, the will,
failover with back-off, command entry and close — each misbehaviour of the broker on demand.

The same publisher runs against real Mosquitto in test_gateway_mqtt.py and test_mqtt_urls.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.commands import MAX_COMMAND_AGE_S
from gateway.config import MqttConfig
from gateway.messages import OutboundMessage
from gateway.mqtt import QOS0_QUEUE, MqttPublisher, failover_delay
from gateway.mqtt_fake import FakeBroker, Received, topic_matches
from gateway.topics import Topics

TOPICS = Topics("hz", "s1")
STATUS = TOPICS.gateway_status


async def until(pred: Callable[[], bool], what: str, steps: int = 20_000) -> None:
    """Let the event loop run until ``pred()`` holds (no wall-clock wait: the fake is in memory)."""
    for _ in range(steps):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


class Sleeps:
    """The publisher's back-off sleep: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def alarm(i: int, *, topic: str | None = None, retain: bool = False) -> OutboundMessage:
    return OutboundMessage(
        topic or f"{TOPICS.base}/alarms/gas1/ch4/high{i}", f"m{i}".encode(), 1, retain, "alarm"
    )


def telemetry(i: int) -> OutboundMessage:
    return OutboundMessage(TOPICS.telemetry("gas1"), str(i).encode(), 0, False, "telemetry")


def status_online(msg: Received) -> bool | None:
    if msg.topic != STATUS:
        return None
    online = json.loads(msg.payload)["online"]
    assert isinstance(online, bool)
    return online


@contextlib.asynccontextmanager
async def running(pub: MqttPublisher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(pub.run())
    try:
        yield task
    finally:
        pub.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def publisher(
    broker: FakeBroker,
    *,
    urls: tuple[str, ...] = ("mqtt://broker:1883",),
    sleep: Sleeps | None = None,
    on_command: Any = None,
) -> MqttPublisher:
    cfg = MqttConfig(urls=list(urls), topic_prefix="hz")
    return MqttPublisher(
        cfg,
        TOPICS,
        client_id="gw-test",
        version="t",
        on_command=on_command,
        transport=broker,
        sleep=sleep or Sleeps(),
    )


def payloads_after_last_online(broker: FakeBroker, prefix: str) -> list[bytes]:
    """Payloads under ``prefix`` the broker received since the last ``online: true``."""
    last = max(i for i, m in enumerate(broker.published) if status_online(m) is True)
    return [m.payload for m in broker.published[last:] if m.topic.startswith(prefix)]


def test_topic_matching_of_the_fake_follows_mqtt() -> None:
    assert topic_matches("a/#", "a/b/c") and topic_matches("a/#", "a")
    assert topic_matches("a/+/c", "a/b/c") and not topic_matches("a/+", "a/b/c")
    assert not topic_matches("a/b", "a/b/c") and not topic_matches("a/b/c", "a/b")


async def test_qos1_is_replayed_in_order_after_a_reconnect() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    async with running(pub):
        await pub.wait_connected(5)
        broker.lose_acks = True  # received, never acknowledged: the connection then drops
        for i in range(5):
            pub.publish(alarm(i))
        await until(lambda: len(broker.topics(f"{TOPICS.base}/alarms")) == 5, "5 alarms sent")
        assert pub.backlog == 5  # not acknowledged: still the publisher's
        broker.drop()
        await until(lambda: not pub.stats.connected, "disconnected")
        broker.refusing = True
        for i in range(5, 8):  # published while the broker is away: behind the first five
            pub.publish(alarm(i))
        await until(lambda: pub.stats.reconnects >= 2, "a refused reconnect")
        broker.refusing = False
        broker.lose_acks = False
        await until(lambda: pub.backlog == 0, "everything acknowledged")
        replayed = payloads_after_last_online(broker, f"{TOPICS.base}/alarms")
        assert replayed == [f"m{i}".encode() for i in range(8)]
        assert pub.stats.sent == 8


async def test_qos0_queue_is_bounded_oldest_dropped_and_counted() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    extra = 7
    for i in range(QOS0_QUEUE + extra):  # the broker is not connected yet
        pub.publish(telemetry(i))
    assert pub.stats.dropped_qos0 == extra
    assert pub.backlog == QOS0_QUEUE
    async with running(pub):
        await until(lambda: pub.backlog == 0, "queue sent")
    sent = [int(m.payload) for m in broker.published if m.topic == TOPICS.telemetry("gas1")]
    assert sent == list(range(extra, QOS0_QUEUE + extra))  # the oldest went, order kept
    assert all(m.qos == 0 for m in broker.published if m.topic == TOPICS.telemetry("gas1"))


async def test_qos0_does_not_wait_for_qos1_acks() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    async with running(pub):
        await pub.wait_connected(5)
        broker.hold_acks()
        pub.publish(alarm(1))
        pub.publish(telemetry(1))
        await until(lambda: TOPICS.telemetry("gas1") in broker.topics(), "telemetry sent")
        await until(lambda: pub.backlog == 1, "telemetry counted as delivered")
        for _ in range(100):
            await asyncio.sleep(0)
        assert pub.backlog == 1  # the alarm, waiting for its ack
        broker.release_acks()
        await until(lambda: pub.backlog == 0, "alarm acknowledged")


async def test_retained_state_is_republished_on_reconnect() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    topic = f"{TOPICS.base}/alarms/gas1/ch4/high"
    async with running(pub):
        await pub.wait_connected(5)
        pub.publish(alarm(1, topic=topic, retain=True))
        await until(lambda: topic in broker.retained, "retained state stored")
        broker.drop()
        broker.retained.clear()  # a broker restarted without persistence
        await until(lambda: topic in broker.retained, "retained state back")
        assert broker.retained[topic].payload == b"m1"
        # a newer state published while away lands last: the broker keeps the newest
        broker.refusing = True
        broker.drop()
        await until(lambda: not pub.stats.connected, "disconnected")
        pub.publish(alarm(2, topic=topic, retain=True))
        broker.refusing = False
        await until(lambda: pub.stats.connected and pub.backlog == 0, "reconnected, drained")
        assert broker.retained[topic].payload == b"m2"
        assert [m.payload for m in broker.published if m.topic == topic][-1] == b"m2"


async def test_the_will_says_offline_when_the_connection_is_lost() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    async with running(pub):
        await pub.wait_connected(5)
        will = broker.attempts[0].will
        assert will is not None
        assert (will.topic, will.qos, will.retain) == (STATUS, 1, True)
        assert json.loads(will.payload)["online"] is False
        assert status_online(broker.retained[STATUS]) is True
        broker.drop()
        wills = [m for m in broker.published if m.will]
        assert len(wills) == 1 and status_online(wills[0]) is False
        await until(lambda: pub.stats.connected, "reconnected")
        await until(lambda: status_online(broker.retained[STATUS]) is True, "online again")
    assert pub.stats.reconnects == 1


async def test_failover_to_the_next_url_in_order_with_back_off() -> None:
    broker = FakeBroker()
    sleeps = Sleeps()
    urls = ("mqtt://n1:1883", "mqtt://n2:1884", "mqtts://n3")
    pub = publisher(broker, urls=urls, sleep=sleeps)
    broker.refusing = True
    async with running(pub):
        await until(lambda: len(broker.attempts) >= 7, "seven attempts")
        broker.refusing = False
        broker.down = {("n1", 1883), ("n2", 1884)}
        await pub.wait_connected(5)
        nodes = [(a.host, a.port) for a in broker.attempts]
        cycle = [("n1", 1883), ("n2", 1884), ("n3", 8883)]
        assert nodes == (cycle * 4)[: len(nodes)]  # in order, round and round
        assert pub.port == broker.connections[0].options.port == nodes[-1][1]
        assert broker.attempts[-1].tls is not None  # mqtts: TLS to that node only
        assert all(a.tls is None for a in broker.attempts if a.host != "n3")
        # the next node almost at once; a longer wait, doubling, after each full round
        for attempt, slept in enumerate(sleeps.delays, start=1):
            nominal = failover_delay(attempt, 3, 10.0)
            assert 0.5 * nominal <= slept <= nominal, (attempt, slept, nominal)
        first_two_rounds = [failover_delay(a, 3, 10.0) for a in range(1, 7)]
        assert first_two_rounds == [0.1, 0.1, 0.4, 0.1, 0.1, 0.8]
        # connected again: the next loss starts over at the next node, without a long wait
        waited = len(sleeps.delays)
        broker.drop()
        await until(lambda: len(sleeps.delays) > waited, "a wait after the loss")
        assert sleeps.delays[waited] <= failover_delay(1, 3, 10.0)


async def test_commands_are_dispatched_and_refused_at_entry() -> None:
    broker = FakeBroker()
    calls: list[tuple[str, bytes]] = []

    async def on_command(topic: str, payload: bytes) -> list[OutboundMessage]:
        calls.append((topic, payload))
        if payload == b"boom":
            raise RuntimeError("handler bug")
        return [OutboundMessage(TOPICS.cmd_reply, b'{"ok":true}', 1, False, "reply")]

    pub = publisher(broker, on_command=on_command)
    # left retained on the broker before the gateway subscribes: delivered with the retain flag
    broker.send(TOPICS.cmd_shelve, b'{"alarm":"x"}', retain=True)

    def replies() -> list[dict[str, Any]]:
        return [
            json.loads(m.payload)
            for m in broker.published
            if m.topic == TOPICS.cmd_reply and m.client_id == "gw-test"
        ]

    async with running(pub):
        await pub.wait_connected(5)
        await until(lambda: len(replies()) == 1, "the retained command refused")
        assert calls == []
        assert replies()[0]["ok"] is False and "retain" in replies()[0]["error"]

        stale_ts = (time.time() - MAX_COMMAND_AGE_S - 60) * 1000
        broker.send(TOPICS.cmd_ack, json.dumps({"alarm": "x", "ts": stale_ts}).encode())
        await until(lambda: len(replies()) == 2, "the stale command refused")
        assert calls == [] and "old" in replies()[1]["error"]

        broker.send(TOPICS.cmd_ack, b"boom")  # a handler that fails does not stop the listener
        fresh = json.dumps({"alarm": "x", "ts": time.time() * 1000}).encode()
        broker.send(TOPICS.cmd_ack, fresh)
        await until(lambda: len(replies()) == 3, "the fresh command answered")
        assert calls == [(TOPICS.cmd_ack, b"boom"), (TOPICS.cmd_ack, fresh)]
        assert replies()[2] == {"ok": True}
        # the gateway's own replies come back on its cmd/# subscription: never dispatched
        assert pub.stats.commands == 4
        broker.send(f"{TOPICS.base}/other/topic", b"{}")  # outside cmd/#: never delivered
        await asyncio.sleep(0)
        assert pub.stats.commands == 4


async def test_close_delivers_what_is_pending_within_the_timeout() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    async with running(pub):
        await pub.wait_connected(5)
        for i in range(3):
            pub.publish(alarm(i))
        async with asyncio.timeout(5):
            await pub.wait_drained()
            await pub.close(timeout=1.0)
        tail = broker.published[-4:]
        assert [m.payload for m in tail[:3]] == [b"m0", b"m1", b"m2"]
        assert status_online(tail[3]) is False and tail[3].retain  # offline, after the rest
        assert not any(m.will for m in broker.published)


async def test_close_gives_up_after_the_timeout_when_acks_do_not_come() -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    async with running(pub):
        await pub.wait_connected(5)
        broker.hold_acks()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await pub.close(timeout=0.05)
        assert loop.time() - started < 5.0  # bounded by the timeout, not by the broker
        assert status_online(broker.published[-1]) is False  # sent, not acknowledged


async def test_close_without_a_connection_returns_at_once() -> None:
    broker = FakeBroker()
    broker.refusing = True
    pub = publisher(broker)
    async with running(pub):
        await until(lambda: len(broker.attempts) >= 2, "refused twice")
        await pub.close(timeout=1.0)
    assert broker.published == []


@pytest.mark.parametrize("lost_ack", [False, True])
async def test_a_lost_connection_during_a_batch_keeps_every_message(lost_ack: bool) -> None:
    broker = FakeBroker()
    pub = publisher(broker)
    async with running(pub):
        await pub.wait_connected(5)
        if lost_ack:
            broker.lose_acks = True
        else:
            broker.hold_acks()
        for i in range(300):  # more than one batch in flight at once
            pub.publish(alarm(i))
        await until(lambda: len(broker.topics(f"{TOPICS.base}/alarms")) >= 200, "first batch")
        broker.drop()
        broker.lose_acks = False
        broker.release_acks()
        await until(lambda: pub.stats.connected and pub.backlog == 0, "all delivered")
        got = payloads_after_last_online(broker, f"{TOPICS.base}/alarms")
        assert got == [f"m{i}".encode() for i in range(300)]
