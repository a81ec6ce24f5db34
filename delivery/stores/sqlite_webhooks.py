"""Webhook endpoints, deliveries and attempts in the SQLite mailbox file (delivery.webhooks.model has the model).

Runs on the mailbox store's threads: writes on its one writer thread (so a delivery row is created in the same
transaction as its message), reads on its readers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from delivery.stores.webhook_rows import claimed_from_row, endpoint_from_json, endpoint_json
from delivery.webhooks.model import Attempt, Claimed, Endpoint, Result, WebhookNotFoundError

if TYPE_CHECKING:
    from delivery.stores.sqlite import SqliteStore

T = TypeVar("T")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS webhook_endpoints (id TEXT PRIMARY KEY, status TEXT NOT NULL,"
    " ordered INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS webhook_deliveries (endpoint_id TEXT NOT NULL, recipient TEXT NOT NULL,"
    " seq INTEGER NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT, updated_at REAL NOT NULL,"
    " PRIMARY KEY (endpoint_id, recipient, seq)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due_by_endpoint"
    " ON webhook_deliveries (endpoint_id, status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_by_status ON webhook_deliveries (endpoint_id, status, updated_at)",
    "CREATE TABLE IF NOT EXISTS webhook_attempts (endpoint_id TEXT NOT NULL, at REAL NOT NULL, event_id TEXT NOT NULL,"
    " recipient TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL, status INTEGER,"
    " latency_ms REAL NOT NULL, response TEXT NOT NULL, error TEXT)",
    "CREATE INDEX IF NOT EXISTS webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, at)",
)
_CLAIM = """
SELECT d.endpoint_id, d.recipient, d.seq, d.event_id, d.attempts, m.topic, m.schema_name, m.schema_id,
       m.conversation, m.event_json, m.arrived_at
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'enabled'
LEFT JOIN messages m ON m.recipient = d.recipient AND m.seq = d.seq
WHERE d.endpoint_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ?
  AND (e.ordered = 0 OR d.seq = (SELECT min(x.seq) FROM webhook_deliveries x WHERE x.endpoint_id = d.endpoint_id
                                 AND x.recipient = d.recipient AND x.status = 'pending'))
ORDER BY d.next_attempt_at LIMIT ?
"""


def fan_out(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], now: float) -> int:
    """In the mailbox write's transaction: a delivery row per new message and matching enabled endpoint. ``rows``
    are the new message rows (recipient, seq, event_id, topic, ...). Returns how many were made."""
    endpoints = [
        endpoint_from_json(b) for (b,) in db.execute("SELECT body FROM webhook_endpoints WHERE status = 'enabled'")
    ]
    if not endpoints:
        return 0
    deliveries = [(e.id, r[0], r[1], r[2], now, now) for r in rows for e in endpoints if e.matches(r[0], r[3])]
    db.executemany(
        "INSERT OR IGNORE INTO webhook_deliveries (endpoint_id, recipient, seq, event_id, status,"
        " next_attempt_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        deliveries,
    )
    return len(deliveries)


class SqliteWebhooks:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        await self._write(
            lambda db: db.execute(
                "INSERT INTO webhook_endpoints VALUES (?, ?, ?, ?)",
                (endpoint.id, endpoint.status, endpoint.ordered, endpoint_json(endpoint)),
            )
        )

    async def endpoint(self, endpoint_id: str) -> Endpoint:
        row = await self._read(
            lambda db: db.execute("SELECT body FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
        )
        if row is None:
            raise WebhookNotFoundError(endpoint_id)
        return endpoint_from_json(row[0])

    async def endpoints(self) -> list[Endpoint]:
        rows = await self._read(lambda db: db.execute("SELECT body FROM webhook_endpoints").fetchall())
        return sorted((endpoint_from_json(b) for (b,) in rows), key=lambda e: e.created_at)

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        def save(db: sqlite3.Connection) -> None:
            changed = db.execute(
                "UPDATE webhook_endpoints SET status = ?, ordered = ?, body = ? WHERE id = ?",
                (endpoint.status, endpoint.ordered, endpoint_json(endpoint), endpoint.id),
            ).rowcount
            if not changed:
                raise WebhookNotFoundError(endpoint.id)

        await self._write(save)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            if not db.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).rowcount:
                raise WebhookNotFoundError(endpoint_id)
            db.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
            db.execute("DELETE FROM webhook_attempts WHERE endpoint_id = ?", (endpoint_id,))

        await self._write(delete)

    async def claim(self, now: float, capacity: Mapping[str, int], lease_s: float) -> list[Claimed]:
        epoch = self._store.epoch

        def claim(db: sqlite3.Connection) -> list[Claimed]:
            claimed = [
                claimed_from_row(row, epoch)
                for endpoint_id, free in capacity.items()
                if free > 0
                for row in db.execute(_CLAIM, (endpoint_id, now, free)).fetchall()
            ]
            db.executemany(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE endpoint_id = ? AND recipient = ? AND seq = ?",
                [(now + lease_s, c.endpoint_id, c.recipient, c.seq) for c in claimed],
            )
            return claimed

        return await self._write(claim)

    async def record(self, results: Sequence[Result], disable_after_s: float) -> list[str]:
        def record(db: sqlite3.Connection) -> list[str]:
            for r in results:
                c, a = r.claimed, r.attempt
                status = {"succeeded": "succeeded", "failed": "failed"}.get(r.verdict, "pending")
                db.execute(
                    "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,"
                    " last_status = ?, last_error = ?, updated_at = ? WHERE endpoint_id = ? AND recipient = ?"
                    " AND seq = ?",
                    (status, r.next_attempt_at or a.at, a.status, a.error, a.at, c.endpoint_id, c.recipient, c.seq),
                )
                _insert_attempt(db, a)
            return _update_endpoints(db, results, disable_after_s)

        return await self._write(record)

    async def recover(self, endpoint_id: str, since: float) -> int:
        await self.endpoint(endpoint_id)
        return await self._write(
            lambda db: (
                db.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = 0 WHERE"
                    " endpoint_id = ? AND status = 'failed' AND updated_at >= ?",
                    (endpoint_id, since),
                ).rowcount
            )
        )

    async def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        rows = await self._read(
            lambda db: db.execute(
                "SELECT endpoint_id, event_id, recipient, seq, attempt, at, status, latency_ms, response, error FROM"
                " webhook_attempts WHERE endpoint_id = ? ORDER BY at DESC LIMIT ?",
                (endpoint_id, limit),
            ).fetchall()
        )
        return [Attempt(*row) for row in rows]

    async def backlog(self) -> dict[str, int]:
        rows = await self._read(
            lambda db: db.execute(
                "SELECT endpoint_id, count(*) FROM webhook_deliveries WHERE status = 'pending' GROUP BY endpoint_id"
            ).fetchall()
        )
        return dict(rows)

    async def log_attempt(self, attempt: Attempt) -> None:
        await self._write(lambda db: _insert_attempt(db, attempt))

    async def prune_attempts(self, before: float) -> int:
        return await self._write(lambda db: db.execute("DELETE FROM webhook_attempts WHERE at < ?", (before,)).rowcount)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._store.in_transaction(work)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._store.reading(work)


def _insert_attempt(db: sqlite3.Connection, a: Attempt) -> None:
    db.execute(
        "INSERT INTO webhook_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (a.endpoint_id, a.at, a.event_id, a.recipient, a.seq, a.attempt, a.status, a.latency_ms, a.response, a.error),
    )


def _update_endpoints(db: sqlite3.Connection, results: Sequence[Result], disable_after_s: float) -> list[str]:
    """Success clears an endpoint's failing clock; a failure starts it, and disables the endpoint once it ran
    disable_after_s; a 410 disables it at once."""
    disabled = []
    for endpoint_id in {r.claimed.endpoint_id for r in results}:
        row = db.execute("SELECT body FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
        if row is None:
            continue  # deleted meanwhile
        endpoint = endpoint_from_json(row[0])
        mine = [r for r in results if r.claimed.endpoint_id == endpoint_id]
        updated = endpoint.after(mine, disable_after_s)
        if updated != endpoint:
            db.execute(
                "UPDATE webhook_endpoints SET status = ?, body = ? WHERE id = ?",
                (updated.status, endpoint_json(updated), endpoint_id),
            )
            if updated.status == "disabled" and endpoint.status == "enabled":
                disabled.append(endpoint_id)
    return disabled
