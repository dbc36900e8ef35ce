"""The durable outbox: what is bound for MQTT (QoS 1) and the time-series sink, kept on disk.

One SQLite file in WAL mode holds several named streams (``"mqtt"``, ``"influx"``). Producers put
entries; a delivery loop peeks the oldest, sends them and acks what was delivered. What cannot be
delivered stays on disk, is replayed in order on reconnect and survives the process being killed.

* Order: every entry gets a sequence number from one monotonic counter (never reused, also across
  restarts); a stream is read in that order, so each device's entries keep their order.
* Delivery is at-least-once: a crash between a send and its ack sends the entry again.
* Bound: ``max_bytes`` (and optionally ``max_rows``). When a put goes past it, the oldest
  *telemetry* entries, across all streams, are dropped and counted. Status, alarm, event and
  reply entries are never dropped: if only those remain, they are kept beyond the bound and an
  ERROR is logged; new telemetry is then dropped as soon as it is put (the oldest telemetry left).

:class:`Outbox` is the synchronous core; :class:`AsyncOutbox` wraps it for the event loop, batches
puts from many tasks into one transaction and runs all SQLite work on one worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self, TypeVar, get_args

from gateway.errors import GatewayError

__all__ = [
    "MEMORY",
    "ROW_OVERHEAD",
    "AsyncOutbox",
    "EntryKind",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "OutboxStats",
    "StoredEntry",
    "Synchronous",
]

log = logging.getLogger(__name__)

EntryKind = Literal["telemetry", "status", "alarm", "event", "reply"]
"""What an entry is (as ``OutboundMessage.kind``); only telemetry may be dropped.

Stored as its index in this tuple: append new kinds, never reorder."""
Synchronous = Literal["NORMAL", "FULL"]

_KIND_CODES: Final[dict[str, int]] = {k: i for i, k in enumerate(get_args(EntryKind))}
_KINDS: Final[tuple[EntryKind, ...]] = get_args(EntryKind)
_TELEMETRY: Final = 0  # code of "telemetry"; the only kind that may be dropped
MEMORY: Final = Path(":memory:")
"""The path of an outbox kept in memory (SQLite's ``:memory:``): the same streams, order, bound
and drop policy, but nothing survives the process. The gateway's database lines go through one
when the durable outbox is turned off."""
ROW_OVERHEAD: Final = 40
"""Bytes counted per entry on top of payload, topic and key: an estimate of SQLite's own cost."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    stream  TEXT    NOT NULL,
    kind    INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL,
    size    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_stream ON entries (stream, seq);
CREATE INDEX IF NOT EXISTS entries_telemetry ON entries (seq) WHERE kind = 0;
"""


class OutboxError(GatewayError):
    """The outbox file could not be opened, read or written (disk full, locked, corrupt)."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"outbox {path}: {message}")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message to deliver. ``key`` (e.g. the device id) groups entries whose order matters."""

    kind: EntryKind
    key: str
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False

    @property
    def size(self) -> int:
        """Bytes this entry counts against the bound."""
        return len(self.payload) + len(self.topic.encode()) + len(self.key.encode()) + ROW_OVERHEAD


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry read back from the outbox, with its sequence number (for :meth:`Outbox.ack`)."""

    seq: int
    stream: str
    entry: OutboxEntry


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counters for the gateway's status and ``gateway`` measurement.

    ``depth`` is entries waiting per stream; ``bytes`` and ``rows`` count all streams (``bytes`` as
    the bound counts it, see :data:`ROW_OVERHEAD`); ``dropped_telemetry`` counts since open.
    """

    depth: Mapping[str, int] = field(default_factory=dict)
    rows: int = 0
    bytes: int = 0
    telemetry_rows: int = 0
    dropped_telemetry: int = 0
    dropped_bytes: int = 0
    over_bound: bool = False
    max_bytes: int = 0
    max_rows: int | None = None

    @property
    def outbox_depth(self) -> int:
        """Entries waiting in all streams: the ``outbox_depth`` field."""
        return self.rows


class Outbox:
    """One SQLite file holding several ordered streams of entries. Thread-safe, blocking.

    Every committed entry survives the process being killed (WAL). ``synchronous="FULL"`` (the
    default) also makes it survive a power cut or OS crash, at one fsync per commit (cheap when
    puts are batched, as :class:`AsyncOutbox` does); ``"NORMAL"`` may lose the last commits
    before a checkpoint on power loss, never corrupting the file.
    The file is locked for exclusive use: a second gateway on the same file gets an OutboxError.
    With ``path=MEMORY`` the database lives in memory (not durable; ``synchronous`` is moot).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 256 * 2**20,
        max_rows: int | None = None,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if max_bytes <= 0 or (max_rows is not None and max_rows <= 0):
            raise ValueError("max_bytes and max_rows must be positive")
        if synchronous not in get_args(Synchronous):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self._telemetry_rows = 0
        self._dropped = 0
        self._dropped_bytes = 0
        self._over_bound = False  # only protected entries left, kept beyond the bound
        self._shedding = False  # telemetry dropped since usage was last under the bound
        self._snapshot = OutboxStats()
        self.in_memory = self.path == MEMORY
        if not self.in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(
                ":memory:" if self.in_memory else self.path,
                timeout=1.0,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"cannot open: {exc}") from exc
        try:
            self._setup(db, synchronous)
        except sqlite3.Error as exc:
            db.close()
            if "locked" in str(exc):
                raise OutboxError(self.path, "in use by another process") from exc
            raise OutboxError(self.path, f"cannot open: {exc}") from exc
        self._db: sqlite3.Connection | None = db
        self._after_change(0)
        if self._snapshot.rows:
            log.info(
                "outbox %s opened with %d entries waiting (%d bytes)",
                self.path,
                self._snapshot.rows,
                self._snapshot.bytes,
            )

    def _setup(self, db: sqlite3.Connection, synchronous: Synchronous) -> None:
        if not self.in_memory:
            # Exclusive locking before WAL: no shared memory, and the write below takes a lock
            # that is held until close, so only one process owns the file.
            db.execute("PRAGMA locking_mode = EXCLUSIVE")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
            db.execute(f"PRAGMA synchronous = {synchronous}")
            db.execute("PRAGMA journal_size_limit = 67108864")
        with self._transaction(db):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        for stream, kind, rows, size in db.execute(
            "SELECT stream, kind, count(*), sum(size) FROM entries GROUP BY stream, kind"
        ):
            self._rows[stream] = self._rows.get(stream, 0) + rows
            self._bytes[stream] = self._bytes.get(stream, 0) + size
            if kind == _TELEMETRY:
                self._telemetry_rows += rows

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        """Serialize access to the open connection; map SQLite errors to OutboxError."""
        with self._lock:
            if self._db is None:
                raise OutboxError(self.path, f"cannot {action}: closed")
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise OutboxError(self.path, f"cannot {action}: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------------

    def put_many(self, stream: str, entries: Sequence[OutboxEntry]) -> None:
        """Append entries to one stream, in order, in one transaction."""
        self.put_batches({stream: entries})

    def put_batches(self, batches: Mapping[str, Sequence[OutboxEntry]]) -> None:
        """Append entries to several streams in one transaction; enforce the bound."""
        rows = [
            (stream, _KIND_CODES[e.kind], e.key, e.topic, e.payload, e.qos, int(e.retain), e.size)
            for stream, entries in batches.items()
            for e in entries
        ]
        if not rows:
            return
        if any(not stream for stream in batches):
            raise ValueError("stream names must not be empty")
        with self._guard("put") as db:
            rows_by_stream = dict(self._rows)
            bytes_by_stream = dict(self._bytes)
            telemetry = self._telemetry_rows
            for stream, kind, *_, size in rows:
                rows_by_stream[stream] = rows_by_stream.get(stream, 0) + 1
                bytes_by_stream[stream] = bytes_by_stream.get(stream, 0) + size
                telemetry += kind == _TELEMETRY
            with self._transaction(db):
                db.executemany(
                    "INSERT INTO entries (stream, kind, key, topic, payload, qos, retain, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                dropped = self._drop_telemetry(db, rows_by_stream, bytes_by_stream, telemetry)
            self._rows, self._bytes = rows_by_stream, bytes_by_stream
            self._telemetry_rows = telemetry - dropped[0]
            self._dropped += dropped[0]
            self._dropped_bytes += dropped[1]
            self._after_change(dropped[0])

    def _excess(self, rows: int, size: int) -> tuple[int, int]:
        """Rows and bytes over the bound (zero or negative when within it)."""
        extra_rows = rows - self.max_rows if self.max_rows is not None else 0
        return extra_rows, size - self.max_bytes

    def _drop_telemetry(
        self,
        db: sqlite3.Connection,
        rows_by_stream: dict[str, int],
        bytes_by_stream: dict[str, int],
        telemetry: int,
    ) -> tuple[int, int]:
        """Inside a transaction: delete the oldest telemetry until within the bound.

        Updates the per-stream counters in place; returns (rows, bytes) dropped.
        """
        extra_rows, extra_bytes = self._excess(
            sum(rows_by_stream.values()), sum(bytes_by_stream.values())
        )
        if (extra_rows <= 0 and extra_bytes <= 0) or telemetry == 0:
            return 0, 0
        cutoff = None
        after = -1
        while extra_rows > 0 or extra_bytes > 0:
            chunk = db.execute(
                "SELECT seq, size FROM entries WHERE kind = 0 AND seq > ? ORDER BY seq LIMIT 512",
                (after,),
            ).fetchall()
            if not chunk:
                break
            for seq, size in chunk:
                cutoff = seq
                extra_rows -= 1
                extra_bytes -= size
                if extra_rows <= 0 and extra_bytes <= 0:
                    break
            after = chunk[-1][0]
        if cutoff is None:
            return 0, 0
        dropped_rows = dropped_bytes = 0
        for stream, size in db.execute(
            "DELETE FROM entries WHERE kind = 0 AND seq <= ? RETURNING stream, size", (cutoff,)
        ):
            rows_by_stream[stream] -= 1
            bytes_by_stream[stream] -= size
            dropped_rows += 1
            dropped_bytes += size
        return dropped_rows, dropped_bytes

    def ack(self, stream: str, upto: int) -> int:
        """Delete a stream's entries with ``seq <= upto`` (delivered). Returns how many."""
        return self._delete(stream, "seq <= ?", (upto,))

    def ack_seqs(self, stream: str, seqs: Sequence[int]) -> int:
        """Delete a stream's entries with the given sequence numbers. Returns how many."""
        if not seqs:
            return 0
        return self._delete(stream, "seq IN (SELECT value FROM json_each(?))", (_json_ints(seqs),))

    def _delete(self, stream: str, where: str, args: tuple[object, ...]) -> int:
        with self._guard("ack") as db:
            rows_by_stream = dict(self._rows)
            bytes_by_stream = dict(self._bytes)
            telemetry = self._telemetry_rows
            deleted = 0
            with self._transaction(db):
                for kind, size in db.execute(
                    f"DELETE FROM entries WHERE stream = ? AND {where} RETURNING kind, size",
                    (stream, *args),
                ):
                    deleted += 1
                    rows_by_stream[stream] -= 1
                    bytes_by_stream[stream] -= size
                    telemetry -= kind == _TELEMETRY
            if deleted:
                self._rows, self._bytes, self._telemetry_rows = (
                    rows_by_stream,
                    bytes_by_stream,
                    telemetry,
                )
                self._after_change(0)
            return deleted

    def _after_change(self, dropped: int) -> None:
        """Log changes of the bound state and publish a fresh stats snapshot (lock held)."""
        rows = sum(self._rows.values())
        size = sum(self._bytes.values())
        extra_rows, extra_bytes = self._excess(rows, size)
        over = extra_rows > 0 or extra_bytes > 0
        if dropped and not self._shedding:
            log.warning(
                "outbox %s reached its bound: dropping the oldest telemetry (%d entries)",
                self.path,
                dropped,
            )
            self._shedding = True
        elif dropped:
            log.debug("outbox %s dropped %d telemetry entries", self.path, dropped)
        elif self._shedding and self._below_resume_level(rows, size):
            log.info(
                "outbox %s is below its bound again; %d telemetry entries dropped since open",
                self.path,
                self._dropped,
            )
            self._shedding = False
        if over and not self._over_bound:
            log.error(
                "outbox %s is over its bound (%d rows, %d bytes) with no telemetry left to drop;"
                " keeping alarms, status, events and replies beyond it",
                self.path,
                rows,
                size,
            )
        elif self._over_bound and not over:
            log.info(
                "outbox %s is within its bound again (%d rows, %d bytes)", self.path, rows, size
            )
        self._over_bound = over
        self._snapshot = self._make_stats()

    def _below_resume_level(self, rows: int, size: int) -> bool:
        """Usage is clearly under the bound (90 %), so dropping has stopped, not just paused."""
        if self.max_rows is not None and rows > 0.9 * self.max_rows:
            return False
        return size <= 0.9 * self.max_bytes

    # -- reading ---------------------------------------------------------------------------------

    def peek(self, stream: str, limit: int) -> list[StoredEntry]:
        """The oldest ``limit`` entries of a stream, oldest first."""
        with self._guard("peek") as db:
            cursor = db.execute(
                "SELECT seq, kind, key, topic, payload, qos, retain FROM entries"
                " WHERE stream = ? ORDER BY seq LIMIT ?",
                (stream, limit),
            )
            return [
                StoredEntry(
                    seq, stream, OutboxEntry(_KINDS[kind], key, topic, payload, qos, bool(r))
                )
                for seq, kind, key, topic, payload, qos, r in cursor
            ]

    def depth(self, stream: str) -> int:
        """Entries waiting in a stream. Never blocks."""
        return self._snapshot.depth.get(stream, 0)

    def stats(self) -> OutboxStats:
        """A snapshot of the counters, as of the last commit. Never blocks."""
        return self._snapshot

    def _make_stats(self) -> OutboxStats:
        return OutboxStats(
            depth={s: n for s, n in self._rows.items() if n},
            rows=sum(self._rows.values()),
            bytes=sum(self._bytes.values()),
            telemetry_rows=self._telemetry_rows,
            dropped_telemetry=self._dropped,
            dropped_bytes=self._dropped_bytes,
            over_bound=self._over_bound,
            max_bytes=self.max_bytes,
            max_rows=self.max_rows,
        )

    def close(self) -> None:
        """Checkpoint and close the file. Idempotent."""
        with self._lock:
            if self._db is None:
                return
            db, self._db = self._db, None
            try:
                if not self.in_memory:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("outbox %s: checkpoint on close failed: %s", self.path, exc)
            finally:
                db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_ints(values: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


_T = TypeVar("_T")


class AsyncOutbox:
    """The outbox for the event loop: batched puts and delivery, SQLite work on one thread.

    Use as an async context manager. ``put`` and ``put_many`` return once their entries are
    committed; puts from many tasks within ``linger`` seconds share one transaction. Order is the
    order of the calls, so each task's (each device's) entries keep their order.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 256 * 2**20,
        max_rows: int | None = None,
        synchronous: Synchronous = "FULL",
        linger: float = 0.005,
        max_batch: int = 2000,
    ) -> None:
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._max_rows = max_rows
        self._synchronous: Synchronous = synchronous
        self._linger = linger
        self._max_batch = max_batch
        self._outbox: Outbox | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: dict[str, list[OutboxEntry]] = {}
        self._pending_rows = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None
        self._changed: dict[str, asyncio.Event] = {}

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        try:
            self._outbox = await self._run(
                lambda: Outbox(
                    self.path,
                    max_bytes=self._max_bytes,
                    max_rows=self._max_rows,
                    synchronous=self._synchronous,
                )
            )
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"outbox-flush {self.path}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._flusher is not None:
                self._closing = True  # the flusher commits what is pending, then ends
                self._wakeup.set()
                await self._flusher
        finally:
            self._flusher = None
            outbox, self._outbox = self._outbox, None
            if outbox is not None:
                await self._run(outbox.close)
            if self._executor is not None:
                self._executor.shutdown(wait=True)

    @property
    def outbox(self) -> Outbox:
        """The synchronous core (only while open)."""
        if self._outbox is None:
            raise OutboxError(self.path, "not open")
        return self._outbox

    async def _run(self, func: Callable[[], _T]) -> _T:
        assert self._executor is not None, "AsyncOutbox used outside 'async with'"
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    # -- putting ---------------------------------------------------------------------------------

    async def put(self, stream: str, entry: OutboxEntry) -> None:
        """Append one entry; returns once it is committed."""
        await self.put_many(stream, (entry,))

    async def put_many(self, stream: str, entries: Sequence[OutboxEntry]) -> None:
        """Append entries, in order; returns once they are committed.

        A caller cancelled while waiting does not take its entries back: they are committed.
        """
        await self.put_batches({stream: entries})

    async def put_batches(self, batches: Mapping[str, Sequence[OutboxEntry]]) -> None:
        """Append entries to several streams; returns once they are committed.

        The entries of one call are committed in ONE transaction (maybe together with other
        callers' puts, never split between two): after a crash the outbox holds all of them or
        none. Each stream's entries keep their order. A caller cancelled while waiting does not
        take its entries back: they are committed.
        """
        rows = sum(len(entries) for entries in batches.values())
        if not rows:
            return
        if self._flusher is None or self._closing:
            raise OutboxError(self.path, "not open")
        for stream, entries in batches.items():
            if entries:
                self._pending.setdefault(stream, []).extend(entries)
        self._pending_rows += rows
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wakeup.set()
        await waiter

    async def _flush_loop(self) -> None:
        """Commit pending puts, a batch at a time, until closing."""
        while not self._closing:
            await self._wakeup.wait()
            if self._pending_rows < self._max_batch and self._linger > 0 and not self._closing:
                await asyncio.sleep(self._linger)
            self._wakeup.clear()
            await self._flush_once()
        await self._flush_once()

    async def _flush_once(self) -> None:
        batches, waiters = self._pending, self._waiters
        if not waiters:
            return
        self._pending, self._waiters, self._pending_rows = {}, [], 0
        try:
            outbox = self.outbox
            await self._run(lambda: outbox.put_batches(batches))
        except Exception as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for stream in batches:
            self._event(stream).set()

    def _event(self, stream: str) -> asyncio.Event:
        return self._changed.setdefault(stream, asyncio.Event())

    # -- delivering ------------------------------------------------------------------------------

    async def wait_pending(self, stream: str, count: int = 1) -> None:
        """Return as soon as the stream has at least ``count`` entries waiting."""
        event = self._event(stream)
        while self.depth(stream) < count:
            event.clear()
            await event.wait()

    async def peek(self, stream: str, limit: int) -> list[StoredEntry]:
        """The oldest ``limit`` entries of a stream."""
        outbox = self.outbox
        return await self._run(lambda: outbox.peek(stream, limit))

    async def ack(self, stream: str, upto: int) -> int:
        """Delete a stream's entries with ``seq <= upto``."""
        outbox = self.outbox
        return await self._run(lambda: outbox.ack(stream, upto))

    async def deliver(
        self,
        stream: str,
        send: Callable[[StoredEntry], Awaitable[None]],
        *,
        batch: int = 200,
        window: int = 1,
    ) -> int:
        """Send a stream's entries, oldest first, until it is empty; returns how many were sent.

        Up to ``window`` sends run at once, started in order (an MQTT client puts them on the wire
        in that order, and waiting for each PUBACK in turn would cap throughput at one message
        per round trip). Acks after each batch. If a send raises, the entries before it are
        acked, it and the rest stay for the next call, and its exception propagates.
        """
        delivered = 0
        while entries := await self.peek(stream, batch):
            sent = 0
            try:
                for start in range(0, len(entries), window):
                    chunk = entries[start : start + window]
                    if window == 1:
                        await send(chunk[0])
                        sent += 1
                        continue
                    results = await asyncio.gather(*map(send, chunk), return_exceptions=True)
                    for result in results:
                        if isinstance(result, BaseException):
                            raise result
                        sent += 1
            finally:
                if sent:
                    await self.ack(stream, entries[sent - 1].seq)
                    delivered += sent
        return delivered

    async def deliver_batches(
        self,
        stream: str,
        send_batch: Callable[[list[StoredEntry]], Awaitable[None]],
        *,
        batch: int = 5000,
    ) -> int:
        """Like :meth:`deliver`, but ``send_batch`` takes a whole batch (e.g. one HTTP write).

        A batch is acked only when ``send_batch`` returns; if it raises, the whole batch stays.
        """
        delivered = 0
        while entries := await self.peek(stream, batch):
            await send_batch(entries)
            await self.ack(stream, entries[-1].seq)
            delivered += len(entries)
        return delivered

    # -- counters --------------------------------------------------------------------------------

    def depth(self, stream: str) -> int:
        """Entries committed and waiting in a stream. Never blocks."""
        return self._outbox.depth(stream) if self._outbox is not None else 0

    def stats(self) -> OutboxStats:
        """A snapshot of the counters. Never blocks."""
        return self._outbox.stats() if self._outbox is not None else OutboxStats()
