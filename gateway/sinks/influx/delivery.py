"""The delivery loop: database lines from the outbox's ``"influx"`` stream to the database.

Lines wait in the outbox (durable, or in memory when the durable one is turned off) until a batch
is due: ``batch_size`` lines are waiting, or ``flush_interval`` seconds have passed, or someone
asked (:meth:`OutboxDelivery.wake`, e.g. a flush at shutdown). Then the stream is sent, oldest
first, one write per batch of up to ``batch_size`` lines (:meth:`InfluxWriter.write`: one
attempt); a batch is acked (deleted) only once the server took it, or refused it for good (HTTP
400/422: counted and logged by the writer). A batch that could not be written stays, and is
sent again, first, after the writer's backoff: each series keeps its order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from gateway.aio import wait_event
from gateway.outbox import AsyncOutbox, OutboxError, StoredEntry
from gateway.sinks.influx.http import InfluxWriteError
from gateway.sinks.influx.writer import InfluxWriter

__all__ = ["CLOSING_RETRY_S", "OUTBOX_RETRY_S", "OutboxDelivery"]

log = logging.getLogger(__name__)

OUTBOX_RETRY_S: Final = 1.0
"""Seconds between attempts while the outbox cannot be read."""
CLOSING_RETRY_S: Final = 0.2
"""Longest wait between write attempts while closing (the close has its own deadline)."""


class OutboxDelivery:
    """Sends one outbox stream through an :class:`InfluxWriter`; :meth:`run` is its task."""

    def __init__(
        self,
        outbox: AsyncOutbox,
        stream: str,
        writer: InfluxWriter,
        *,
        batch: int,
        interval: float,
    ) -> None:
        self.outbox = outbox
        self.stream = stream
        self.writer = writer
        self.batch = batch
        self.interval = interval
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._round = asyncio.Condition()

    def wake(self) -> None:
        """Send what is waiting now, without waiting for a full batch or the interval."""
        self._wake.set()

    def closing(self) -> None:
        """Stop waiting out backoffs and intervals: the caller is closing, with a deadline."""
        self._closing.set()
        self._wake.set()

    async def next_round(self, *, wake: bool = False) -> None:
        """Return after the loop's next attempt to send (successful or not); with ``wake``, ask
        for that attempt now."""
        async with self._round:
            if wake:
                self._wake.set()
            await self._round.wait()

    async def run(self) -> None:
        """Deliver until cancelled."""
        outbox_failing = False
        while True:
            if not self._wake.is_set():
                await self._due()
            self._wake.clear()
            try:
                await self.outbox.deliver_batches(self.stream, self._send, batch=self.batch)
            except InfluxWriteError as exc:
                await self._pause(exc.retry_after or self.writer.backoff_initial)
                self._wake.set()  # the batch that failed is due at once
            except OutboxError as exc:
                if not outbox_failing:
                    log.error("cannot read lines from the outbox: %s", exc)
                    outbox_failing = True
                await self._pause(OUTBOX_RETRY_S)
                self._wake.set()
            else:
                if outbox_failing:
                    log.info("reading lines from the outbox works again")
                    outbox_failing = False
            async with self._round:
                self._round.notify_all()

    async def _send(self, batch: list[StoredEntry]) -> None:
        await self.writer.write([s.entry.payload.decode("utf-8") for s in batch])

    async def _due(self) -> None:
        """Wait until a full batch is waiting, the interval has passed or :meth:`wake`."""
        if self.outbox.depth(self.stream) >= self.batch:
            return
        full = asyncio.create_task(self.outbox.wait_pending(self.stream, self.batch))
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait(
                (full, woken), timeout=self.interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (full, woken):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _pause(self, seconds: float) -> None:
        """Wait before the next attempt; shortened while closing."""
        if self._closing.is_set():
            await asyncio.sleep(min(seconds, CLOSING_RETRY_S))
        else:
            await wait_event(self._closing, seconds)
