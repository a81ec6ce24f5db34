"""Dedupe by event id: a durable record of processed events, so a redelivered event has its effect once.

A consumer group delivers at least once: a record whose offset was not committed before a crash or a
rebalance is delivered again. ProcessedIds remembers the ids of processed events in SQLite. What "once"
means depends on where the effect lands:

- **Exactly once** for effects written through the connection that ``ProcessedIds.once()`` yields (rows in
  the same SQLite file): the effect rows and the processed mark commit in one transaction, so after a crash
  either both are there or neither is, and a second delivery finds the mark and skips.
- **At least once** for effects outside that database (an HTTP call, an email, another database), e.g. in
  a handler wrapped with ``idempotent()``: the id is marked after the handler returned, so a crash between
  the effect and the mark repeats the effect on redelivery. Dedupe removes every other repetition; when even
  that one is unacceptable (a payment), make the external call idempotent too, e.g. by sending the event id
  as the API's idempotency key.

The store is bounded: ids older than ``retention`` are forgotten, and beyond ``max_entries`` the oldest
go. Pruning runs when the store opens and then every ``prune_every`` marks, so the table may exceed
``max_entries`` by up to ``prune_every`` rows in between. An event redelivered after its id was pruned is
processed again: keep the retention above the longest time a record can wait for redelivery.

An async handler's checks and marks run in a worker thread, never on the event loop: a database locked by
another process waits up to ``busy_timeout_s`` without stalling other partitions. A mark that fails after the
handler returned (the database stayed locked, the disk is full) never re-runs the effect: the id is kept in
memory as processed (at most ``max_pending`` ids), later checks in this process skip it, and the next mark
writes it too; only a crash before then loses it, which is the at-least-once window above.

Threads may share a store (one SQLite connection per thread), and several processes may open the same file:
SQLite's write lock, taken up front with ``BEGIN IMMEDIATE``, serializes each check-and-mark. WAL with
``synchronous=FULL`` makes a committed mark survive a power loss. Open the store in each process; SQLite
connections must not cross a fork.

A new store file is created 0600 (so are its -wal and -shm files) and the directories it creates 0700; event ids
in log lines are escaped (``hubstream.logs.printable``), since they come from the events.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from hubstream.errors import ConfigurationError, HubstreamError
from hubstream.files import private_dirs, private_file
from hubstream.logs import printable
from kafka_consumer.events import ConsumedEvent

log = logging.getLogger(__name__)

_SCHEMA = (
    # seq is the commit order: when the store is full the lowest seq goes first
    "CREATE TABLE IF NOT EXISTS processed_ids ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, processed_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS processed_ids_by_time ON processed_ids (processed_at)",
)
_PRUNE_CHUNK = 10_000  # rows per delete transaction: keeps the write lock short for other consumers


class IdempotencyError(HubstreamError):
    """The processed-ids store was misused or cannot work (closed, nested, forked, no event id)."""


class Skip(enum.Enum):
    ALREADY_PROCESSED = "already processed"


ALREADY_PROCESSED: Final = Skip.ALREADY_PROCESSED
"""What ``once()`` yields for an id that was already processed: do nothing."""


class ProcessedIds:
    """Ids of processed events in a SQLite file, bounded by age and count."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: timedelta = timedelta(days=7),
        max_entries: int = 1_000_000,
        prune_every: int = 1_000,
        busy_timeout_s: float = 30.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1 or prune_every < 1 or max_pending < 1 or retention <= timedelta(0):
            raise ConfigurationError(
                "ProcessedIds needs a positive retention, max_entries, prune_every and max_pending"
            )
        self.path = Path(path)
        self.retention = retention
        self.max_entries = max_entries
        self._prune_every = prune_every
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._pid = os.getpid()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._marks_since_prune = 0
        self._closed = False
        self._pending: dict[str, float] = {}  # id -> processed_at of marks not written yet (insertion order)
        self._max_pending = max_pending
        # owner-only before SQLite opens it: the -wal and -shm files SQLite adds take the database file's mode
        private_dirs(self.path.parent)
        private_file(self.path)
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
        self.prune()

    def __enter__(self) -> ProcessedIds:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def count(self) -> int:
        return int(self._connection().execute("SELECT count(*) FROM processed_ids").fetchone()[0])

    def seen(self, event_id: str) -> bool:
        if self._pending:  # almost always empty: no lock on the per-event path
            with self._lock:
                if event_id in self._pending:
                    return True
        return _is_marked(self._connection(), event_id)

    @property
    def pending(self) -> int:
        """Ids processed whose mark could not be written yet (kept in memory, written with the next mark)."""
        with self._lock:
            return len(self._pending)

    def mark_after_effect(self, event_id: str) -> bool:
        """Mark an id whose effect already ran; False if it already was marked.

        Unlike ``mark()`` this never raises for a database failure: the id is kept in memory as processed and
        written with a later mark, so nothing retries the effect because its bookkeeping failed.
        """
        try:
            self._write_pending()
            return self.mark(event_id)
        except sqlite3.Error as exc:
            self._keep_pending(event_id)
            log.error(
                "could not mark event %s processed in %s (%s): kept in memory (%d pending); "
                "it is written with the next mark",
                printable(event_id),
                self.path,
                exc,
                self.pending,
            )
            return True

    @contextmanager
    def once(self, event_id: str) -> Iterator[sqlite3.Connection | Skip]:
        """Run the body once per id: yields a connection in an open transaction, or ALREADY_PROCESSED.

        Write the effect through the yielded connection and leave the transaction to once(): on a normal
        exit the id is marked and everything commits together; if the body raises, everything rolls back
        and the id stays unmarked. Other writers to the file wait while the body runs, so keep it short.
        Do not nest once() on one thread.
        """
        with self._transaction() as conn:
            marked = _is_marked(conn, event_id)
            if not marked:
                yield conn
                if not conn.in_transaction:
                    raise IdempotencyError("the body of once() ended the transaction; leave commit to once()")
                conn.execute(
                    "INSERT INTO processed_ids (event_id, processed_at) VALUES (?, ?)", (event_id, self._clock())
                )
        if marked:
            yield ALREADY_PROCESSED  # outside the transaction: no lock is held while the caller skips
            return
        self._count_mark()

    def mark(self, event_id: str) -> bool:
        """Mark an id processed; False if it already was."""
        with self.once(event_id) as tx:
            return tx is not ALREADY_PROCESSED

    def _keep_pending(self, event_id: str) -> None:
        with self._lock:
            self._pending[event_id] = self._clock()
            while len(self._pending) > self._max_pending:
                dropped = next(iter(self._pending))
                del self._pending[dropped]
                log.error(
                    "%s: more than %d unwritten marks; forgot %s", self.path, self._max_pending, printable(dropped)
                )

    def _write_pending(self) -> None:
        if not self._pending:  # almost always empty: no lock or copy on the per-event path
            return
        with self._lock:
            pending = dict(self._pending)
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO processed_ids (event_id, processed_at) VALUES (?, ?)", pending.items()
            )
        with self._lock:
            for event_id in pending:
                self._pending.pop(event_id, None)
        log.info("wrote %d pending marks to %s", len(pending), self.path)

    def prune(self) -> int:
        """Forget ids older than the retention, then the oldest beyond max_entries; returns how many went."""
        cutoff = self._clock() - self.retention.total_seconds()
        removed = 0
        while True:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM processed_ids WHERE seq IN"
                    " (SELECT seq FROM processed_ids WHERE processed_at < ? LIMIT ?)",
                    (cutoff, _PRUNE_CHUNK),
                ).rowcount
            removed += deleted
            if deleted < _PRUNE_CHUNK:
                break
        while True:
            with self._transaction() as conn:
                # counted inside the lock, so processes pruning together do not remove twice the excess
                excess = conn.execute("SELECT count(*) FROM processed_ids").fetchone()[0] - self.max_entries
                if excess <= 0:
                    return removed
                removed += conn.execute(
                    "DELETE FROM processed_ids WHERE seq IN (SELECT seq FROM processed_ids ORDER BY seq LIMIT ?)",
                    (min(excess, _PRUNE_CHUNK),),
                ).rowcount

    def close(self) -> None:
        """Close every thread's connection; call it when no thread uses the store any more."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # --- connections and transactions ------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise IdempotencyError(f"processed-ids store {self.path} is closed")
        if os.getpid() != self._pid:
            raise IdempotencyError("ProcessedIds was opened in another process; open it again in this one")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit; check_same_thread=False: close() may run anywhere
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            conn.close()
            raise IdempotencyError(f"{self.path} cannot use SQLite WAL (journal mode {mode}); use a local disk")
        conn.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        _begin(conn)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _count_mark(self) -> None:
        with self._lock:
            self._marks_since_prune += 1
            due = self._marks_since_prune >= self._prune_every
            if due:
                self._marks_since_prune = 0
        if due:
            try:
                self.prune()
            except sqlite3.Error as exc:  # the mark is committed; a late prune must not fail the caller
                log.warning("pruning %s failed, retrying after %d marks: %s", self.path, self._prune_every, exc)


def _is_marked(conn: sqlite3.Connection, event_id: str) -> bool:
    return conn.execute("SELECT 1 FROM processed_ids WHERE event_id = ?", (event_id,)).fetchone() is not None


def event_id_field(event: ConsumedEvent) -> str:
    """The default dedupe key: the event's ``eventId`` field."""
    try:
        return str(event.value["eventId"])
    except KeyError:
        raise IdempotencyError(
            f"{event.schema_name} at {event.topic}[{event.partition}]@{event.offset} has no eventId field; "
            "pass key= to idempotent() to say what identifies the event"
        ) from None


H = TypeVar("H", bound=Callable[[ConsumedEvent], Any])


def idempotent(store: ProcessedIds, *, key: Callable[[ConsumedEvent], str] = event_id_field) -> Callable[[H], H]:
    """Wrap a handler (plain or async) so an event whose id was already processed is skipped.

    The id is marked after the handler returned, so:
    - a redelivered event whose handler had returned (and was marked) is skipped;
    - if the handler raises, nothing is marked and the next delivery runs it again;
    - a crash after the handler's effect and before the mark repeats the effect on redelivery: effects outside
      the store's database are at-least-once. For exactly-once, write the effect with ``store.once()`` in the
      same SQLite file instead.
    - if the mark itself fails (the database stays locked past its busy timeout), the effect is not run again:
      see ``ProcessedIds.mark_after_effect``.
    Two consumers handling the same id at the same moment (e.g. a member that lost its partition and does not
    know yet) both run the handler; the second mark finds the first and logs a warning.
    """

    def decorate(handler: H) -> H:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(event: ConsumedEvent) -> None:
                event_id = key(event)
                # SQLite waits for locks: in a thread, so a locked database does not stall the loop
                if await asyncio.to_thread(_skip, store, event, event_id):
                    return
                await handler(event)
                await asyncio.to_thread(_mark, store, event, event_id)

            return cast(H, run_async)

        @functools.wraps(handler)
        def run(event: ConsumedEvent) -> None:
            event_id = key(event)
            if _skip(store, event, event_id):
                return
            handler(event)
            _mark(store, event, event_id)

        return cast(H, run)

    return decorate


def _skip(store: ProcessedIds, event: ConsumedEvent, event_id: str) -> bool:
    if not store.seen(event_id):
        return False
    log.info(
        "%s[%d]@%d: event %s was already processed; skipped",
        event.topic,
        event.partition,
        event.offset,
        printable(event_id),
    )
    return True


def _mark(store: ProcessedIds, event: ConsumedEvent, event_id: str) -> None:
    if not store.mark_after_effect(event_id):
        log.warning(
            "%s[%d]@%d: event %s was processed by another consumer at the same time; its effect ran twice",
            event.topic,
            event.partition,
            event.offset,
            printable(event_id),
        )


def _begin(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        raise IdempotencyError("once() cannot be nested: this thread's transaction is still open")
    conn.execute("BEGIN IMMEDIATE")  # the write lock before the check, so check-and-mark is atomic
