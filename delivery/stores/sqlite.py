"""The embedded mailbox store: one SQLite file in WAL mode, for a single delivery node.

One writer thread holds the only write connection, so writes are serialized in the order they are submitted and
each whole transaction costs one thread hop; reads run on a few reader threads with their own connections (WAL
lets them read while the writer writes). ``synchronous=FULL``: a write that returned survives a power loss.
Wake-ups are in-process (the node's Wakeups), so another process writing the same file wakes nobody here: run one
node per SQLite file, or use PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from delivery.mailbox import AckAheadError, Cursor, Delivery, MailboxState, Message, Page, StoreUnavailableError
from delivery.stores import Retention, sqlite_webhooks
from delivery.stores.sqlite_webhooks import SqliteWebhooks
from delivery.wakeups import Wakeups

T = TypeVar("T")

_READERS = 4
_PAIRS_PER_QUERY = 5000  # two bound variables each, under SQLite's limit of 32,766
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS recipients (recipient TEXT PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0,"
    " floor_seq INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS messages (recipient TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,"
    " topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, schema_name TEXT NOT NULL,"
    " schema_id TEXT NOT NULL, conversation TEXT, event_json TEXT NOT NULL, arrived_at INTEGER NOT NULL,"
    " acked_at INTEGER, trace TEXT, PRIMARY KEY (recipient, seq)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_event ON messages (recipient, event_id)",
    "CREATE INDEX IF NOT EXISTS messages_by_arrival ON messages (arrived_at)",
    "CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (recipient, conversation, seq)",
)
_COLUMNS = "recipient, seq, event_id, topic, schema_name, schema_id, conversation, event_json, arrived_at, trace"


class SqliteStore:
    def __init__(self, path: Path, *, retention: Retention, wakeups: Wakeups) -> None:
        self.path = path
        self._retention = retention
        self._wakeups = wakeups
        self._epoch = ""
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="mailbox-writer")
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="mailbox-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.webhooks = SqliteWebhooks(self)
        self.new_deliveries = asyncio.Event()  # set when a write made webhook deliveries; the dispatcher waits on it

    @property
    def epoch(self) -> str:
        return self._epoch

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._epoch = await self._run(self._writer, self._create)

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.shutdown)
        await asyncio.to_thread(self._readers.shutdown)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    async def write(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        rows, webhooks = await self._run(self._writer, lambda: self._write(deliveries))
        self._wakeups.deliver([self._written(row) for row in rows if self._wakeups.watched(row[0])])
        if webhooks:
            self.new_deliveries.set()
        return len(rows)

    async def read(self, recipient: str, after: Cursor | None, limit: int, conversation: str | None = None) -> Page:
        return await self._run(self._readers, lambda: self._read(recipient, after, limit, conversation))

    async def ack(self, recipient: str, up_to: Cursor) -> MailboxState:
        return await self._run(self._writer, lambda: self._ack(recipient, up_to))

    async def state(self, recipient: str) -> MailboxState:
        return await self._run(self._readers, lambda: self._state(self._connection(), recipient))

    async def prune(self) -> int:
        return await self._run(self._writer, self._prune)

    async def ping(self) -> None:
        await self._run(self._readers, lambda: self._connection().execute("SELECT 1").fetchone())

    async def in_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a write transaction on the writer thread (for the webhook tables)."""

        def run() -> T:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result

        return await self._run(self._writer, run)

    async def reading(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._readers, lambda: work(self._connection()))

    # --- on the store's threads ---------------------------------------------------------------------------

    async def _run(self, pool: ThreadPoolExecutor, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work)
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full, unreadable file
            raise StoreUnavailableError(f"the mailbox database {self.path} failed: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _create(self) -> str:
        new = not self.path.exists()
        db = self._connection()
        if new:
            os.chmod(self.path, 0o600)
        for statement in (*_SCHEMA, *sqlite_webhooks.SCHEMA):
            db.execute(statement)
        if "trace" not in {column[1] for column in db.execute("PRAGMA table_info(messages)")}:
            db.execute("ALTER TABLE messages ADD COLUMN trace TEXT")  # a file from before traces were kept
        db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (secrets.token_hex(4),))
        return str(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

    def _write(self, deliveries: Sequence[Delivery]) -> tuple[list[tuple[Any, ...]], int]:
        """The new message rows, and how many webhook deliveries they made."""
        db = self._connection()
        now = _now_ms()
        db.execute("BEGIN IMMEDIATE")
        try:
            recipients = sorted({d.recipient for d in deliveries})
            db.executemany("INSERT OR IGNORE INTO recipients (recipient) VALUES (?)", [(r,) for r in recipients])
            seqs = _select_in(
                db, "SELECT recipient, last_seq, floor_seq FROM recipients WHERE recipient IN ({})", recipients
            )
            last = {recipient: seq for recipient, seq, _ in seqs}
            floors = {recipient: floor for recipient, _, floor in seqs}
            stored = _stored(db, {(d.recipient, d.event_id) for d in deliveries})
            rows = []
            for d in deliveries:
                if (d.recipient, d.event_id) in stored:
                    continue  # redelivered after a crash, or a producer's retry: stored once
                stored.add((d.recipient, d.event_id))
                last[d.recipient] += 1
                rows.append(
                    (
                        d.recipient,
                        last[d.recipient],
                        d.event_id,
                        d.topic,
                        d.partition,
                        d.offset,
                        d.schema_name,
                        d.schema_id,
                        d.conversation,
                        d.event_json,
                        now,
                        d.trace,
                    )
                )
            db.executemany(
                "INSERT INTO messages (recipient, seq, event_id, topic, partition, offset, schema_name, schema_id,"
                " conversation, event_json, arrived_at, trace) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            touched = {row[0] for row in rows}
            db.executemany(
                "UPDATE recipients SET last_seq = ? WHERE recipient = ?", [(last[r], r) for r in sorted(touched)]
            )
            self._cap(db, {r: (last[r], floors[r]) for r in touched})
            webhooks = sqlite_webhooks.fan_out(db, rows, now / 1000)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return rows, webhooks

    def _cap(self, db: sqlite3.Connection, seqs: dict[str, tuple[int, int]]) -> None:
        """Keep at most max_messages per recipient (last and floor seq given): the oldest go, the floor moves."""
        keep = self._retention.max_messages
        for recipient, (last, floor) in sorted(seqs.items()):
            if last - floor > keep:
                db.execute("DELETE FROM messages WHERE recipient = ? AND seq <= ?", (recipient, last - keep))
                db.execute("UPDATE recipients SET floor_seq = ? WHERE recipient = ?", (last - keep, recipient))

    def _read(self, recipient: str, after: Cursor | None, limit: int, conversation: str | None) -> Page:
        db = self._connection()
        db.execute("BEGIN")  # one snapshot for the floor and the rows
        try:
            row = db.execute("SELECT floor_seq FROM recipients WHERE recipient = ?", (recipient,)).fetchone()
            floor = row[0] if row else 0
            gap, start = _start(after, self._epoch, floor)
            query = f"SELECT {_COLUMNS} FROM messages WHERE recipient = ? AND seq > ?"
            args: list[object] = [recipient, start]
            if conversation is not None:
                query += " AND conversation = ?"
                args.append(conversation)
            rows = db.execute(query + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        finally:
            db.execute("COMMIT")
        messages = [self._message(r) for r in rows]
        next_cursor = messages[-1].cursor if messages else Cursor(self._epoch, start) if start or after else None
        return Page(messages, next_cursor, gap)

    def _ack(self, recipient: str, up_to: Cursor) -> MailboxState:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            state = self._state(db, recipient)
            if up_to.epoch != self._epoch or state.last is None or up_to.seq > state.last.seq:
                raise AckAheadError(recipient, up_to, state.last)
            if state.acked is None or up_to.seq > state.acked.seq:
                db.execute("UPDATE recipients SET acked_seq = ? WHERE recipient = ?", (up_to.seq, recipient))
                db.execute(
                    "UPDATE messages SET acked_at = ? WHERE recipient = ? AND seq <= ? AND acked_at IS NULL",
                    (_now_ms(), recipient, up_to.seq),
                )
            state = self._state(db, recipient)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return state

    def _state(self, db: sqlite3.Connection, recipient: str) -> MailboxState:
        row = db.execute("SELECT last_seq, acked_seq FROM recipients WHERE recipient = ?", (recipient,)).fetchone()
        last, acked = row if row else (0, 0)
        count, first = db.execute(
            "SELECT count(*), min(seq) FROM messages WHERE recipient = ?", (recipient,)
        ).fetchone()
        return MailboxState(
            recipient, self._epoch, count, self._cursor(first), self._cursor(last or None), self._cursor(acked or None)
        )

    def _prune(self) -> int:
        db = self._connection()
        now = _now_ms()
        expired = now - int(self._retention.ttl_s * 1000)
        acked_before = now - int(self._retention.acked_grace_s * 1000)
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = db.execute(
                "SELECT recipient, max(seq) FROM messages WHERE arrived_at < ? OR acked_at < ? GROUP BY recipient",
                (expired, acked_before),
            ).fetchall()
            # seqs are allocated in time order, so everything up to the newest expired message goes with it
            removed = 0
            for recipient, seq in gone:
                removed += db.execute(
                    "DELETE FROM messages WHERE recipient = ? AND seq <= ?", (recipient, seq)
                ).rowcount
            db.executemany(
                "UPDATE recipients SET floor_seq = max(floor_seq, ?) WHERE recipient = ?",
                [(seq, recipient) for recipient, seq in gone],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return removed

    def _written(self, row: tuple[Any, ...]) -> Message:
        recipient, seq, event_id, topic, _, _, schema_name, schema_id, conversation, event_json, arrived_at, trace = row
        cursor = Cursor(self._epoch, seq)
        return Message(
            recipient, cursor, event_id, topic, schema_name, schema_id, conversation, event_json, arrived_at, trace
        )

    def _message(self, row: tuple[Any, ...]) -> Message:
        recipient, seq, event_id, topic, schema_name, schema_id, conversation, event_json, arrived_at, trace = row
        return Message(
            recipient,
            Cursor(self._epoch, seq),
            event_id,
            topic,
            schema_name,
            schema_id,
            conversation,
            event_json,
            arrived_at,
            trace,
        )

    def _cursor(self, seq: int | None) -> Cursor | None:
        return None if seq is None else Cursor(self._epoch, seq)


def _start(after: Cursor | None, epoch: str, floor: int) -> tuple[bool, int]:
    """(gap, the seq to read after) for a cursor: a cursor of another epoch, or below the floor, is a gap."""
    if after is None:
        return False, floor
    if after.epoch != epoch:
        return True, floor
    if after.seq < floor:
        return True, floor
    return False, after.seq


def _stored(db: sqlite3.Connection, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (recipient, eventId) pairs already in the mailbox: one index probe per pair, not per combination."""
    found: set[tuple[str, str]] = set()
    ordered = sorted(pairs)
    for start in range(0, len(ordered), _PAIRS_PER_QUERY):
        chunk = ordered[start : start + _PAIRS_PER_QUERY]
        values = ",".join(["(?, ?)"] * len(chunk))
        # CROSS JOIN keeps the constant rows outside, so each probes the (recipient, event_id) index once
        rows = db.execute(
            f"SELECT m.recipient, m.event_id FROM (VALUES {values}) AS v CROSS JOIN messages AS m"
            " ON m.recipient = v.column1 AND m.event_id = v.column2",
            [value for pair in chunk for value in pair],
        )
        found.update(rows)
    return found


def _select_in(db: sqlite3.Connection, query: str, *groups: Sequence[str]) -> list[tuple[Any, ...]]:
    sql = query.format(*(",".join("?" * len(group)) for group in groups))
    return db.execute(sql, [value for group in groups for value in group]).fetchall()


def _now_ms() -> int:
    return int(time.time() * 1000)
