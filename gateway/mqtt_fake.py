"""An in-memory MQTT broker that is also an :class:`~gateway.mqtt_transport.MqttTransport`.

For unit tests of :class:`~gateway.mqtt.MqttPublisher` (as ``httpx.MockTransport`` is for an
HTTP client): no socket, no thread, everything in the test's event loop. It keeps to the MQTT
3.1.1 behaviour the publisher depends on, and lets a test make the broker misbehave::

    broker = FakeBroker()
    publisher = MqttPublisher(cfg, topics, client_id="gw", version="t", transport=broker)
    broker.hold_acks()          # QoS 1 publishes wait for release_acks() (or a drop)
    broker.lose_acks = True     # QoS 1 publishes are received but never acknowledged
    broker.down.add(("a", 1883))  # connections to that node are refused
    broker.refusing = True      # every connection is refused
    broker.drop()               # every open connection is lost: the wills are published

What the broker received is in :attr:`FakeBroker.published` (in arrival order, wills included),
its retained store in :attr:`FakeBroker.retained`, every connection attempt in
:attr:`FakeBroker.attempts`. :meth:`FakeBroker.send` publishes as another client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.errors import BrokerError
from gateway.mqtt_transport import ConnectOptions, IncomingMessage, MqttConnection

__all__ = ["FakeBroker", "FakeConnection", "Received", "topic_matches"]


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the broker received it (``client_id`` is the sender; a will's is its owner)."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    will: bool = False


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching: ``+`` is one level, a final ``#`` any number (zero included)."""
    fparts = topic_filter.split("/")
    tparts = topic.split("/")
    for i, f in enumerate(fparts):
        if f == "#":
            return i == len(fparts) - 1
        if i >= len(tparts) or (f != "+" and f != tparts[i]):
            return False
    return len(fparts) == len(tparts)


@dataclass(eq=False)
class FakeConnection:
    """One client's connection to the :class:`FakeBroker` (an ``MqttConnection``)."""

    broker: FakeBroker
    options: ConnectOptions
    subscriptions: list[str] = field(default_factory=list)
    open: bool = True
    _inbox: asyncio.Queue[IncomingMessage | None] = field(default_factory=asyncio.Queue)
    _lost: asyncio.Future[None] = field(default_factory=asyncio.Future)

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        self._check_open()
        broker = self.broker
        broker._route(Received(self.options.client_id, topic, bytes(payload), qos, retain))
        if qos == 0:
            return
        if broker.lose_acks:
            await self._wait_lost()  # never acknowledged: only losing the connection ends it
        while not broker._acks.is_set():
            waiter = asyncio.ensure_future(broker._acks.wait())
            try:
                await asyncio.wait((waiter, self._lost), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            self._check_open()
        if broker.ack_delay:
            await asyncio.sleep(broker.ack_delay)
            self._check_open()
        broker.acked += 1

    async def subscribe(self, topic_filter: str, *, qos: int) -> None:
        self._check_open()
        self.subscriptions.append(topic_filter)
        for msg in list(self.broker.retained.values()):  # retained: on a new subscription only
            if topic_matches(topic_filter, msg.topic):
                self._inbox.put_nowait(IncomingMessage(msg.topic, msg.payload, msg.qos, True))

    async def messages(self) -> AsyncIterator[IncomingMessage]:
        while True:
            self._check_open()
            msg = await self._inbox.get()
            if msg is None:
                break
            yield msg
        raise BrokerError("connection lost while waiting for messages")

    async def disconnect(self) -> None:
        if self.open:
            self._close()

    def deliver(self, msg: IncomingMessage) -> None:
        if self.open and any(topic_matches(f, msg.topic) for f in self.subscriptions):
            self._inbox.put_nowait(msg)

    def _check_open(self) -> None:
        if not self.open:
            raise BrokerError("connection lost")

    async def _wait_lost(self) -> None:
        await asyncio.shield(self._lost)
        self._check_open()

    def _close(self) -> None:
        self.open = False
        if self in self.broker.connections:
            self.broker.connections.remove(self)
        if not self._lost.done():
            self._lost.set_result(None)
        self._inbox.put_nowait(None)


class FakeBroker:
    """An in-memory broker (and transport) at any address; see the module docstring."""

    def __init__(self) -> None:
        self.published: list[Received] = []
        self.retained: dict[str, Received] = {}
        self.connections: list[FakeConnection] = []
        self.attempts: list[ConnectOptions] = []
        self.down: set[tuple[str, int]] = set()
        self.refusing = False
        self.lose_acks = False
        self.ack_delay = 0.0
        self.acked = 0
        self._acks = asyncio.Event()
        self._acks.set()

    # ------------------------------------------------------------------ the transport

    async def connect(self, options: ConnectOptions) -> MqttConnection:
        self.attempts.append(options)
        await asyncio.sleep(0)  # a connect is never instant
        if self.refusing or (options.host, options.port) in self.down:
            raise BrokerError(f"connection refused by {options.host}:{options.port}")
        conn = FakeConnection(self, options)
        self.connections.append(conn)
        return conn

    # ------------------------------------------------------------------ misbehaviour

    def hold_acks(self) -> None:
        """QoS 1 publishes are received but wait for :meth:`release_acks` (or a drop)."""
        self._acks.clear()

    def release_acks(self) -> None:
        self._acks.set()

    def drop(self) -> None:
        """Lose every open connection at once (as a broker restart does): pending publishes
        and message iterators fail, and each connection's will is published."""
        for conn in list(self.connections):
            conn._close()
            will = conn.options.will
            if will is not None:
                self._route(
                    Received(
                        conn.options.client_id,
                        will.topic,
                        will.payload,
                        will.qos,
                        will.retain,
                        True,
                    )
                )

    # ------------------------------------------------------------------ other clients

    def send(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish as another client would (e.g. an operator's command)."""
        self._route(Received("other", topic, payload, qos, retain))

    def topics(self, prefix: str = "") -> list[str]:
        """Topics received so far, in order (those starting with ``prefix``)."""
        return [m.topic for m in self.published if m.topic.startswith(prefix)]

    def _route(self, msg: Received) -> None:
        self.published.append(msg)
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
        # to established subscriptions the retain flag is cleared (MQTT 3.1.1, 3.3.1.3)
        incoming = IncomingMessage(msg.topic, msg.payload, msg.qos, False)
        for conn in list(self.connections):
            conn.deliver(incoming)
