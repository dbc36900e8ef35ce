"""The time-series sink: line protocol to InfluxDB 2.x (or any server with its write API).

Records are encoded at once (cheap, non-blocking ``add_*`` calls) into a bounded in-memory buffer;
one background task writes them in batches of ``batch_size`` lines, at least every
``flush_interval`` seconds, through influxdb-client's async write API with precision ``ms``.

A database going away is normal weather: the failed batch is kept and retried with capped,
jittered exponential backoff; the outage is logged once at ERROR and the recovery at INFO. Lines
are written in the order they were added, so each series keeps its order. When the buffer bound
is reached the oldest lines are dropped and counted (``stats.dropped_lines``). A batch the server
refuses as malformed (HTTP 400/422) would fail forever: it is dropped, counted
(``stats.rejected_lines``) and logged at ERROR.

With a durable outbox (``outbox=``) the memory buffer is not used: every line goes into the
outbox's ``"influx"`` stream (kind ``alarm`` for alarm lines, ``status`` for ``device_status``,
``telemetry`` for the rest, so the outbox's bound drops telemetry first and never alarms) and a
delivery task sends it with ``AsyncOutbox.deliver_batches`` through :meth:`InfluxSink.write`,
acking a batch only once the server took it. Lines then survive a database outage of any length
(up to the outbox's bound) and the gateway being killed.

:meth:`InfluxSink.add_lines` takes already-encoded line protocol, and :meth:`InfluxSink.write`
makes a single attempt and raises :class:`InfluxWriteError` (with ``retry_after``) so a caller
that keeps its own copy acks only what the server took. :class:`LineEncoder` (``sink.encoder``)
produces the lines without a sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol, Self, cast

from aiohttp import ClientError
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from fieldmodel.model import Device
from gateway.aio import raise_if_cancelling, wait_event
from gateway.backoff import Backoff
from gateway.config import InfluxConfig
from gateway.errors import GatewayError
from gateway.outbox import AsyncOutbox, EntryKind, OutboxEntry, OutboxError, StoredEntry
from gateway.redact import SECRETS
from gateway.sinks.lineprotocol import LineEncoder
from gateway.telemetry import TelemetrySample
from rules import State

__all__ = [
    "InfluxSink",
    "InfluxSinkError",
    "InfluxWriteError",
    "LineWriter",
    "SinkStats",
    "influx_token",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFER: Final = 200_000
"""Lines held in memory at most (about 300 MB of 60-field telemetry lines at worst)."""

_REJECTED_STATUS: Final = frozenset({400, 422})
_TOO_LARGE: Final = 413

OUTBOX_STREAM: Final = "influx"
"""The outbox stream holding the lines bound for the database."""
_OUTBOX_RETRY_S: Final = 1.0

Spool = Callable[[Sequence[OutboxEntry]], None]
"""Takes outbox entries to commit (e.g. ``MqttPublisher.stage`` bound to the influx stream)."""


def line_kind(measurement: str) -> EntryKind:
    """The outbox kind of a line by its measurement: alarms and device status are never dropped."""
    match measurement:
        case "alarm":
            return "alarm"
        case "device_status" | "exposure" | "daily" | "rescue":  # records: kept like status
            return "status"
        case _:
            return "telemetry"


def _measurement_of(line: str) -> str:
    """The (unescaped enough to classify) measurement of one line of line protocol."""
    end = len(line)
    i = 0
    while i < end:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in ", ":
            break
        i += 1
    return line[:i]


class InfluxSinkError(GatewayError):
    """The sink is misconfigured (e.g. the token's environment variable is not set)."""


class InfluxWriteError(GatewayError):
    """A write did not reach the database.

    ``retryable`` is False when the server refused the data itself (HTTP 400/422: malformed
    line, field type conflict) and sending it again cannot help. ``status`` is the HTTP status,
    or None when there was no answer (refused, reset, timed out).
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        self.retryable = retryable
        self.status = status
        self.retry_after: float | None = None  # set by InfluxSink.write: its backoff delay
        super().__init__(message)


class LineWriter(Protocol):
    """Sends one body of newline-separated lines (precision ms).

    Raises :class:`InfluxWriteError` when the lines did not reach the database.
    """

    async def __call__(self, body: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SinkStats:
    """A snapshot of the sink's counters (since start)."""

    written_lines: int
    written_batches: int
    failed_batches: int  # failed write attempts (each retry counts)
    rejected_lines: int  # dropped because the server refused them (HTTP 400/422)
    dropped_lines: int  # dropped at the buffer bound
    buffered_lines: int  # waiting, including a batch in flight
    connected: bool  # the last write attempt succeeded (True before the first one)
    last_error: str | None


def influx_token(config: InfluxConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The token from the environment variable ``config.token_env`` names (None without one).

    Raises :class:`InfluxSinkError` when the variable is named but not set. The token itself is
    never logged nor put into an error message.
    """
    if config.token_env is None:
        return None
    env = os.environ if environ is None else environ
    token = env.get(config.token_env)
    SECRETS.add(token)  # masked in every log line and payload from now on
    if not token:
        raise InfluxSinkError(
            f"influx.token_env names the environment variable {config.token_env!r}, "
            "which is not set (or empty): export the InfluxDB API token in it"
        )
    return token


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _ClientWriter:
    """:class:`LineWriter` over influxdb-client's async write API."""

    def __init__(self, config: InfluxConfig, token: str | None, timeout_s: float) -> None:
        self._bucket = config.bucket
        self._org = config.org
        self._precision = cast(WritePrecision, WritePrecision.MS)
        self._client = InfluxDBClientAsync(
            url=config.url, token=token or "", org=config.org, timeout=int(timeout_s * 1000)
        )
        self._api = self._client.write_api()

    async def __call__(self, body: str) -> None:
        try:
            ok = await self._api.write(
                bucket=self._bucket,
                org=self._org,
                record=body.encode(),
                write_precision=self._precision,
            )
        except ApiException as exc:
            status = int(exc.status) if exc.status is not None else None
            message = _api_message(exc)
            raise InfluxWriteError(
                f"HTTP {status} {exc.reason or ''}: {message}".strip(),
                retryable=status not in _REJECTED_STATUS,
                status=status,
            ) from exc
        except (ClientError, OSError, TimeoutError, InfluxDBError) as exc:
            raise InfluxWriteError(_describe(exc), retryable=True) from exc
        if not ok:
            raise InfluxWriteError("unexpected HTTP status from the write API", retryable=True)

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip().replace("\n", " ")
    return text[:300]


class InfluxSink:
    """Batched, retrying writer of the gateway's records. Use as an async context manager::

        async with InfluxSink(site.influx, site.site.id, token=influx_token(site.influx)) as sink:
            sink.add_telemetry(device, ts_ms, values, quality)

    ``writer`` replaces the HTTP client (tests; other transports). ``max_buffer`` bounds the lines
    held in memory. With ``outbox`` the lines go into its ``"influx"`` stream instead and are
    delivered from there; ``spool`` (optional) is who commits them, e.g. the MQTT publisher's
    :meth:`~gateway.mqtt.MqttPublisher.stage`, so a record's line shares a transaction with its
    MQTT message. Without ``spool`` the sink puts them itself.

    Backoff after a failed write starts at ``backoff_initial`` seconds, doubles up to
    ``backoff_max`` and is jittered to between half and all of that. On exit the sink tries for up
    to ``close_timeout`` seconds to write what is left and logs what it could not (with an
    outbox: leaves it there for the next start).
    """

    def __init__(
        self,
        config: InfluxConfig,
        site_id: str,
        *,
        token: str | None,
        writer: LineWriter | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        close_timeout: float = 5.0,
        request_timeout: float = 10.0,
        rng: random.Random | None = None,
        outbox: AsyncOutbox | None = None,
        spool: Spool | None = None,
    ) -> None:
        if max_buffer < config.batch_size:
            raise ValueError(
                f"max_buffer ({max_buffer}) must hold at least one batch ({config.batch_size})"
            )
        self.config = config
        self.site_id = site_id
        self.encoder = LineEncoder(site_id)
        self._token = token
        self._writer: LineWriter | None = writer
        self._client: _ClientWriter | None = None
        self._max_buffer = max_buffer
        self._backoff_initial = backoff_initial
        self.close_timeout = close_timeout
        """Seconds :meth:`aclose` tries to write what is left (the gateway shortens it to what
        its ``shutdown_timeout`` leaves)."""
        self._request_timeout = request_timeout
        self._backoff = Backoff(backoff_initial, backoff_max, (rng or random.Random()).random)

        self._buffer: deque[str] = deque()
        self._inflight: list[str] = []
        self._batch_limit = config.batch_size
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

        self._written_lines = 0
        self._written_batches = 0
        self._failed_batches = 0
        self._rejected_lines = 0
        self._dropped_lines = 0
        self._overflowing = False
        self._down_since: float | None = None
        self._failures_in_outage = 0
        self._last_error: str | None = None

        self._outbox = outbox
        self._spool: Spool | None = spool
        self._spooled: list[OutboxEntry] = []  # own spool (no ``spool`` given): not yet put
        self._spool_wake = asyncio.Event()
        self._spool_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never shows the token
        return f"InfluxSink(url={self.config.url!r}, bucket={self.config.bucket!r})"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._writer is None:
            self._client = _ClientWriter(self.config, self._token, self._request_timeout)
            self._writer = self._client
        self._closing = False
        self._stop.clear()
        if self._outbox is None:
            self._task = asyncio.create_task(self._run(), name=f"influx-sink:{self.config.url}")
        else:
            self._task = asyncio.create_task(
                self._deliver_outbox(self._outbox), name=f"influx-outbox:{self.config.url}"
            )
            if self._spool is None:
                self._spool_task = asyncio.create_task(
                    self._put_spooled(self._outbox), name="influx-spool"
                )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Write what is left (for up to ``close_timeout`` s), stop and close the client.

        With an outbox, lines not yet written stay in it for the next start."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        if self._outbox is not None:
            await self._close_outbox_mode(task)
        elif task is not None:
            try:
                async with asyncio.timeout(self.close_timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                raise_if_cancelling()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = len(self._buffer) + len(self._inflight)
        if left:
            log.warning(
                "InfluxDB sink closing with %d lines not written to %s", left, self.config.url
            )
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._writer = None

    # ------------------------------------------------------------------ producers

    def add_telemetry(
        self,
        device: Device,
        ts_ms: int,
        values: Mapping[str, float | int | bool | None],
        quality: Mapping[str, str] | None = None,
        *,
        maintenance: bool = False,
    ) -> None:
        """Queue one telemetry record; points whose quality is not ``"good"`` are skipped (with
        ``maintenance``: written tagged ``quality=maintenance``, see ``LineEncoder``)."""
        line = self.encoder.telemetry(device, ts_ms, values, quality, maintenance=maintenance)
        if line is not None:
            self._append(line, "telemetry", device.id, device.measurement)

    def add_sample(self, device: Device, sample: TelemetrySample) -> None:
        """Queue the line of one telemetry record (see ``TelemetryEncoder.encode_sample``)."""
        line = self.encoder.telemetry_encoder(device).encode_sample(sample)
        if line is not None:
            self._append(line, "telemetry", device.id, device.measurement)

    def add_device_status(
        self,
        device_id: str,
        ts_ms: int,
        online: bool,
        latency_ms: float | None,
        errors: int,
    ) -> None:
        """Queue one ``device_status`` record."""
        self._append(
            self.encoder.device_status(
                ts_ms, device=device_id, online=online, latency_ms=latency_ms, errors=errors
            ),
            "status",
            device_id,
            "device_status",
        )

    def add_alarm(
        self,
        ts_ms: int,
        *,
        device: str,
        point: str,
        rule: str,
        level: str,
        state: State | str,
        value: float | None,
        limit: float | None,
        active: bool | None = None,
    ) -> None:
        """Queue one ``alarm`` record (an alarm transition).

        Raises ValueError on an unknown state name.
        """
        self._append(
            self.encoder.alarm(
                ts_ms,
                device=device,
                point=point,
                rule=rule,
                level=level,
                state=state,
                value=value,
                limit=limit,
                active=active,
            ),
            "alarm",
            device,
            "alarm",
        )

    def add_gateway(self, ts_ms: int, fields: Mapping[str, float | int | bool | None]) -> None:
        """Queue one ``gateway`` record (see ``lineprotocol.GATEWAY_FIELDS``)."""
        line = self.encoder.gateway(ts_ms, fields)
        if line is not None:
            self._append(line, "telemetry", "gateway", "gateway")

    def add_lines(self, lines: str | bytes | Iterable[str]) -> None:
        """Queue already-encoded line protocol (precision ms): one body of newline-separated
        lines, or an iterable of single lines. Blank lines are ignored."""
        if isinstance(lines, bytes):
            lines = lines.decode("utf-8")
        if isinstance(lines, str):
            lines = lines.split("\n")
        for line in lines:
            if line and not line.isspace():
                text = line.rstrip("\r\n")
                measurement = _measurement_of(text)
                self._append(text, line_kind(measurement), measurement, measurement)

    def _append(self, line: str, kind: EntryKind, key: str, measurement: str) -> None:
        if self._outbox is not None:
            self._idle.clear()
            entry = OutboxEntry(kind, key, measurement, line.encode())
            if self._spool is not None:
                self._spool((entry,))
            else:
                self._spooled.append(entry)
                self._spool_wake.set()
            return
        self._buffer.append(line)
        self._idle.clear()
        excess = len(self._buffer) + len(self._inflight) - self._max_buffer
        if excess > 0:
            self._drop_oldest(excess)
        if len(self._buffer) >= self._batch_limit:
            self._wake.set()

    def _drop_oldest(self, n: int) -> None:
        n = min(n, len(self._buffer))
        for _ in range(n):
            self._buffer.popleft()
        self._dropped_lines += n
        if not self._overflowing:
            self._overflowing = True
            log.error(
                "InfluxDB sink buffer full (%d lines): dropping the oldest lines until %s "
                "accepts writes again",
                self._max_buffer,
                self.config.url,
            )

    # ------------------------------------------------------------------ direct writes

    async def write(self, lines: str | bytes | Iterable[str]) -> int:
        """Write already-encoded lines now, bypassing the buffer: the seam for the outbox.

        Returns the number of lines written, or 0 when the server refused them as malformed
        (HTTP 400/422: counted in ``stats.rejected_lines`` and logged; sending them again cannot
        help, so the caller should drop them too). Raises :class:`InfluxWriteError` when the
        database could not take them (down, unauthorized, overloaded): keep them and try again
        after ``exc.retry_after`` seconds (capped, jittered backoff). Failures and the recovery
        are logged and counted as for buffered writes.
        """
        if self._writer is None:
            raise InfluxSinkError("the sink is not started: use it as 'async with InfluxSink(...)'")
        if isinstance(lines, bytes):
            lines = lines.decode("utf-8")
        batch = lines.split("\n") if isinstance(lines, str) else list(lines)
        batch = [line for line in batch if line and not line.isspace()]
        if not batch:
            return 0
        try:
            return len(batch) if await self._deliver(batch, direct=True) else 0
        except InfluxWriteError as exc:
            if exc.status != _TOO_LARGE:
                raise
        half = len(batch) // 2  # too large: write it in halves (a retry may repeat the first)
        return await self.write(batch[:half]) + await self.write(batch[half:])

    async def flush(self, timeout: float | None = None) -> bool:
        """Ask for an immediate write and wait until the buffer (or the outbox stream) is empty;
        False on timeout."""
        if self.buffered:  # (with an outbox, lines may have been committed by someone else)
            self._idle.clear()
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            raise_if_cancelling()
            return False
        return True

    # ------------------------------------------------------------------ state

    @property
    def stats(self) -> SinkStats:
        return SinkStats(
            written_lines=self._written_lines,
            written_batches=self._written_batches,
            failed_batches=self._failed_batches,
            rejected_lines=self._rejected_lines,
            dropped_lines=self._dropped_lines,
            buffered_lines=self.buffered,
            connected=self._down_since is None,
            last_error=self._last_error,
        )

    @property
    def buffered(self) -> int:
        """Lines waiting: in memory, or with an outbox in its stream (and not yet put)."""
        if self._outbox is not None:
            return self._outbox.depth(OUTBOX_STREAM) + len(self._spooled)
        return len(self._buffer) + len(self._inflight)

    # ------------------------------------------------------------------ outbox mode

    async def _put_spooled(self, outbox: AsyncOutbox) -> None:
        """Put the lines ``add_*`` spooled into the outbox, in order (no external spool)."""
        while True:
            await self._spool_wake.wait()
            self._spool_wake.clear()
            await self._commit_spooled(outbox)

    async def _commit_spooled(self, outbox: AsyncOutbox) -> None:
        batch, self._spooled = self._spooled, []
        if not batch:
            return
        try:
            await outbox.put_many(OUTBOX_STREAM, batch)
        except OutboxError as exc:  # keep them, ahead of newer lines; the caller retries
            self._spooled[:0] = batch
            log.error("cannot put %d lines into the outbox: %s", len(batch), exc)
            await asyncio.sleep(_OUTBOX_RETRY_S)
            self._spool_wake.set()

    async def _deliver_outbox(self, outbox: AsyncOutbox) -> None:
        """Send the outbox's lines, oldest first, one write per batch; a batch is acked (deleted)
        only when the server took it, or refused it for good (HTTP 400/422: counted, logged)."""

        async def send(batch: list[StoredEntry]) -> None:
            try:
                await self.write([s.entry.payload.decode("utf-8") for s in batch])
            except InfluxWriteError as exc:
                await wait_event(self._stop, exc.retry_after or self._backoff_initial)
                raise  # the batch stays in the outbox

        outbox_failing = False
        while not self._closing:
            if not self.buffered:
                self._idle.set()
            await outbox.wait_pending(OUTBOX_STREAM)
            try:
                await outbox.deliver_batches(OUTBOX_STREAM, send, batch=self._batch_limit)
            except InfluxWriteError:
                continue  # backed off in send(); the next attempt starts with the same batch
            except OutboxError as exc:
                if not outbox_failing:
                    log.error("cannot read lines from the outbox: %s", exc)
                    outbox_failing = True
                await wait_event(self._stop, _OUTBOX_RETRY_S)
                continue
            if outbox_failing:
                log.info("reading lines from the outbox works again")
                outbox_failing = False
            if not self.buffered:
                self._idle.set()
            self._wake.clear()
            await wait_event(self._wake, self.config.flush_interval)  # flush() wakes it

    async def _close_outbox_mode(self, task: asyncio.Task[None] | None) -> None:
        """Commit what is spooled, stop delivering; undelivered lines stay in the outbox."""
        spool_task, self._spool_task = self._spool_task, None
        if spool_task is not None:
            spool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spool_task
            if self._outbox is not None and self._spooled:
                with contextlib.suppress(OutboxError):
                    await self._outbox.put_many(OUTBOX_STREAM, self._spooled)
                    self._spooled = []
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = self.buffered
        if left:
            log.info(
                "InfluxDB sink stopping with %d lines for %s kept in the outbox",
                left,
                self.config.url,
            )

    # ------------------------------------------------------------------ writer task

    async def _run(self) -> None:
        while True:
            if not self._inflight and not self._buffer:
                self._idle.set()
                if self._closing:
                    return
            if not self._inflight and len(self._buffer) < self._batch_limit and not self._closing:
                self._wake.clear()
                await wait_event(self._wake, self.config.flush_interval)
            while self._inflight or self._buffer:
                if not self._inflight:
                    n = min(self._batch_limit, len(self._buffer))
                    self._inflight = [self._buffer.popleft() for _ in range(n)]
                delay = await self._send_inflight()
                if delay is None:
                    continue
                if self._closing:
                    await asyncio.sleep(min(delay, 0.2))
                else:
                    await wait_event(self._stop, delay)

    async def _send_inflight(self) -> float | None:
        """Write the batch in flight; None when done with it, else seconds to wait first."""
        batch = self._inflight
        try:
            await self._deliver(batch)
        except InfluxWriteError as exc:
            if exc.status == _TOO_LARGE:
                self._batch_limit = max(1, len(batch) // 2)
                self._buffer.extendleft(reversed(batch[self._batch_limit :]))
                self._inflight = batch[: self._batch_limit]
                log.warning(
                    "InfluxDB at %s refused a batch of %d lines as too large; writing %d at a time",
                    self.config.url,
                    len(batch),
                    self._batch_limit,
                )
                return None
            return exc.retry_after
        self._inflight = []
        if self._overflowing and len(self._buffer) < self._max_buffer // 2:
            self._overflowing = False
        return None

    async def _deliver(self, batch: list[str], *, direct: bool = False) -> bool:
        """One attempt, with the counters and state-change logs. True when written, False when
        the server refused the lines for good; raises :class:`InfluxWriteError` when they should
        be sent again (``retry_after`` set) or split (status 413)."""
        assert self._writer is not None
        try:
            await self._writer("\n".join(batch))
        except InfluxWriteError as exc:
            if exc.status == _TOO_LARGE and len(batch) > 1:
                raise
            if not exc.retryable or exc.status == _TOO_LARGE:
                self._rejected_lines += len(batch)
                log.error(
                    "InfluxDB at %s refused %d lines, dropping them: %s",
                    self.config.url,
                    len(batch),
                    exc,
                )
                return False
            exc.retry_after = self._failed(exc, self._pending_lines(batch, direct=direct))
            raise
        except Exception as exc:  # anything unexpected counts as an outage, never ends the task
            error = InfluxWriteError(_describe(exc), retryable=True)
            error.retry_after = self._failed(error, self._pending_lines(batch, direct=direct))
            raise error from exc
        self._written_lines += len(batch)
        self._written_batches += 1
        if self._down_since is not None:
            log.info(
                "InfluxDB writes to %s recovered after %.1f s and %d failed attempts; "
                "%d lines still buffered",
                self.config.url,
                time.monotonic() - self._down_since,
                self._failures_in_outage,
                len(self._buffer),
            )
            self._down_since = None
            self._failures_in_outage = 0
        return True

    def _pending_lines(self, batch: list[str], *, direct: bool) -> int:
        """Lines waiting, for the logs: a direct write's batch is not in the buffer (but it is
        in the outbox, when there is one)."""
        return self.buffered + (len(batch) if direct and self._outbox is None else 0)

    def _failed(self, exc: InfluxWriteError, pending: int) -> float:
        self._failed_batches += 1
        self._last_error = str(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error(
                "InfluxDB writes to %s failing (%s); keeping %d lines and retrying with backoff",
                self.config.url,
                self._last_error,
                pending,
            )
        else:
            log.debug("InfluxDB write to %s failed again: %s", self.config.url, self._last_error)
        attempt = self._failures_in_outage
        self._failures_in_outage += 1
        return self._backoff.delay(attempt)
