"""The transport contract, held by both implementations: AiomqttTransport against a real
Mosquitto, and the FakeBroker the publisher's unit tests use — so the fake says what the real
broker does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.errors import BrokerError
from gateway.mqtt_fake import FakeBroker
from gateway.mqtt_transport import (
    AiomqttTransport,
    ConnectOptions,
    IncomingMessage,
    MqttTransport,
    Will,
)
from tests.harness.mosquitto import Mosquitto, mosquitto_binary
from tests.harness.ports import free_port


@dataclass
class Broker:
    """One implementation under test: how to reach it, and how to lose it."""

    transport: MqttTransport
    host: str
    port: int
    lose: Callable[[], None]  # every connection is lost (the broker goes away)

    def options(self, client_id: str, will: Will | None = None) -> ConnectOptions:
        return ConnectOptions(self.host, self.port, client_id, will=will, keepalive=5)


@pytest.fixture(params=["fake", pytest.param("mosquitto", marks=pytest.mark.integration)])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    if request.param == "fake":
        fake = FakeBroker()
        yield Broker(fake, "broker", 1883, fake.drop)
        return
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    real = Mosquitto(tmp_path).start()
    try:
        yield Broker(AiomqttTransport(), "127.0.0.1", real.port, real.stop)
    finally:
        real.stop()


async def next_message(it: AsyncIterator[IncomingMessage]) -> IncomingMessage:
    async with asyncio.timeout(10):
        return await anext(it)


async def test_a_refused_connection_is_a_broker_error(broker: Broker) -> None:
    if isinstance(broker.transport, FakeBroker):
        broker.transport.refusing = True
        options = broker.options("c")
    else:
        options = ConnectOptions("127.0.0.1", free_port(), "c")
    with pytest.raises(BrokerError):
        await broker.transport.connect(options)


async def test_publish_subscribe_and_retained(broker: Broker) -> None:
    listener = await broker.transport.connect(broker.options("listener"))
    sender = await broker.transport.connect(broker.options("sender"))
    try:
        await listener.subscribe("t/#", qos=1)
        messages = listener.messages()
        for i in range(3):
            await sender.publish(f"t/{i}", f"m{i}".encode(), qos=1, retain=False)
        got = [await next_message(messages) for _ in range(3)]
        assert [(m.topic, m.payload, m.retain) for m in got] == [
            ("t/0", b"m0", False),
            ("t/1", b"m1", False),
            ("t/2", b"m2", False),
        ]
        # retained: to an established subscription without the flag, to a new one with it
        await sender.publish("r/state", b"on", qos=1, retain=True)
        await sender.publish("t/after", b"x", qos=0, retain=False)
        assert (await next_message(messages)).topic == "t/after"
        late = await broker.transport.connect(broker.options("late"))
        try:
            await late.subscribe("r/#", qos=1)
            first = await next_message(late.messages())
            assert (first.topic, first.payload, first.retain) == ("r/state", b"on", True)
        finally:
            await late.disconnect()
    finally:
        await sender.disconnect()
        await listener.disconnect()


async def test_a_clean_disconnect_does_not_publish_the_will(broker: Broker) -> None:
    listener = await broker.transport.connect(broker.options("listener"))
    try:
        await listener.subscribe("status/#", qos=1)
        messages = listener.messages()
        will = Will("status/gw", b"offline", qos=1, retain=True)
        gw = await broker.transport.connect(broker.options("gw", will))
        await gw.publish("status/gw", b"online", qos=1, retain=True)
        assert (await next_message(messages)).payload == b"online"
        await gw.disconnect()
        await listener.publish("status/marker", b"", qos=1, retain=False)
        assert (await next_message(messages)).topic == "status/marker"  # no will first
    finally:
        await listener.disconnect()


async def test_losing_the_broker_ends_the_messages_with_a_broker_error(broker: Broker) -> None:
    conn = await broker.transport.connect(broker.options("c"))
    try:
        await conn.subscribe("t/#", qos=1)
        waiting = asyncio.ensure_future(next_message(conn.messages()))
        await asyncio.sleep(0.05)
        broker.lose()
        with pytest.raises(BrokerError):
            await waiting
        with pytest.raises(BrokerError):
            await conn.publish("t/x", b"", qos=1, retain=False)
        if isinstance(broker.transport, FakeBroker):
            broker.transport.refusing = True
        with pytest.raises(BrokerError):  # the broker is gone: new connections are refused too
            await broker.transport.connect(broker.options("again"))
    finally:
        with contextlib.suppress(BrokerError):
            await conn.disconnect()
