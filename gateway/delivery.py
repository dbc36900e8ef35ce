"""The explicit transaction of a tick: what the gateway produced, committed to the outbox at once.

A telemetry sample leaves the gateway on two legs: its MQTT message (QoS 1) and its database
line. Both are outbox entries, in two streams (``"mqtt"``, ``"influx"``). Producers *stage* them
here (``stage`` never blocks: ``Gateway.on_poll`` runs on the event loop for every poll);
:meth:`TickTransaction.commit` takes everything staged so far, all streams, and commits it with
ONE :meth:`AsyncOutbox.put_batches` call, which is one SQLite transaction. A sample's two legs
are staged by the same synchronous callback, so they are always in the same commit: a gateway
killed at any moment, or a commit that fails, has kept both legs or neither. Nothing depends on
how the event loop schedules tasks.

:meth:`TickTransaction.run` is the task that commits whenever something was staged (one commit
per turn of the event loop at most: what the callbacks of one tick staged goes together). A
failed commit (disk full) keeps the entries staged, ahead of newer ones, and is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from gateway.outbox import AsyncOutbox, OutboxEntry, OutboxError

__all__ = ["COMMIT_RETRY_S", "TickTransaction"]

log = logging.getLogger(__name__)

COMMIT_RETRY_S: Final = 1.0
"""Seconds between attempts while commits fail."""


class TickTransaction:
    """Collects outbox entries of several streams and commits them in one transaction."""

    def __init__(self, outbox: AsyncOutbox, *, retry_s: float = COMMIT_RETRY_S) -> None:
        self.outbox = outbox
        self.retry_s = retry_s
        self._staged: dict[str, list[OutboxEntry]] = {}
        self._committing: dict[str, int] = {}  # entries per stream of the commit in progress
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def stage(self, stream: str, entries: Sequence[OutboxEntry]) -> None:
        """Queue entries for a stream (never blocks); the next commit takes them."""
        self._staged.setdefault(stream, []).extend(entries)
        self._wake.set()

    def pending(self, stream: str) -> int:
        """Entries of a stream staged or being committed (not yet in the outbox)."""
        return len(self._staged.get(stream, ())) + self._committing.get(stream, 0)

    async def commit(self) -> None:
        """Commit what is staged now, all streams in one transaction.

        Returns once committed, together with anything another caller was committing at the
        time (so after it returns, everything staged before the call is in the outbox). Raises
        :class:`OutboxError` when the commit failed: the entries then stay staged, ahead of
        anything staged meanwhile, and none of them is in the outbox.
        """
        async with self._lock:
            if not self._staged:
                return
            batch, self._staged = self._staged, {}
            self._committing = {stream: len(entries) for stream, entries in batch.items()}
            try:
                await self.outbox.put_batches(batch)
            except OutboxError:  # (a cancelled put keeps its entries: they are committed anyway)
                for stream, entries in self._staged.items():
                    batch.setdefault(stream, []).extend(entries)
                self._staged = batch
                raise
            finally:
                self._committing = {}

    async def run(self) -> None:
        """Commit whatever is staged, in call order, until cancelled."""
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.commit()
            except OutboxError as exc:  # e.g. disk full: keep the entries, try again
                if not failing:
                    log.error("cannot commit to the outbox, keeping entries in memory: %s", exc)
                    failing = True
                await asyncio.sleep(self.retry_s)
                self._wake.set()
                continue
            if failing:
                log.info("outbox commits work again")
                failing = False
