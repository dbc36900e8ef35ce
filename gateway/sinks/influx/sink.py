"""The time-series sink: the gateway's records as line protocol, through the outbox, to InfluxDB.

Records are encoded at once (cheap, non-blocking ``add_*`` calls, :class:`LineEncoder`) and staged
as entries of the outbox's ``"influx"`` stream (kind ``alarm`` for alarm lines, ``status`` for
``device_status`` and the other records, ``telemetry`` for the rest, so the outbox's bound drops
telemetry first and never alarms). Staged entries are committed by a :class:`TickTransaction`:
the gateway's, which commits a sample's MQTT message and its line in one transaction, or the
sink's own. :class:`OutboxDelivery` sends them to the database in batches of ``batch_size``
lines, at least every ``flush_interval`` seconds, and deletes a batch only once the server took
it (:class:`InfluxWriter`: one attempt per write, capped jittered backoff, outage logged once).

There is one delivery mode. With the gateway's durable outbox the lines survive a database
outage of any length (up to the outbox's bound) and the gateway being killed. Without one
(``outbox=None``: ``outbox: {enabled: false}``, or the sink used on its own) the sink keeps an
outbox in memory (:data:`~gateway.outbox.MEMORY`) with the same order, bound and drop policy
(``max_buffer`` rows at most, oldest telemetry first), lost when the process ends; on close it
tries for ``close_timeout`` seconds to write what is left.

:meth:`InfluxSink.write` is a single attempt (see :mod:`gateway.sinks.influx.writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from fieldmodel.model import Device
from gateway.aio import raise_if_cancelling
from gateway.config import InfluxConfig
from gateway.delivery import TickTransaction
from gateway.outbox import MEMORY, AsyncOutbox, EntryKind, OutboxEntry, OutboxError
from gateway.sinks.influx.delivery import OutboxDelivery
from gateway.sinks.influx.http import InfluxSinkError, LineWriter
from gateway.sinks.influx.writer import InfluxWriter, split_lines
from gateway.sinks.lineprotocol import LineEncoder
from gateway.telemetry import TelemetrySample
from rules import State

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "OUTBOX_STREAM",
    "InfluxSink",
    "SinkStats",
    "line_kind",
    "measurement_of",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFER: Final = 200_000
"""Lines held in the in-memory outbox at most (about 300 MB of 60-field telemetry lines)."""
MEMORY_MAX_BYTES: Final = 256 * 2**20
"""The in-memory outbox's byte bound: the durable outbox's default (``outbox.max_mb``)."""

OUTBOX_STREAM: Final = "influx"
"""The outbox stream holding the lines bound for the database."""


def line_kind(measurement: str) -> EntryKind:
    """The outbox kind of a line by its measurement: alarms and device status are never dropped."""
    match measurement:
        case "alarm":
            return "alarm"
        case "device_status" | "exposure" | "daily" | "rescue":  # records: kept like status
            return "status"
        case _:
            return "telemetry"


def measurement_of(line: str) -> str:
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


@dataclass(frozen=True, slots=True)
class SinkStats:
    """A snapshot of the sink's counters (since start)."""

    written_lines: int
    written_batches: int
    failed_batches: int  # failed write attempts (each retry counts)
    rejected_lines: int  # dropped because the server refused them (HTTP 400/422)
    dropped_lines: int  # dropped at the in-memory outbox's bound (the durable one counts its own)
    buffered_lines: int  # waiting (staged or in the outbox), including a batch in flight
    connected: bool  # the last write attempt succeeded (True before the first one)
    last_error: str | None


class InfluxSink:
    """The gateway's records to the database, through the outbox. Use as an async context
    manager::

        async with InfluxSink(site.influx, site.site.id, token=influx_token(site.influx)) as sink:
            sink.add_telemetry(device, ts_ms, values, quality)

    ``outbox`` is the gateway's durable outbox (None: an outbox in memory, see the module
    docstring); ``transaction`` the gateway's :class:`TickTransaction` over it (None: the sink
    commits its lines itself). ``writer`` replaces the HTTP client (tests; other transports).
    ``max_buffer`` bounds the in-memory outbox (rows). Backoff after a failed write starts at
    ``backoff_initial`` seconds, doubles up to ``backoff_max`` and is jittered.
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
        transaction: TickTransaction | None = None,
    ) -> None:
        if max_buffer < config.batch_size:
            raise ValueError(
                f"max_buffer ({max_buffer}) must hold at least one batch ({config.batch_size})"
            )
        if transaction is not None and outbox is not None and transaction.outbox is not outbox:
            raise ValueError("the transaction must commit to the sink's outbox")
        self.config = config
        self.site_id = site_id
        self.encoder = LineEncoder(site_id)
        self.writer = InfluxWriter(
            config,
            token=token,
            writer=writer,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            request_timeout=request_timeout,
            rng=rng,
            pending=lambda: self.buffered,
        )
        self.close_timeout = close_timeout
        """Seconds :meth:`aclose` tries to write what is left of an in-memory outbox (the gateway
        shortens it to what its ``shutdown_timeout`` leaves)."""
        self._max_buffer = max_buffer
        self._given_outbox = outbox if transaction is None else transaction.outbox
        self._given_transaction = transaction
        self._outbox: AsyncOutbox | None = None
        self._transaction: TickTransaction | None = None
        self._delivery: OutboxDelivery | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:  # never shows the token
        return f"InfluxSink(url={self.config.url!r}, bucket={self.config.bucket!r})"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.writer.__aenter__()
        outbox = self._given_outbox
        if outbox is None:
            outbox = AsyncOutbox(MEMORY, max_bytes=MEMORY_MAX_BYTES, max_rows=self._max_buffer)
            try:
                await outbox.__aenter__()
            except BaseException:
                await self.writer.aclose()
                raise
        self._outbox = outbox
        transaction = self._given_transaction
        if transaction is None:
            transaction = TickTransaction(outbox)
            self._tasks.append(asyncio.create_task(transaction.run(), name="influx-commit"))
        self._transaction = transaction
        self._delivery = OutboxDelivery(
            outbox,
            OUTBOX_STREAM,
            self.writer,
            batch=self.config.batch_size,
            interval=self.config.flush_interval,
        )
        self._tasks.append(
            asyncio.create_task(self._delivery.run(), name=f"influx-delivery:{self.config.url}")
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def in_memory(self) -> bool:
        """The lines wait in an in-memory outbox (lost when the process ends)."""
        outbox = self._outbox or self._given_outbox
        return outbox is None or outbox.path == MEMORY

    async def aclose(self) -> None:
        """Stop delivering and close. Lines in the durable outbox stay there for the next start;
        those of an in-memory outbox are written for up to ``close_timeout`` s first."""
        if self._transaction is None:
            return
        if self._given_transaction is None:  # commit what was staged (the gateway commits its own)
            with contextlib.suppress(OutboxError):
                await self._transaction.commit()
        if self.in_memory and self._delivery is not None:
            self._delivery.closing()
            await self.flush(self.close_timeout)  # what is left is logged below
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left = self.buffered
        if left and self.in_memory:
            log.warning(
                "InfluxDB sink closing with %d lines not written to %s", left, self.config.url
            )
        elif left:
            log.info(
                "InfluxDB sink stopping with %d lines for %s kept in the outbox",
                left,
                self.config.url,
            )
        outbox, self._outbox = self._outbox, None
        self._transaction = self._delivery = None
        try:
            if outbox is not None and outbox is not self._given_outbox:
                await outbox.__aexit__(None, None, None)
        finally:
            await self.writer.aclose()

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
            self._stage(line, "telemetry", device.id, device.measurement)

    def add_sample(self, device: Device, sample: TelemetrySample) -> None:
        """Queue the line of one telemetry record (see ``TelemetryEncoder.encode_sample``)."""
        line = self.encoder.telemetry_encoder(device).encode_sample(sample)
        if line is not None:
            self._stage(line, "telemetry", device.id, device.measurement)

    def add_device_status(
        self,
        device_id: str,
        ts_ms: int,
        online: bool,
        latency_ms: float | None,
        errors: int,
    ) -> None:
        """Queue one ``device_status`` record."""
        self._stage(
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
        self._stage(
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
            self._stage(line, "telemetry", "gateway", "gateway")

    def add_lines(self, lines: str | bytes | Iterable[str]) -> None:
        """Queue already-encoded line protocol (precision ms): one body of newline-separated
        lines, or an iterable of single lines. Blank lines are ignored."""
        for line in split_lines(lines):
            measurement = measurement_of(line)
            self._stage(line, line_kind(measurement), measurement, measurement)

    def _stage(self, line: str, kind: EntryKind, key: str, measurement: str) -> None:
        if self._transaction is None:
            raise InfluxSinkError("the sink is not started: use it as 'async with InfluxSink(...)'")
        entry = OutboxEntry(kind, key, measurement, line.encode())
        self._transaction.stage(OUTBOX_STREAM, (entry,))

    # ------------------------------------------------------------------ writes and flushes

    async def write(self, lines: str | bytes | Iterable[str]) -> int:
        """Write already-encoded lines now, one attempt, not through the outbox: see
        :meth:`InfluxWriter.write` (returns the lines written, 0 when refused for good; raises
        :class:`InfluxWriteError` with ``retry_after`` when they should be sent again)."""
        return await self.writer.write(lines)

    async def commit(self) -> None:
        """Commit what is staged to the outbox now (the commit task does it soon anyway); raises
        :class:`~gateway.outbox.OutboxError` when it cannot."""
        if self._transaction is not None:
            await self._transaction.commit()

    async def flush(self, timeout: float | None = None) -> bool:
        """Commit what is staged, send what is waiting now and wait until the outbox stream is
        empty; False on timeout (the lines stay where they are)."""
        delivery, transaction = self._delivery, self._transaction
        if delivery is None or transaction is None:
            return not self.buffered
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with contextlib.suppress(OutboxError):  # (the commit task says it, retries)
                        await transaction.commit()
                    if not self.buffered:
                        return True
                    await delivery.next_round(wake=True)
        except TimeoutError:
            raise_if_cancelling()
            return False

    # ------------------------------------------------------------------ state

    @property
    def stats(self) -> SinkStats:
        w = self.writer
        outbox = self._outbox
        dropped = outbox.stats().dropped_telemetry if outbox is not None and self.in_memory else 0
        return SinkStats(
            written_lines=w.written_lines,
            written_batches=w.written_batches,
            failed_batches=w.failed_batches,
            rejected_lines=w.rejected_lines,
            dropped_lines=dropped,
            buffered_lines=self.buffered,
            connected=w.connected,
            last_error=w.last_error,
        )

    @property
    def buffered(self) -> int:
        """Lines waiting: staged, or committed to the outbox stream and not yet written."""
        outbox, transaction = self._outbox, self._transaction
        if outbox is None or transaction is None:
            return 0
        return outbox.depth(OUTBOX_STREAM) + transaction.pending(OUTBOX_STREAM)
