"""Single-attempt writes to the database, with the counters, the outage logs and the backoff.

:meth:`InfluxWriter.write` makes ONE attempt to write a batch of lines and tells the caller what
to do with them, so a caller that keeps its own copy (the outbox's delivery loop, the ingest
worker's JetStream batch) acks only what the server took:

* returns the number of lines written;
* returns 0 when the server refused them as malformed (HTTP 400/422): counted in
  ``rejected_lines`` and logged, the caller drops them (sending them again cannot help);
* raises :class:`InfluxWriteError` when the database could not take them (down, unauthorized,
  overloaded): the caller keeps them and tries again after ``exc.retry_after`` seconds (capped,
  jittered exponential backoff over the failures in a row).

A body the server finds too large (HTTP 413) is written in halves. An outage is logged once at
ERROR and the recovery once at INFO.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

from gateway.backoff import Backoff
from gateway.config import InfluxConfig
from gateway.sinks.influx.http import (
    TOO_LARGE,
    ClientWriter,
    InfluxSinkError,
    InfluxWriteError,
    LineWriter,
    describe,
)

__all__ = ["InfluxWriter", "split_lines"]

log = logging.getLogger(__name__)


def split_lines(lines: str | bytes | Iterable[str]) -> list[str]:
    """Lines of line protocol from one body of newline-separated lines (str or UTF-8 bytes) or
    an iterable of single lines; blank lines left out, line ends stripped."""
    if isinstance(lines, bytes):
        lines = lines.decode("utf-8")
    if isinstance(lines, str):
        lines = lines.split("\n")
    return [line.rstrip("\r\n") for line in lines if line and not line.isspace()]


class InfluxWriter:
    """Writes batches of lines to one database, one attempt per call. Use as an async context
    manager (it opens and closes the HTTP client).

    ``writer`` replaces the HTTP client (tests; other transports). ``pending`` tells the logs how
    many lines the caller holds, the batch being written included (without it: the batch).
    Backoff after a failed write starts at ``backoff_initial`` seconds, doubles up to
    ``backoff_max`` and is jittered to between half and all of that.
    """

    def __init__(
        self,
        config: InfluxConfig,
        *,
        token: str | None,
        writer: LineWriter | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        request_timeout: float = 10.0,
        rng: random.Random | None = None,
        pending: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self._token = token
        self._given: LineWriter | None = writer
        self._writer: LineWriter | None = None
        self._client: ClientWriter | None = None
        self.backoff_initial = backoff_initial
        self._backoff = Backoff(backoff_initial, backoff_max, (rng or random.Random()).random)
        self._request_timeout = request_timeout
        self._pending = pending

        self.written_lines = 0
        self.written_batches = 0
        self.failed_batches = 0  # failed write attempts (each retry counts)
        self.rejected_lines = 0  # dropped because the server refused them (HTTP 400/422)
        self.last_error: str | None = None
        self._down_since: float | None = None
        self._failures_in_outage = 0

    def __repr__(self) -> str:  # never shows the token
        return f"InfluxWriter(url={self.config.url!r}, bucket={self.config.bucket!r})"

    @property
    def connected(self) -> bool:
        """The last write attempt succeeded (True before the first one)."""
        return self._down_since is None

    async def __aenter__(self) -> Self:
        if self._given is not None:
            self._writer = self._given
        elif self._writer is None:
            self._client = ClientWriter(self.config, self._token, self._request_timeout)
            self._writer = self._client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client; :meth:`write` refuses until entered again."""
        self._writer = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def write(self, lines: str | bytes | Iterable[str]) -> int:
        """One attempt to write lines (see the module docstring). Returns the number of lines
        written, or 0 when the server refused them for good; raises :class:`InfluxWriteError`
        (with ``retry_after``) when they should be sent again."""
        if self._writer is None:
            raise InfluxSinkError("the sink is not started: use it as 'async with InfluxSink(...)'")
        batch = split_lines(lines)
        if not batch:
            return 0
        try:
            return len(batch) if await self._attempt(batch) else 0
        except InfluxWriteError as exc:
            if exc.status != TOO_LARGE:
                raise
        half = len(batch) // 2  # too large: write it in halves (a retry may repeat the first)
        return await self.write(batch[:half]) + await self.write(batch[half:])

    async def _attempt(self, batch: list[str]) -> bool:
        """One request, with the counters and state-change logs. True when written, False when
        the server refused the lines for good; raises :class:`InfluxWriteError` when they should
        be sent again (``retry_after`` set) or split (status 413)."""
        assert self._writer is not None
        try:
            await self._writer("\n".join(batch))
        except InfluxWriteError as exc:
            if exc.status == TOO_LARGE and len(batch) > 1:
                raise
            if not exc.retryable or exc.status == TOO_LARGE:
                self.rejected_lines += len(batch)
                log.error(
                    "InfluxDB at %s refused %d lines, dropping them: %s",
                    self.config.url,
                    len(batch),
                    exc,
                )
                return False
            exc.retry_after = self.failed(exc, self._held(batch))
            raise
        except Exception as exc:  # anything unexpected counts as an outage, never ends a caller
            error = InfluxWriteError(describe(exc), retryable=True)
            error.retry_after = self.failed(error, self._held(batch))
            raise error from exc
        self.written_lines += len(batch)
        self.written_batches += 1
        if self._down_since is not None:
            log.info(
                "InfluxDB writes to %s recovered after %.1f s and %d failed attempts; "
                "%d lines still buffered",
                self.config.url,
                time.monotonic() - self._down_since,
                self._failures_in_outage,
                self._held(batch) - len(batch),
            )
            self._down_since = None
            self._failures_in_outage = 0
        return True

    def _held(self, batch: list[str]) -> int:
        return max(len(batch), self._pending()) if self._pending is not None else len(batch)

    def failed(self, exc: InfluxWriteError, pending: int) -> float:
        """Count a failed attempt, log the start of an outage; returns the backoff delay (s)."""
        self.failed_batches += 1
        self.last_error = str(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error(
                "InfluxDB writes to %s failing (%s); keeping %d lines and retrying with backoff",
                self.config.url,
                self.last_error,
                pending,
            )
        else:
            log.debug("InfluxDB write to %s failed again: %s", self.config.url, self.last_error)
        attempt = self._failures_in_outage
        self._failures_in_outage += 1
        return self._backoff.delay(attempt)
