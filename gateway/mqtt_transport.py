"""The seam between :class:`~gateway.mqtt.MqttPublisher` and an MQTT client library.

A :class:`MqttTransport` opens one :class:`MqttConnection` to one broker node; the publisher
owns everything above it (queues, replay, retained state, failover and back-off). Two
implementations exist, as ``httpx`` has its transports:

* :class:`AiomqttTransport` — the real one, over aiomqtt (paho) and a TCP or TLS socket;
* :class:`gateway.mqtt_fake.FakeBroker` — an in-memory broker for unit tests that can refuse,
  drop the connection, hold or lose acknowledgements, and records what was published.

Every failure of the broker connection (refused, reset, timed out, lost during a publish or
while waiting for messages) surfaces as :class:`~gateway.errors.BrokerError`: library errors
are mapped here, once.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from gateway.errors import BrokerError

__all__ = [
    "AiomqttTransport",
    "ConnectOptions",
    "IncomingMessage",
    "MqttConnection",
    "MqttTransport",
    "Will",
]

# aiomqtt warns on every publish while more than ten are in flight, which a gateway that keeps
# up to max_inflight QoS 1 messages in flight does by design; its errors still show.
_client_log = logging.getLogger("gateway.mqtt.client")
_client_log.setLevel(logging.ERROR)
#: Small telemetry messages go out at once: Nagle's algorithm would hold them for the ACK of the
#: previous segment, which the broker's delayed ACK can hold for 40 ms.
_NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
#: Seconds aiomqtt waits for the broker's answer to a connect or subscribe.
_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for the client when the connection ends uncleanly."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything needed to open one connection to one broker node (a clean session)."""

    host: str
    port: int
    client_id: str
    will: Will | None = None
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    max_inflight: int = 200


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message the broker delivered on a subscription."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


class MqttConnection(Protocol):
    """One open connection to a broker node."""

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        """Send one message; returns once the broker acknowledged it (QoS 1) or once it is
        written to the connection (QoS 0). Raises BrokerError if the connection is lost first."""
        ...

    async def subscribe(self, topic_filter: str, *, qos: int) -> None:
        """Subscribe; returns once the broker acknowledged it."""
        ...

    def messages(self) -> AsyncIterator[IncomingMessage]:
        """The messages delivered on this connection's subscriptions, in arrival order; the
        iterator raises BrokerError when the connection is lost."""
        ...

    async def disconnect(self) -> None:
        """Close the connection cleanly (the broker does not publish the will)."""
        ...


class MqttTransport(Protocol):
    """Opens connections to broker nodes."""

    async def connect(self, options: ConnectOptions) -> MqttConnection:
        """Connect, or raise BrokerError (refused, unreachable, TLS or login failed)."""
        ...


class _AiomqttConnection:
    __slots__ = ("_client",)

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise BrokerError(str(exc)) from exc

    async def subscribe(self, topic_filter: str, *, qos: int) -> None:
        try:
            await self._client.subscribe(topic_filter, qos=qos)
        except aiomqtt.MqttError as exc:
            raise BrokerError(str(exc)) from exc

    async def messages(self) -> AsyncIterator[IncomingMessage]:
        try:
            async for message in self._client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                yield IncomingMessage(str(message.topic), payload, message.qos, message.retain)
        except aiomqtt.MqttError as exc:
            raise BrokerError(str(exc)) from exc

    async def disconnect(self) -> None:
        # aiomqtt raises when the broker's disconnect ack does not come
        try:
            await self._client.__aexit__(None, None, None)
        except aiomqtt.MqttError as exc:
            raise BrokerError(str(exc)) from exc


class AiomqttTransport:
    """The real transport: aiomqtt over TCP (with TCP_NODELAY) or TLS, MQTT 3.1.1."""

    async def connect(self, options: ConnectOptions) -> MqttConnection:
        will = options.will
        client = aiomqtt.Client(
            options.host,
            options.port,
            username=options.username,
            password=options.password,
            identifier=options.client_id,
            will=aiomqtt.Will(will.topic, will.payload, qos=will.qos, retain=will.retain)
            if will is not None
            else None,
            keepalive=options.keepalive,
            timeout=_TIMEOUT_S,
            tls_context=options.tls,
            max_inflight_messages=options.max_inflight,
            clean_session=True,
            logger=_client_log,
            socket_options=_NODELAY,
        )
        try:
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError) as exc:
            raise BrokerError(str(exc)) from exc
        return _AiomqttConnection(client)
