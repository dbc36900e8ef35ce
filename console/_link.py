"""The console's broker connection and the fan-out of board changes to the browsers.

:class:`BrokerLink` owns one aiomqtt client: it subscribes to the board's topics, feeds every
message to the :class:`~console._board.AlarmBoard`, hands the changes to the :class:`Hub` (one
queue per open page), and publishes operator commands, waiting for the gateway's reply on
``P/cmd/reply`` (matched by the ``request_id`` the command carries; the gateway echoes the whole
request back). Every command carries ``ts``, so a gateway refuses one that arrives late. A lost
broker is normal weather: the board is marked stale at once, the link reconnects with capped,
jittered backoff and rebuilds the board from the retained topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import aiomqtt

from console._board import AlarmBoard, Delta
from gateway.backoff import Backoff
from gateway.topics import cmd_alarm_topic, is_reply_topic, site_base

__all__ = ["SETTLE_S", "BrokerLink", "BrokerUnavailable", "Hub"]

log = logging.getLogger(__name__)

#: A retained burst is over when no retained message came for this long after subscribing.
SETTLE_S: Final = 0.3
#: ... or at the latest this long after subscribing.
SETTLE_MAX_S: Final = 5.0
#: Frames a slow page may fall behind before it is dropped (its EventSource reconnects).
QUEUE_FRAMES: Final = 10_000


class BrokerUnavailable(Exception):
    """A command could not be sent: the console is not connected to the broker."""


def frame(deltas: Sequence[Delta]) -> str:
    """One server-sent event carrying ``deltas`` as a JSON array."""
    body = json.dumps([d.event() for d in deltas], ensure_ascii=False, separators=(",", ":"))
    return f"data: {body}\n\n"


class Hub:
    """One bounded queue of SSE frames per open page."""

    def __init__(self, *, max_frames: int = QUEUE_FRAMES) -> None:
        self.max_frames = max_frames
        self._queues: set[asyncio.Queue[str | None]] = set()

    def open(self) -> asyncio.Queue[str | None]:
        q: asyncio.Queue[str | None] = asyncio.Queue(self.max_frames)
        self._queues.add(q)
        return q

    def close(self, q: asyncio.Queue[str | None]) -> None:
        self._queues.discard(q)

    def end_all(self) -> None:
        """End every page's stream (at shutdown: the server waits for open responses)."""
        for q in list(self._queues):
            self._queues.discard(q)
            with contextlib.suppress(asyncio.QueueEmpty):
                while q.full():
                    q.get_nowait()
            q.put_nowait(None)

    def send(self, deltas: Sequence[Delta]) -> None:
        if not deltas or not self._queues:
            return
        text = frame(deltas)
        for q in list(self._queues):
            try:
                q.put_nowait(text)
            except asyncio.QueueFull:  # the page fell behind: end its stream, it reconnects
                self._queues.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)


class BrokerLink:
    """Subscribes the board to the broker and sends commands; reconnects forever."""

    def __init__(
        self,
        board: AlarmBoard,
        hub: Hub,
        *,
        host: str,
        port: int,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 10,
        backoff_max: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.board = board
        self.hub = hub
        self.host = host
        self.port = port
        self.tls_context = tls_context
        self.username = username
        self._password = password
        self.keepalive = keepalive
        self.backoff_max = backoff_max
        self.clock = clock
        self.client_id = f"hazardgw-console-{uuid.uuid4().hex[:12]}"
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._last_retained = 0.0

    def _make_client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self._password,
            identifier=self.client_id,
            keepalive=self.keepalive,
            timeout=10,
            tls_context=self.tls_context,
            clean_session=True,
        )

    async def run(self) -> None:
        """Connect, subscribe and listen until cancelled."""
        attempt = 0
        while True:
            try:
                async with self._make_client() as client:
                    for topic in self.board.subscriptions():
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    if attempt:
                        log.info("MQTT broker %s:%s reachable again", self.host, self.port)
                    attempt = 0
                    self._last_retained = time.monotonic()
                    self.hub.send(self.board.link_up(self.clock()))
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._settle(), name="console-settle")
                        tg.create_task(self._listen(client), name="console-listen")
            except* (aiomqtt.MqttError, OSError, ssl.SSLError) as eg:
                self._client = None
                error = str(eg.exceptions[0]) or type(eg.exceptions[0]).__name__
                if attempt == 0:
                    log.error("MQTT broker %s:%s unavailable: %s", self.host, self.port, error)
                    self.hub.send(self.board.link_down(self.clock(), "broker unreachable"))
                self._fail_pending()
                attempt += 1
                await asyncio.sleep(Backoff(0.1, self.backoff_max).delay(attempt))

    async def _settle(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(SETTLE_S / 3)
            now = time.monotonic()
            if now - self._last_retained >= SETTLE_S or now - started >= SETTLE_MAX_S:
                break
        self.hub.send(self.board.finish_rebuild())

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else b""
            topic = str(msg.topic)
            if msg.retain:
                self._last_retained = time.monotonic()
            if is_reply_topic(topic):
                self._reply(payload)
                continue
            self.hub.send(self.board.apply(topic, payload, retained=msg.retain, now=self.clock()))

    def _reply(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        request = doc.get("request") if isinstance(doc, dict) else None
        rid = request.get("request_id") if isinstance(request, dict) else None
        future = self._pending.get(rid) if isinstance(rid, str) else None
        if future is not None and not future.done():
            future.set_result(doc)

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrokerUnavailable("the broker connection was lost"))

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def command(
        self, site: str, verb: str, request: dict[str, Any], *, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Publish ``request`` on ``P/cmd/alarm/{verb}`` and return the gateway's reply.

        Raises :class:`BrokerUnavailable` when not connected and ``TimeoutError`` when no
        reply comes within ``timeout`` seconds."""
        client = self._client
        if client is None:
            raise BrokerUnavailable("the console is not connected to the broker")
        rid = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        stamped = {**request, "ts": round(self.clock() * 1000), "request_id": rid}
        body = json.dumps(stamped, ensure_ascii=False).encode()
        topic = cmd_alarm_topic(site_base(self.board.prefix, site), verb)
        try:
            try:
                await client.publish(topic, body, qos=1, retain=False)
            except aiomqtt.MqttError as exc:
                raise BrokerUnavailable(f"publishing the command failed: {exc}") from exc
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(rid, None)
