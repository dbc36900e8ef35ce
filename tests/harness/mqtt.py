"""MQTT subscribers for tests: one listener that keeps every message it receives.

:func:`listening` subscribes to topic filters on a real broker and keeps every message that
arrives, in order, until the block ends; a test waits for the message it expects and publishes
commands through the same client::

    async with listening(mosquitto.port, f"{base}/cmd/reply", f"{base}/events/alarm") as heard:
        await heard.publish(f"{base}/cmd/alarm/ack", {"id": alarm, "user": "op"})
        reply = await heard.wait_for(lambda topic, doc: topic.endswith("/cmd/reply"))
        assert reply.doc["ok"]

A payload that is JSON is parsed once (:attr:`Message.doc`); an empty one (a cleared retained
topic) has ``doc`` None. :class:`SessionRecorder` is the subscriber for tests that kill the
broker or run the gateway as a process: a persistent session, in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["Listener", "Message", "SessionRecorder", "listening"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the subscriber received it."""

    topic: str
    payload: bytes
    retain: bool
    at: float
    """``time.monotonic()`` on arrival."""
    wall: float
    """``time.time()`` on arrival."""

    @property
    def doc(self) -> Any:
        """The payload parsed as JSON; None for an empty payload."""
        return json.loads(self.payload) if self.payload else None


def _matches(topic: str, topic_filter: str) -> bool:
    return aiomqtt.Topic(topic).matches(topic_filter)


@dataclass(eq=False)
class Listener:
    """The messages one subscribed client has received so far, and ways to wait for more."""

    client: aiomqtt.Client
    on_message: Callable[[Message], None] | None = None
    """Called with each message as it arrives (after it is kept)."""
    messages: list[Message] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _listen(self) -> None:
        async for msg in self.client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else b""
            message = Message(str(msg.topic), payload, msg.retain, time.monotonic(), time.time())
            self.messages.append(message)
            self._arrived.set()
            if self.on_message is not None:
                self.on_message(message)

    def on(self, topic_filter: str) -> list[Message]:
        """The messages received on topics matching ``topic_filter`` (wildcards allowed)."""
        return [m for m in self.messages if _matches(m.topic, topic_filter)]

    def docs(self, topic_filter: str) -> list[Any]:
        """The parsed payloads of :meth:`on`."""
        return [m.doc for m in self.on(topic_filter)]

    async def wait_for(
        self, want: Callable[[str, Any], bool], timeout: float = 10.0, *, after: int = 0
    ) -> Message:
        """The first message (from index ``after`` on) for which ``want(topic, doc)`` holds,
        waiting up to ``timeout`` s for it; AssertionError when none came."""
        deadline = time.monotonic() + timeout
        seen = after
        while True:
            for message in self.messages[seen:]:
                if want(message.topic, message.doc):
                    return message
            seen = max(seen, len(self.messages))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message within {timeout} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def wait_count(
        self, topic_filter: str, count: int, timeout: float = 10.0
    ) -> list[Message]:
        """Wait until ``count`` messages matching ``topic_filter`` have come; returns them all."""
        async with asyncio.timeout(timeout):
            while len(found := self.on(topic_filter)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return found

    async def publish(self, topic: str, doc: Any, *, qos: int = 1, retain: bool = False) -> None:
        """Publish ``doc`` (JSON-encoded unless it is already bytes or str) on ``topic``."""
        payload = doc if isinstance(doc, bytes | str) else json.dumps(doc)
        await self.client.publish(topic, payload, qos=qos, retain=retain)


@contextlib.asynccontextmanager
async def listening(
    port: int,
    *topic_filters: str,
    qos: int = 1,
    host: str = "127.0.0.1",
    on_message: Callable[[Message], None] | None = None,
    **client: Any,
) -> AsyncIterator[Listener]:
    """Subscribe to ``topic_filters`` on the broker at ``host:port`` and keep what arrives; the
    subscriptions are in place when the block starts. ``on_message``: also called with each
    message; ``client``: more aiomqtt.Client options (identifier, username, tls_params, …)."""
    async with aiomqtt.Client(host, port, **client) as mqtt:
        for topic_filter in topic_filters:
            await mqtt.subscribe(topic_filter, qos=qos)
        listener = Listener(mqtt, on_message)
        task = asyncio.create_task(listener._listen())
        try:
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


class SessionRecorder:
    """An MQTT subscriber (paho, in its own thread) with a persistent session: ``clean_session``
    False, QoS 1, a fixed client id. It reconnects every second while the broker is away and
    keeps every message in arrival order, also those the broker queued for it meanwhile."""

    def __init__(self, port: int, client_id: str, topics: list[str]) -> None:
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.connects = 0
        self._connected = threading.Event()
        self._topics = topics
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc == 0:
            client.subscribe([(t, 1) for t in self._topics])
            self.connects += 1
            self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(
                Message(msg.topic, bytes(msg.payload), msg.retain, time.monotonic(), time.time())
            )

    def wait_connected(self, timeout: float = 30.0) -> None:
        if not self._connected.wait(timeout):
            raise TimeoutError("the recorder could not connect to the broker")

    def snapshot(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()
