"""MQTT publishing: one connection, reconnected with capped, jittered backoff.

Telemetry at QoS 0 goes through a bounded in-memory queue (oldest dropped and counted while the
broker is away); QoS 1 messages (status, alarms, events, replies and QoS 1 telemetry) are kept
until the broker acknowledges them, and replayed in order after a reconnect. With a durable outbox
they are staged in the gateway's :class:`~gateway.delivery.TickTransaction`, which commits them to
the outbox's ``"mqtt"`` stream together with the database lines staged in the same tick (one
transaction: a gateway killed at any moment has kept either both legs of a record or neither),
and sent from there. The last retained
message of every topic is remembered and re-published on reconnect, so a broker that restarted
without persistence gets the gateway's state back. The gateway status topic carries a will
(``online: false``).

The publisher talks to the broker through a :class:`~gateway.mqtt_transport.MqttTransport`
(aiomqtt by default; :class:`gateway.mqtt_fake.FakeBroker` in unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from gateway.backoff import Backoff, jitter
from gateway.commands import command_reply, entry_refusal
from gateway.config import MqttConfig
from gateway.delivery import TickTransaction
from gateway.errors import BrokerError
from gateway.messages import OutboundMessage, json_payload
from gateway.mqtt_transport import (
    AiomqttTransport,
    ConnectOptions,
    MqttConnection,
    MqttTransport,
    Will,
)
from gateway.outbox import AsyncOutbox, EntryKind, OutboxEntry, StoredEntry
from gateway.redact import SECRETS, secret_from_env
from gateway.topics import Topics

__all__ = ["MqttPublisher", "MqttStats", "broker_address", "failover_delay"]

log = logging.getLogger(__name__)
QOS0_BATCH = 256

CommandHandler = Callable[[str, bytes], Awaitable[list[OutboundMessage]]]
MAX_INFLIGHT = 200
QOS0_QUEUE = 20_000
MQTT_STREAM = "mqtt"
#: Wait before trying the next node of a cluster after one failed (before jitter).
FAILOVER_DELAY_S = 0.1


@dataclass(slots=True)
class MqttStats:
    sent: int = 0
    dropped_qos0: int = 0
    reconnects: int = 0
    connected: bool = False
    commands: int = 0


def _entry_kind(kind: str) -> EntryKind:
    """An OutboundMessage's kind as an outbox entry kind (unknown kinds are never dropped)."""
    match kind:
        case "telemetry" | "status" | "alarm" | "event" | "reply":
            return kind
        case _:
            return "event"


def _failed(result: object) -> bool:
    return isinstance(result, BaseException)


def _as_broker_error(err: object) -> BaseException:
    if isinstance(err, BrokerError | asyncio.CancelledError):
        return err
    return BrokerError(str(err))


def failover_delay(attempt: int, nodes: int, backoff_max: float) -> float:
    """Seconds to wait (before jitter) after the ``attempt``-th failed connection in a row to one
    of ``nodes`` broker nodes tried in order: the next node is tried almost at once, and the wait
    doubles each time the whole list has failed, up to ``backoff_max``."""
    if attempt % nodes:
        return min(backoff_max, FAILOVER_DELAY_S)
    return Backoff(0.2, backoff_max).ceiling(attempt // nodes)


def broker_address(url: str) -> tuple[str, int, bool]:
    parsed = urlparse(url)
    tls = parsed.scheme == "mqtts"
    return parsed.hostname or "127.0.0.1", parsed.port or (8883 if tls else 1883), tls


def _tls_context(cfg: MqttConfig, base_dir: str | None) -> ssl.SSLContext:
    def path(p: str | None) -> str | None:
        if p is None or os.path.isabs(p) or base_dir is None:
            return p
        return os.path.join(base_dir, p)

    tls = cfg.tls
    ctx = ssl.create_default_context(cafile=path(tls.ca_file) if tls else None)
    if tls and tls.cert_file and tls.key_file:
        ctx.load_cert_chain(path(tls.cert_file) or "", path(tls.key_file))
    if tls and tls.insecure:
        ctx.check_hostname = False
    return ctx


class MqttPublisher:
    """Owns the broker connection; ``publish`` never blocks the caller.

    ``transaction`` (the gateway's, over its durable outbox) takes the QoS 1 messages; without
    one they wait in memory. Whoever owns the transaction runs its commit task.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        topics: Topics,
        *,
        client_id: str,
        version: str,
        on_command: CommandHandler | None = None,
        base_dir: str | None = None,
        backoff_max: float = 10.0,
        transaction: TickTransaction | None = None,
        transport: MqttTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``transport`` opens the broker connections (aiomqtt when None); ``sleep`` waits out
        the reconnect back-off (tests pass one that records the delays)."""
        self.cfg = cfg
        self.transport: MqttTransport = transport if transport is not None else AiomqttTransport()
        self._sleep = sleep
        self.topics = topics
        self.client_id = client_id
        self.version = version
        self.on_command = on_command
        self.base_dir = base_dir
        self.backoff_max = backoff_max
        self.stats = MqttStats()
        self._qos0: deque[OutboundMessage] = deque()
        self._qos1: deque[OutboundMessage] = deque()
        self.transaction = transaction
        self._retained: dict[str, OutboundMessage] = {}
        self._wake = asyncio.Event()  # QoS 0 queued
        self._wake1 = asyncio.Event()  # QoS 1 queued (in memory, no outbox)
        self._connected_event = asyncio.Event()
        self._connection: MqttConnection | None = None
        self._stopping = False
        self._inflight = 0  # taken from the in-memory queues, not yet acknowledged
        self.brokers = tuple(broker_address(url) for url in cfg.brokers)
        self._broker = 0  # index into brokers of the node in use (or tried next)

    @property
    def outbox(self) -> AsyncOutbox | None:
        """The durable outbox the QoS 1 messages go through (the transaction's), if any."""
        return self.transaction.outbox if self.transaction is not None else None

    @property
    def host(self) -> str:
        return self.brokers[self._broker][0]

    @property
    def port(self) -> int:
        return self.brokers[self._broker][1]

    @property
    def tls(self) -> bool:
        return self.brokers[self._broker][2]

    # ------------------------------------------------------------------ producer side

    def publish(self, msg: OutboundMessage) -> None:
        msg = SECRETS.message(msg)  # whatever a payload quotes, a known secret is not sent
        if msg.retain:
            self._retained[msg.topic] = msg
        if msg.qos == 0:
            if len(self._qos0) >= QOS0_QUEUE:
                self._qos0.popleft()
                self.stats.dropped_qos0 += 1
            self._qos0.append(msg)
            self._wake.set()
        elif self.transaction is not None:
            entry = OutboxEntry(
                _entry_kind(msg.kind), msg.topic, msg.topic, msg.payload, msg.qos, msg.retain
            )
            self.transaction.stage(MQTT_STREAM, (entry,))
        else:
            self._qos1.append(msg)
            self._wake1.set()

    @property
    def backlog(self) -> int:
        """MQTT messages not yet acknowledged by the broker (queued, staged or in the outbox)."""
        tx = self.transaction
        durable = tx.outbox.depth(MQTT_STREAM) + tx.pending(MQTT_STREAM) if tx is not None else 0
        queued = len(self._qos0) + len(self._qos1) + self._inflight
        return queued + durable

    async def wait_drained(self, poll_s: float = 0.02) -> None:
        """Return once the broker has every message published so far (``backlog`` is 0);
        QoS 0 messages count as delivered once written to the connection."""
        while self.backlog:  # noqa: ASYNC110 (acks come from several places; this runs once, at stop)
            await asyncio.sleep(poll_s)

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._connected_event.wait()

    def _status(self, online: bool) -> bytes:
        return json_payload(
            {"ts": int(time.time() * 1000), "online": online, "version": self.version}
        )

    # ------------------------------------------------------------------ connection

    def _connect_options(self) -> ConnectOptions:
        """How to connect to the node in use: credentials from the environment, the will."""
        return ConnectOptions(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            will=Will(self.topics.gateway_status, self._status(False), qos=1, retain=True),
            tls=_tls_context(self.cfg, self.base_dir) if self.tls else None,
            username=os.environ.get(self.cfg.username_env) if self.cfg.username_env else None,
            password=secret_from_env(self.cfg.password_env),
            keepalive=self.cfg.keepalive,
            max_inflight=MAX_INFLIGHT,
        )

    async def run(self) -> None:
        """Connect, publish and listen forever; broker outages are normal weather."""
        await self._connection_loop()

    def stop(self) -> None:
        """Say the connection loop is being shut down: an error while the connection closes (the
        broker's disconnect ack does not come) must not start a reconnect."""
        self._stopping = True

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                conn = await self.transport.connect(self._connect_options())
                reconnected = bool(attempt or self.stats.reconnects)
                attempt = 0
                try:
                    await self._serve(conn, reconnected=reconnected)
                finally:
                    await conn.disconnect()
            except* (BrokerError, OSError) as eg:  # OSError: e.g. a TLS file that cannot be read
                self._disconnected()
                if self._stopping:
                    raise asyncio.CancelledError from None
                if attempt == 0:
                    log.error(
                        "MQTT broker %s:%s unavailable: %s", self.host, self.port, eg.exceptions[0]
                    )
                attempt += 1
                self.stats.reconnects += 1
                delay = failover_delay(attempt, len(self.brokers), self.backoff_max)
                self._broker = (self._broker + 1) % len(self.brokers)
                if len(self.brokers) > 1 and attempt < len(self.brokers):
                    log.warning("MQTT: failing over to %s:%s", self.host, self.port)
                await self._sleep(jitter(delay))

    async def _serve(self, conn: MqttConnection, *, reconnected: bool) -> None:
        """Announce the gateway on a new connection, then send and listen until it fails."""
        self._connection = conn
        if reconnected:
            log.info("MQTT broker %s:%s reachable again", self.host, self.port)
        await conn.publish(self.topics.gateway_status, self._status(True), qos=1, retain=True)
        await conn.subscribe(self.topics.cmd_filter, qos=1)
        # Re-publish retained state behind anything still queued, so a broker that lost it gets
        # it back and an older queued state never lands last.
        for msg in list(self._retained.values()):
            self.publish(msg)
        self.stats.connected = True
        self._connected_event.set()
        async with asyncio.TaskGroup() as tg:
            # QoS 0 in batches, never waiting for QoS 1 acks; QoS 1 without an outbox: up to
            # MAX_INFLIGHT at once, each kept until acknowledged.
            tg.create_task(
                self._send_loop(conn, self._qos0, self._wake, QOS0_BATCH), name="mqtt-send"
            )
            tg.create_task(
                self._send_loop(conn, self._qos1, self._wake1, MAX_INFLIGHT), name="mqtt-send-qos1"
            )
            tg.create_task(self._listen_loop(conn), name="mqtt-listen")
            if self.outbox is not None:
                tg.create_task(self._outbox_loop(conn), name="mqtt-outbox-send")

    def _disconnected(self) -> None:
        self._connection = None
        self.stats.connected = False
        self._connected_event.clear()

    async def _send_loop(
        self,
        conn: MqttConnection,
        queue: deque[OutboundMessage],
        wake: asyncio.Event,
        batch: int,
    ) -> None:
        """Hand the messages of ``queue`` to the connection, ``batch`` at a time, as they come.

        What a lost connection left in the queue goes first, without waiting for a new message."""
        while True:
            while queue:
                await self._send_batch(conn, queue, batch)
            await wake.wait()
            wake.clear()

    async def _outbox_loop(self, conn: MqttConnection) -> None:
        assert self.outbox is not None

        async def send(stored: StoredEntry) -> None:
            e = stored.entry
            await conn.publish(e.topic, e.payload, qos=e.qos, retain=e.retain)
            self.stats.sent += 1

        while True:
            await self.outbox.wait_pending(MQTT_STREAM)
            await self.outbox.deliver(MQTT_STREAM, send, batch=1000, window=MAX_INFLIGHT)

    async def _send_batch(
        self, conn: MqttConnection, queue: deque[OutboundMessage], size: int
    ) -> None:
        """Publish the oldest ``size`` messages of ``queue`` at once (written in order);
        whatever failed goes back to the front, in order, and the error ends the connection."""
        batch = [queue.popleft() for _ in range(min(size, len(queue)))]
        self._inflight += len(batch)
        try:
            results = await asyncio.gather(
                *(conn.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in batch),
                return_exceptions=True,
            )
        except BaseException:  # cancelled: the batch is not known to be delivered
            queue.extendleft(reversed(batch))
            raise
        finally:
            self._inflight -= len(batch)
        failed = [m for m, r in zip(batch, results, strict=True) if _failed(r)]
        self.stats.sent += len(batch) - len(failed)
        if failed:
            queue.extendleft(reversed(failed))
            raise _as_broker_error(next(r for r in results if _failed(r)))

    async def _listen_loop(self, conn: MqttConnection) -> None:
        async for message in conn.messages():
            topic, payload = message.topic, message.payload
            if self.topics.is_reply(topic) or self.on_command is None:
                continue
            self.stats.commands += 1
            now = time.time()
            refusal = entry_refusal(payload, retained=message.retain, now=now)
            if refusal is not None:  # before any dispatch: holds for every command topic
                log.warning("command on %s refused: %s", topic, refusal)
                self.publish(command_reply(self.topics.base, now, None, refusal))
                continue
            try:
                replies = await self.on_command(topic, payload)
            except Exception:  # a command must never take the gateway down
                log.exception("command on %s failed", topic)
                continue
            for reply in replies:
                self.publish(reply)

    async def close(self, timeout: float = 2.0) -> None:
        """Publish ``online: false`` while still connected (best effort, for up to ``timeout``
        seconds): a clean disconnect does not fire the will."""
        conn = self._connection
        if conn is not None and self.stats.connected and timeout > 0:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await conn.publish(
                        self.topics.gateway_status, self._status(False), qos=1, retain=True
                    )
