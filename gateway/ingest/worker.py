"""One ``hazardgw ingest`` worker: a JetStream stream of every site's messages -> the database.

Every worker binds to one durable pull consumer of the stream (created with the stream when
missing), so the stream's messages are shared out between however many workers run, wherever
they run: each message goes to one worker, and a message a worker took but did not acknowledge
within ``nats.ack_wait`` (it died, or its host did) goes to another. Add a worker and it takes
its share at its next fetch; nothing is configured per worker.

A worker fetches up to ``influx.batch_size`` messages, decodes them (:mod:`gateway.ingest.decode`)
and writes the batch with one request (the gateway's :class:`~gateway.sinks.influx.InfluxWriter`,
which counts, logs and backs off), and acknowledges the messages only after the database took
them. While the database is away the worker keeps its batch and retries it with capped,
jittered backoff, telling the server the messages are still being worked on (so they are not
handed to another worker meanwhile) and fetching nothing more: a device's data is written in the
order it was published, none is skipped. The next batch is fetched and decoded while one is being
written (at most one waits). A message that is not the contract's JSON is logged, counted and
terminated (it would fail forever); messages with nothing to write are acknowledged.

A write that succeeded but whose acknowledgement was lost (the worker died in between) is written
again by another worker: the same series and timestamp, which InfluxDB overwrites.

Where the messages come from (``nats.stream``):

* ``$MQTT_msgs`` (the default): the store nats-server's MQTT layer keeps of every QoS 1 PUBLISH.
  The server writes a QoS 1 message to this replicated stream *before* it sends the PUBACK, and
  closes the connection instead when it cannot; the gateway keeps the message in its outbox until
  the PUBACK. So a sample the gateway let go of is on a quorum of the cluster's disks, whichever
  node dies. The stream has interest retention: the workers' consumer (filtered to
  ``$MQTT.msgs.{prefix}.>``) keeps each message until a worker acknowledges it. Sites send
  telemetry with ``mqtt.telemetry_qos: 1`` (QoS 0 is not stored). The stream exists once the first
  MQTT client has connected to the cluster; the worker waits for it.
* any other name: a stream over the subjects ``{prefix}.>``, created when missing (work-queue
  retention, ``nats.replicas`` or one per node up to 3). It takes QoS 0 messages too, but the
  MQTT layer does not wait for it: while a stream leader is being re-elected after a node died,
  messages the gateways published are acknowledged to them and not stored (seconds' worth).

Imports nats-py (the ``platform`` extra): the CLI imports this module only for ``ingest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from gateway.backoff import Backoff
from gateway.ingest.config import IngestConfig
from gateway.ingest.decode import PlatformDecoder
from gateway.sinks.influx import InfluxWriteError, InfluxWriter, LineWriter

__all__ = ["IngestStats", "IngestWorker", "run_event_loop"]

log = logging.getLogger(__name__)

FETCH_WAIT_S: Final = 1.0
HOLD_POLL_S: Final = 0.02
RETRY_S: Final = 0.5
RETRY_MAX_S: Final = 5.0
#: Connecting to NATS and binding the consumer retry after 0.5, 1, 2, 4, then every 5 s.
_RETRY: Final = Backoff(RETRY_S, RETRY_MAX_S)
MAX_CLUSTER_REPLICAS: Final = 3
MQTT_STORE: Final = "$MQTT_msgs"
"""nats-server's stream of QoS 1 MQTT messages (on the subjects ``$MQTT.msgs.<subject>``)."""
MQTT_STORE_PREFIX: Final = "$MQTT.msgs."


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a worker to the end on uvloop's event loop when it is installed (the ``platform``
    extra brings it, except on Windows: measured 13 % less worker CPU per message than
    asyncio's loop, whose per-message task and callback handling nats-py leans on), else on
    asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional (not on Windows)
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


@dataclass(slots=True)
class IngestStats:
    messages: int = 0  # taken from the stream and acknowledged (or terminated)
    lines: int = 0  # written to the database
    skipped: int = 0  # nothing to write (commands, retained alarm states, ...)
    invalid: int = 0  # not the contract's JSON: terminated
    write_failures: int = 0  # failed write attempts (each retry counts)
    fetch_errors: int = 0

    def describe(self) -> str:
        return (
            f"messages={self.messages} lines={self.lines} skipped={self.skipped} "
            f"invalid={self.invalid} write_failures={self.write_failures} "
            f"fetch_errors={self.fetch_errors}"
        )


@dataclass(slots=True)
class _Batch:
    msgs: list[Msg]
    lines: list[str]
    invalid: list[Msg] = field(default_factory=list)
    touched: float = field(default_factory=time.monotonic)


class IngestWorker:
    """Use ``await worker.run(stop)``; ``writer`` replaces the HTTP client (tests)."""

    def __init__(
        self,
        cfg: IngestConfig,
        *,
        token: str | None,
        name: str = "ingest",
        writer: LineWriter | None = None,
        stats_interval: float = 10.0,
    ) -> None:
        self.cfg = cfg
        self.name = name
        self.token = token
        self.writer = writer
        self.stats_interval = stats_interval
        self.decoder = PlatformDecoder(cfg.sites, cfg.topic_prefix)
        self.stats = IngestStats()
        self._held: deque[_Batch] = deque()  # fetched, not yet acknowledged, in order
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=1)
        self._closing = False  # the connection is being closed on purpose: no warning for that

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then hand back what was not written (nak) and close."""
        async with InfluxWriter(self.cfg.influx, token=self.token, writer=self.writer) as sink:
            nc = await self._connect(stop)
            if nc is None:
                return
            try:
                js = nc.jetstream(timeout=5.0)
                psub = await self._bind(js, nc, stop)
                if psub is None:
                    return
                log.info(
                    "ingest %s: stream %s, consumer %s, %d site files",
                    self.name,
                    self.cfg.nats.stream,
                    self.cfg.nats.consumer,
                    len(self.cfg.sites),
                )
                tasks = [
                    asyncio.create_task(self._fetch_loop(psub), name="ingest-fetch"),
                    asyncio.create_task(self._write_loop(sink), name="ingest-write"),
                    asyncio.create_task(self._keepalive_loop(), name="ingest-keepalive"),
                    asyncio.create_task(self._stats_loop(), name="ingest-stats"),
                ]
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
                for task in [*tasks, stopper]:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                for task in done:  # a loop that ended by itself: its error is the worker's
                    if task is not stopper and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                await self._give_back()
            finally:
                self._closing = True
                with contextlib.suppress(Exception):
                    await nc.close()
                log.info("ingest %s stopped: %s", self.name, self.stats.describe())

    async def _connect(self, stop: asyncio.Event) -> NatsClient | None:
        failures = 0
        while not stop.is_set():
            try:
                return await nats.connect(
                    servers=list(self.cfg.nats.urls),
                    name=self.name,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    error_cb=self._nats_error,
                    disconnected_cb=self._nats_disconnected,
                    reconnected_cb=self._nats_reconnected,
                )
            except Exception as exc:  # no server reachable yet: normal weather
                log.error("NATS %s unreachable (%s); retrying", self.cfg.nats.urls, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY.ceiling(failures))
                failures += 1
        return None

    async def _nats_error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    async def _nats_disconnected(self) -> None:
        if not self._closing:
            log.warning("ingest %s: NATS connection lost; reconnecting", self.name)

    async def _nats_reconnected(self) -> None:
        log.info("ingest %s: NATS connection back", self.name)

    async def _bind(
        self, js: JetStreamContext, nc: NatsClient, stop: asyncio.Event
    ) -> JetStreamContext.PullSubscription | None:
        """Create the stream and the consumer when missing (every worker may try: it is
        idempotent) and bind to the consumer; retried while the cluster is not ready."""
        failures = 0
        while not stop.is_set():
            try:
                await self._ensure_stream(js, nc)
                await self._ensure_consumer(js)
                return await js.pull_subscribe_bind(
                    durable=self.cfg.nats.consumer, stream=self.cfg.nats.stream
                )
            except Exception as exc:  # JetStream not ready (electing a leader, too few nodes)
                log.error(
                    "stream %s / consumer %s not ready (%s); retrying",
                    self.cfg.nats.stream,
                    self.cfg.nats.consumer,
                    exc,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY.ceiling(failures))
                failures += 1
        return None

    @property
    def filter_subject(self) -> str:
        """The consumer's subjects: this prefix's messages of the stream."""
        if self.cfg.nats.stream == MQTT_STORE:
            return MQTT_STORE_PREFIX + self.decoder.subjects
        return self.decoder.subjects

    def replicas(self, nc: NatsClient) -> int:
        if self.cfg.nats.replicas is not None:
            return self.cfg.nats.replicas
        known = {str(s) for s in nc.servers} | set(self.cfg.nats.urls)
        return max(1, min(MAX_CLUSTER_REPLICAS, len(known)))

    async def _ensure_stream(self, js: JetStreamContext, nc: NatsClient) -> None:
        name = self.cfg.nats.stream
        if name == MQTT_STORE:
            try:
                await js.stream_info(name)
            except NotFoundError:
                raise RuntimeError(
                    f"{MQTT_STORE} does not exist yet: nats-server creates it when the first MQTT "
                    "client connects (is the cluster's mqtt listener enabled?)"
                ) from None
            return
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            max_mb = self.cfg.nats.max_bytes_mb
            config = StreamConfig(
                name=name,
                subjects=[self.decoder.subjects],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=self.replicas(nc),
                max_bytes=int(max_mb * 2**20) if max_mb is not None else None,
            )
            info = await js.add_stream(config)
            log.info(
                "created stream %s over %s, %d replicas",
                name,
                self.decoder.subjects,
                info.config.num_replicas,
            )
        subjects = info.config.subjects or []
        if self.decoder.subjects not in subjects:
            log.warning(
                "stream %s captures %s, not %s: messages outside it are not ingested",
                name,
                subjects,
                self.decoder.subjects,
            )

    async def _ensure_consumer(self, js: JetStreamContext) -> None:
        n = self.cfg.nats
        try:
            await js.consumer_info(n.stream, n.consumer)
            return
        except NotFoundError:
            pass
        await js.add_consumer(
            n.stream,
            ConsumerConfig(
                durable_name=n.consumer,
                filter_subject=self.filter_subject,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=n.ack_wait,
                max_ack_pending=n.max_ack_pending,
                max_waiting=512,
            ),
        )
        log.info("created consumer %s on %s", n.consumer, n.stream)

    # ------------------------------------------------------------------ loops

    async def _fetch_loop(self, psub: JetStreamContext.PullSubscription) -> None:
        batch_size = self.cfg.influx.batch_size
        failing = False
        while True:
            # While the writer is behind (the database is away) no pull request is left open:
            # a message the server delivers to an open request after the client stopped waiting
            # for it waits in the subscription's queue, where nothing reports it in progress,
            # and would be handed to another worker after ack_wait. One that arrived anyway is
            # fetched (from that queue) at once, and so held and kept alive.
            await self._room_or_stragglers(psub)
            try:
                msgs = await psub.fetch(batch_size, timeout=FETCH_WAIT_S)
            except (TimeoutError, NatsTimeout):
                continue  # nothing to do
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # node gone, leader moving: normal weather
                self.stats.fetch_errors += 1
                if not failing:
                    log.warning("ingest %s: fetch failed (%s); retrying", self.name, exc)
                    failing = True
                await asyncio.sleep(RETRY_S)
                continue
            if failing:
                log.info("ingest %s: fetching again", self.name)
                failing = False
            await self._queue.put(self._decode(msgs))

    async def _room_or_stragglers(self, psub: JetStreamContext.PullSubscription) -> None:
        """Until the queue has room for a batch, or messages wait in the subscription's queue."""
        while True:
            if not self._queue.full() or psub.pending_msgs:
                return
            await asyncio.sleep(HOLD_POLL_S)

    def _decode(self, msgs: list[Msg]) -> _Batch:
        batch = _Batch(msgs, [])
        self._held.append(batch)
        decode = self.decoder.decode
        strip = len(MQTT_STORE_PREFIX)
        for msg in msgs:
            subject = msg.subject
            d = decode(
                subject[strip:] if subject.startswith(MQTT_STORE_PREFIX) else subject, msg.data
            )
            if d.line is not None:
                batch.lines.append(d.line)
            elif d.outcome == "invalid":
                batch.invalid.append(msg)
                if self.stats.invalid < 20 or self.stats.invalid % 1000 == 0:
                    log.error("message on %s dropped: %s", msg.subject, d.reason)
                self.stats.invalid += 1
            else:
                self.stats.skipped += 1
        return batch

    async def _write_loop(self, sink: InfluxWriter) -> None:
        while True:
            batch = await self._queue.get()
            if batch.lines:
                await self._write(sink, batch)
            invalid = {id(m) for m in batch.invalid}
            for msg in batch.msgs:
                await (msg.term() if id(msg) in invalid else msg.ack())
            self.stats.messages += len(batch.msgs)
            self._held.popleft()

    async def _write(self, sink: InfluxWriter, batch: _Batch) -> None:
        """Until the database takes the batch (or refuses it as malformed: counted by the sink)."""
        while True:
            try:
                self.stats.lines += await sink.write(batch.lines)
                return
            except InfluxWriteError as exc:
                self.stats.write_failures += 1
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None else RETRY_S)

    async def _keepalive_loop(self) -> None:
        """Messages held longer than a third of ``ack_wait`` are reported in progress, so the
        server does not give them to another worker while this one waits for the database."""
        period = self.cfg.nats.ack_wait / 3
        while True:
            await asyncio.sleep(period / 2)
            now = time.monotonic()
            for batch in list(self._held):
                if now - batch.touched >= period:
                    for msg in batch.msgs:
                        with contextlib.suppress(Exception):
                            await msg.in_progress()
                    batch.touched = now

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            log.info("ingest %s stats: %s", self.name, self.stats.describe())

    async def _give_back(self) -> None:
        """On a stop: messages fetched but not written go back to the stream for another worker
        at once (instead of after ``ack_wait``)."""
        held, self._held = list(self._held), deque()
        n = 0
        for batch in held:
            for msg in batch.msgs:
                with contextlib.suppress(Exception):
                    await msg.nak()
                    n += 1
        if n:
            log.info("ingest %s: %d messages not written handed back", self.name, n)
