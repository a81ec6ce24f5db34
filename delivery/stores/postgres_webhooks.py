"""Webhook endpoints, deliveries and attempts in the PostgreSQL mailbox database (delivery.webhooks.model has the
model). Several nodes claim due deliveries at once: ``FOR UPDATE SKIP LOCKED`` hands each row to one of them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from delivery.stores.webhook_rows import claimed_from_row, endpoint_from_json, endpoint_json
from delivery.webhooks.model import Attempt, Claimed, Endpoint, Result, WebhookNotFoundError

if TYPE_CHECKING:
    from delivery.stores.postgres import PostgresStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_endpoints (id text PRIMARY KEY, status text NOT NULL, ordered boolean NOT NULL,
    body text NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_deliveries (endpoint_id text NOT NULL, recipient text NOT NULL, seq bigint NOT NULL,
    event_id text NOT NULL, status text NOT NULL, attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL, last_status integer, last_error text,
    updated_at double precision NOT NULL, PRIMARY KEY (endpoint_id, recipient, seq));
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_status ON webhook_deliveries (endpoint_id, status, updated_at);
CREATE TABLE IF NOT EXISTS webhook_attempts (endpoint_id text NOT NULL, at double precision NOT NULL,
    event_id text NOT NULL, recipient text NOT NULL, seq bigint NOT NULL, attempt integer NOT NULL, status integer,
    latency_ms double precision NOT NULL, response text NOT NULL, error text);
CREATE INDEX IF NOT EXISTS webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_by_endpoint
    ON webhook_deliveries (endpoint_id, status, next_attempt_at);
"""
_CLAIM = """
SELECT d.endpoint_id, d.recipient, d.seq, d.event_id, d.attempts, m.topic, m.schema_name, m.schema_id,
       m.conversation, m.event_json, m.arrived_at
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'enabled'
LEFT JOIN mailbox_messages m ON m.recipient = d.recipient AND m.seq = d.seq
WHERE d.endpoint_id = %s AND d.status = 'pending' AND d.next_attempt_at <= %s
  AND (NOT e.ordered OR d.seq = (SELECT min(x.seq) FROM webhook_deliveries x WHERE x.endpoint_id = d.endpoint_id
                                 AND x.recipient = d.recipient AND x.status = 'pending'))
ORDER BY d.next_attempt_at LIMIT %s
FOR UPDATE OF d SKIP LOCKED
"""

Connection = psycopg.AsyncConnection[Any]


async def enabled_endpoints(conn: Connection) -> psycopg.AsyncCursor[Any]:
    """The enabled endpoints' rows, for ``fan_out`` (a cursor, so a pipelined write fetches it later)."""
    return await conn.execute("SELECT body FROM webhook_endpoints WHERE status = 'enabled'")


async def fan_out(conn: Connection, endpoint_rows: Sequence[Any], new: Sequence[tuple[str, int, str, str]]) -> int:
    """In the mailbox write's transaction: a delivery row per new message (recipient, seq, event_id, topic) and
    matching enabled endpoint (``endpoint_rows`` from ``enabled_endpoints``)."""
    endpoints = [endpoint_from_json(body) for (body,) in endpoint_rows]
    deliveries = [(e.id, r, s, i) for r, s, i, t in new for e in endpoints if e.matches(r, t)]
    if deliveries:
        now = time.time()
        columns = list(zip(*deliveries, strict=True))
        await conn.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, recipient, seq, event_id, status, next_attempt_at, "
            "updated_at)"
            " SELECT e, r, s, i, 'pending', %s, %s FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[])"
            " AS v(e, r, s, i) ON CONFLICT DO NOTHING",
            [now, now, *map(list, columns)],
        )
    return len(deliveries)


class PostgresWebhooks:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        async with self._store.connection() as conn:
            await conn.execute(
                "INSERT INTO webhook_endpoints VALUES (%s, %s, %s, %s)",
                [endpoint.id, endpoint.status, endpoint.ordered, endpoint_json(endpoint)],
            )

    async def endpoint(self, endpoint_id: str) -> Endpoint:
        async with self._store.connection() as conn:
            row = await (
                await conn.execute("SELECT body FROM webhook_endpoints WHERE id = %s", [endpoint_id])
            ).fetchone()
        if row is None:
            raise WebhookNotFoundError(endpoint_id)
        return endpoint_from_json(row[0])

    async def endpoints(self) -> list[Endpoint]:
        async with self._store.connection() as conn:
            rows = await (await conn.execute("SELECT body FROM webhook_endpoints")).fetchall()
        return sorted((endpoint_from_json(b) for (b,) in rows), key=lambda e: e.created_at)

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        async with self._store.connection() as conn:
            cursor = await conn.execute(
                "UPDATE webhook_endpoints SET status = %s, ordered = %s, body = %s WHERE id = %s",
                [endpoint.status, endpoint.ordered, endpoint_json(endpoint), endpoint.id],
            )
        if not cursor.rowcount:
            raise WebhookNotFoundError(endpoint.id)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        async with self._store.connection() as conn, conn.transaction():
            cursor = await conn.execute("DELETE FROM webhook_endpoints WHERE id = %s", [endpoint_id])
            if not cursor.rowcount:
                raise WebhookNotFoundError(endpoint_id)
            await conn.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = %s", [endpoint_id])
            await conn.execute("DELETE FROM webhook_attempts WHERE endpoint_id = %s", [endpoint_id])

    async def claim(self, now: float, capacity: Mapping[str, int], lease_s: float) -> list[Claimed]:
        epoch = self._store.epoch
        claimed: list[Claimed] = []
        async with self._store.connection() as conn, conn.transaction():
            for endpoint_id, free in capacity.items():
                if free > 0:
                    rows = await (await conn.execute(_CLAIM, [endpoint_id, now, free])).fetchall()
                    claimed += [claimed_from_row(row, epoch) for row in rows]
            if claimed:
                await conn.execute(
                    "UPDATE webhook_deliveries d SET next_attempt_at = %s FROM unnest(%s::text[], %s::text[], "
                    "%s::bigint[]) AS v(e, r, s) WHERE d.endpoint_id = v.e AND d.recipient = v.r AND d.seq = v.s",
                    [
                        now + lease_s,
                        [c.endpoint_id for c in claimed],
                        [c.recipient for c in claimed],
                        [c.seq for c in claimed],
                    ],
                )
        return claimed

    async def record(self, results: Sequence[Result], disable_after_s: float) -> list[str]:
        disabled = []
        async with self._store.connection() as conn, conn.transaction():
            for r in results:
                c, a = r.claimed, r.attempt
                status = {"succeeded": "succeeded", "failed": "failed"}.get(r.verdict, "pending")
                await conn.execute(
                    "UPDATE webhook_deliveries SET status = %s, attempts = attempts + 1, next_attempt_at = %s, "
                    "last_status = %s, last_error = %s, updated_at = %s WHERE endpoint_id = %s AND recipient = %s "
                    "AND seq = %s",
                    [status, r.next_attempt_at or a.at, a.status, a.error, a.at, c.endpoint_id, c.recipient, c.seq],
                )
                await _insert_attempt(conn, a)
            for endpoint_id in sorted({r.claimed.endpoint_id for r in results}):
                row = await (
                    await conn.execute("SELECT body FROM webhook_endpoints WHERE id = %s FOR UPDATE", [endpoint_id])
                ).fetchone()
                if row is None:
                    continue
                endpoint = endpoint_from_json(row[0])
                updated = endpoint.after([r for r in results if r.claimed.endpoint_id == endpoint_id], disable_after_s)
                if updated != endpoint:
                    await conn.execute(
                        "UPDATE webhook_endpoints SET status = %s, body = %s WHERE id = %s",
                        [updated.status, endpoint_json(updated), endpoint_id],
                    )
                    if updated.status == "disabled" and endpoint.status == "enabled":
                        disabled.append(endpoint_id)
        return disabled

    async def recover(self, endpoint_id: str, since: float) -> int:
        await self.endpoint(endpoint_id)
        async with self._store.connection() as conn:
            cursor = await conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                "next_attempt_at = 0 WHERE endpoint_id = %s AND status = 'failed' AND "
                "updated_at >= %s",
                [endpoint_id, since],
            )
        return cursor.rowcount

    async def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        async with self._store.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT endpoint_id, event_id, recipient, seq, attempt, at, status, latency_ms, response, error "
                    "FROM "
                    "webhook_attempts WHERE endpoint_id = %s ORDER BY at DESC LIMIT %s",
                    [endpoint_id, limit],
                )
            ).fetchall()
        return [Attempt(*row) for row in rows]

    async def backlog(self) -> dict[str, int]:
        async with self._store.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT endpoint_id, count(*) FROM webhook_deliveries WHERE status = 'pending' GROUP BY endpoint_id"
                )
            ).fetchall()
        return dict(rows)

    async def log_attempt(self, attempt: Attempt) -> None:
        async with self._store.connection() as conn:
            await _insert_attempt(conn, attempt)

    async def prune_attempts(self, before: float) -> int:
        async with self._store.connection() as conn:
            cursor = await conn.execute("DELETE FROM webhook_attempts WHERE at < %s", [before])
        return cursor.rowcount


async def _insert_attempt(conn: Connection, a: Attempt) -> None:
    await conn.execute(
        "INSERT INTO webhook_attempts VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [a.endpoint_id, a.at, a.event_id, a.recipient, a.seq, a.attempt, a.status, a.latency_ms, a.response, a.error],
    )
