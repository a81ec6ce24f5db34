"""The shared mailbox store: PostgreSQL, for several delivery nodes (psycopg 3, async, pooled).

Cursors follow commit order even with several writers: a write locks its recipients' rows (in sorted order, so two
writers never deadlock) and allocates their next seqs under that lock, which is held until commit; a reader that
asks for "after seq N" can therefore never miss a seq committed later. Every read is one statement, so the
retention floor and the rows it returns come from one snapshot.

Other nodes learn of a write through ``NOTIFY hubstream_mailbox`` with the recipients (one per write transaction,
never per row): each node keeps one listening connection (not through a transaction pooler such as PgBouncer,
which cannot LISTEN) and wakes its local streams. A notification is only a hint: after the listener reconnects
every stream is woken, and every ``wake_fallback_s`` the node also looks for recipients written since its last
look, so a lost notification costs at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from delivery.mailbox import AckAheadError, Cursor, Delivery, MailboxState, Message, Page, StoreUnavailableError
from delivery.stores import Retention, postgres_webhooks
from delivery.stores.postgres_webhooks import PostgresWebhooks
from delivery.wakeups import Wakeups

log = logging.getLogger(__name__)

CHANNEL = "hubstream_mailbox"
_NOTIFY_MAX_BYTES = 7900  # PostgreSQL's payload limit is 8000 bytes; beyond, every node wakes all its streams
_FALLBACK_OVERLAP_S = 10.0  # transactions commit out of start order: look back this far
_SCHEMA = """
SELECT pg_advisory_xact_lock(hashtext('hubstream-mailbox-schema'));
CREATE TABLE IF NOT EXISTS mailbox_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS mailbox_recipients (
    recipient text PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0, floor_seq bigint NOT NULL DEFAULT 0,
    acked_seq bigint NOT NULL DEFAULT 0, written_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS mailbox_recipients_by_write ON mailbox_recipients (written_at);
CREATE TABLE IF NOT EXISTS mailbox_messages (
    recipient text NOT NULL, seq bigint NOT NULL, event_id text NOT NULL, topic text NOT NULL,
    partition integer NOT NULL, "offset" bigint NOT NULL, schema_name text NOT NULL, schema_id text NOT NULL,
    conversation text, event_json text NOT NULL, arrived_at bigint NOT NULL, acked_at bigint,
    PRIMARY KEY (recipient, seq));
ALTER TABLE mailbox_messages ADD COLUMN IF NOT EXISTS trace text;
CREATE UNIQUE INDEX IF NOT EXISTS mailbox_messages_by_event ON mailbox_messages (recipient, event_id);
CREATE INDEX IF NOT EXISTS mailbox_messages_by_arrival ON mailbox_messages (arrived_at);
CREATE INDEX IF NOT EXISTS mailbox_messages_by_conversation ON mailbox_messages (recipient, conversation, seq);
"""
_READ = """
SELECT f.floor_seq, m.seq, m.event_id, m.topic, m.schema_name, m.schema_id, m.conversation, m.event_json,
       m.arrived_at, m.trace
FROM (SELECT coalesce((SELECT floor_seq FROM mailbox_recipients WHERE recipient = %(r)s), 0) AS floor_seq) f
LEFT JOIN LATERAL (
    SELECT * FROM mailbox_messages
    WHERE recipient = %(r)s AND seq > greatest(%(after)s, f.floor_seq) {conversation}
    ORDER BY seq LIMIT %(limit)s) m ON true
ORDER BY m.seq
"""


class PostgresStore:
    def __init__(
        self, url: str, *, retention: Retention, wakeups: Wakeups, fallback_s: float = 2.0, pool_size: int = 10
    ) -> None:
        self._url = url
        self._retention = retention
        self._wakeups = wakeups
        self._fallback_s = fallback_s
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, timeout=10, kwargs={"autocommit": True}
        )
        self._epoch = ""
        self._writer_id = secrets.token_hex(4)  # names this store's notifications, which its own listener skips
        self._tasks: list[asyncio.Task[None]] = []
        self.webhooks = PostgresWebhooks(self)
        self.new_deliveries = asyncio.Event()  # set when a write made webhook deliveries; the dispatcher waits on it

    @property
    def epoch(self) -> str:
        return self._epoch

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=15)
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(_SCHEMA)
                await conn.execute(postgres_webhooks.SCHEMA)
                await conn.execute(
                    "INSERT INTO mailbox_meta VALUES ('epoch', %s) ON CONFLICT DO NOTHING", [secrets.token_hex(4)]
                )
                row = await (await conn.execute("SELECT value FROM mailbox_meta WHERE key = 'epoch'")).fetchone()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            await self._pool.close()
            raise StoreUnavailableError(f"cannot reach the mailbox database: {exc}") from exc
        assert row is not None
        self._epoch = str(row[0])
        self._tasks = [asyncio.create_task(self._listen_forever()), asyncio.create_task(self._poll_forever())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pool.close()

    async def write(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        recipients = sorted({d.recipient for d in deliveries})
        # pipelined: the statements go out together and the transaction costs three round trips, not ten
        async with self.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(
                "INSERT INTO mailbox_recipients (recipient) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                [recipients],
            )
            locked = await conn.execute(
                "SELECT recipient, last_seq, floor_seq FROM mailbox_recipients WHERE "
                "recipient = ANY(%s) ORDER BY recipient FOR UPDATE",
                [recipients],
            )
            stored_rows = await conn.execute(
                "SELECT recipient, event_id FROM mailbox_messages WHERE (recipient, event_id) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                [[d.recipient for d in deliveries], [d.event_id for d in deliveries]],
            )
            endpoints = await postgres_webhooks.enabled_endpoints(conn)
            rows = await locked.fetchall()
            last = {r: seq for r, seq, _ in rows}
            floors = {r: floor for r, _, floor in rows}
            stored = set(await stored_rows.fetchall())
            new = []
            for d in deliveries:
                if (d.recipient, d.event_id) in stored:
                    continue  # redelivered after a crash, or a producer's retry: stored once
                stored.add((d.recipient, d.event_id))
                last[d.recipient] += 1
                new.append((d, last[d.recipient]))
            arrived_at = _now_ms()
            webhooks = 0
            if new:
                await self._insert(conn, new, arrived_at)
                touched = sorted({d.recipient for d, _ in new})
                await conn.execute(
                    "UPDATE mailbox_recipients r SET last_seq = v.last, written_at = clock_timestamp() "
                    "FROM unnest(%s::text[], %s::bigint[]) AS v(recipient, last) WHERE r.recipient = v.recipient",
                    [touched, [last[r] for r in touched]],
                )
                await self._cap(conn, {r: (last[r], floors[r]) for r in touched})
                webhooks = await postgres_webhooks.fan_out(
                    conn, await endpoints.fetchall(), [(d.recipient, seq, d.event_id, d.topic) for d, seq in new]
                )
                payload = ",".join(touched)
                payload = payload if len(payload.encode()) <= _NOTIFY_MAX_BYTES else "*"
                await conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{self._writer_id}|{payload}"])
        if new:
            watched = [(d, seq) for d, seq in new if self._wakeups.watched(d.recipient)]
            self._wakeups.deliver([d.stored_as(Cursor(self._epoch, seq), arrived_at) for d, seq in watched])
        if webhooks:
            self.new_deliveries.set()
        return len(new)

    async def read(self, recipient: str, after: Cursor | None, limit: int, conversation: str | None = None) -> Page:
        after_seq = -1 if after is None or after.epoch != self._epoch else after.seq
        query = _READ.format(conversation="AND conversation = %(c)s" if conversation is not None else "")
        async with self.connection() as conn:
            rows = await (
                await conn.execute(query, {"r": recipient, "after": after_seq, "limit": limit, "c": conversation})
            ).fetchall()
        floor = rows[0][0]
        gap = after is not None and (after.epoch != self._epoch or after.seq < floor)
        messages = [
            Message(
                recipient,
                Cursor(self._epoch, seq),
                event_id,
                topic,
                schema_name,
                schema_id,
                conv,
                event_json,
                arrived_at,
                trace,
            )
            for _, seq, event_id, topic, schema_name, schema_id, conv, event_json, arrived_at, trace in rows
            if seq is not None
        ]
        start = max(after_seq, floor)
        next_cursor = messages[-1].cursor if messages else Cursor(self._epoch, start) if start > 0 or after else None
        return Page(messages, next_cursor, gap)

    async def ack(self, recipient: str, up_to: Cursor) -> MailboxState:
        async with self.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT last_seq, acked_seq FROM mailbox_recipients WHERE recipient = %s FOR UPDATE", [recipient]
                )
            ).fetchone()
            last, acked = row or (0, 0)
            if up_to.epoch != self._epoch or up_to.seq > last or last == 0:
                raise AckAheadError(recipient, up_to, self._cursor(last or None))
            if up_to.seq > acked:
                await conn.execute(
                    "UPDATE mailbox_recipients SET acked_seq = %s WHERE recipient = %s", [up_to.seq, recipient]
                )
                await conn.execute(
                    "UPDATE mailbox_messages SET acked_at = %s WHERE recipient = %s AND seq <= %s AND acked_at IS NULL",
                    [_now_ms(), recipient, up_to.seq],
                )
            return await self._state(conn, recipient)

    async def state(self, recipient: str) -> MailboxState:
        async with self.connection() as conn:
            return await self._state(conn, recipient)

    async def prune(self) -> int:
        now = _now_ms()
        expired = now - int(self._retention.ttl_s * 1000)
        acked_before = now - int(self._retention.acked_grace_s * 1000)
        async with self.connection() as conn, conn.transaction():
            gone = await (
                await conn.execute(
                    "SELECT recipient, max(seq) FROM mailbox_messages WHERE arrived_at < %s "
                    "OR acked_at < %s GROUP BY recipient ORDER BY recipient",
                    [expired, acked_before],
                )
            ).fetchall()
            if not gone:
                return 0
            # lock the recipients first, in order, as writers do: a writer capping the same mailbox cannot deadlock
            await conn.execute(
                "SELECT 1 FROM mailbox_recipients WHERE recipient = ANY(%s) ORDER BY recipient FOR UPDATE",
                [[r for r, _ in gone]],
            )
            names, seqs = [r for r, _ in gone], [s for _, s in gone]
            cursor = await conn.execute(
                "DELETE FROM mailbox_messages m USING unnest(%s::text[], %s::bigint[]) "
                "AS g(recipient, seq) WHERE m.recipient = g.recipient AND m.seq <= g.seq",
                [names, seqs],
            )
            await conn.execute(
                "UPDATE mailbox_recipients r SET floor_seq = greatest(r.floor_seq, g.seq) FROM "
                "unnest(%s::text[], %s::bigint[]) AS g(recipient, seq) WHERE r.recipient = g.recipient",
                [names, seqs],
            )
            return cursor.rowcount

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.execute("SELECT 1")

    # --- helpers ----------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailableError(f"the mailbox database failed: {exc}") from exc

    async def _insert(self, conn: psycopg.AsyncConnection[Any], new: list[tuple[Delivery, int]], now: int) -> None:
        columns: list[list[Any]] = [[] for _ in range(11)]
        for d, seq in new:
            for column, value in zip(
                columns,
                (
                    d.recipient,
                    seq,
                    d.event_id,
                    d.topic,
                    d.partition,
                    d.offset,
                    d.schema_name,
                    d.schema_id,
                    d.conversation,
                    d.event_json,
                    d.trace,
                ),
                strict=True,
            ):
                column.append(value)
        await conn.execute(
            'INSERT INTO mailbox_messages (recipient, seq, event_id, topic, partition, "offset", schema_name, '
            "schema_id, conversation, event_json, arrived_at, trace) SELECT r, s, e, t, p, o, sn, si, c, j, %s, tr "
            "FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::int[], %s::bigint[], %s::text[], "
            "%s::text[], %s::text[], %s::text[], %s::text[]) AS v(r, s, e, t, p, o, sn, si, c, j, tr)",
            [now, *columns],
        )

    async def _cap(self, conn: psycopg.AsyncConnection[Any], written: dict[str, tuple[int, int]]) -> None:
        keep = self._retention.max_messages
        over = {r: last - keep for r, (last, floor) in written.items() if last - floor > keep}
        if not over:
            return
        names, floors = list(over), list(over.values())
        await conn.execute(
            "DELETE FROM mailbox_messages m USING unnest(%s::text[], %s::bigint[]) AS g(recipient, seq) "
            "WHERE m.recipient = g.recipient AND m.seq <= g.seq",
            [names, floors],
        )
        await conn.execute(
            "UPDATE mailbox_recipients r SET floor_seq = g.seq FROM unnest(%s::text[], %s::bigint[]) "
            "AS g(recipient, seq) WHERE r.recipient = g.recipient",
            [names, floors],
        )

    async def _state(self, conn: psycopg.AsyncConnection[Any], recipient: str) -> MailboxState:
        row = await (
            await conn.execute(
                "SELECT (SELECT last_seq FROM mailbox_recipients WHERE recipient = %(r)s), "
                "(SELECT acked_seq FROM mailbox_recipients WHERE recipient = %(r)s), count(*), min(seq) "
                "FROM mailbox_messages WHERE recipient = %(r)s",
                {"r": recipient},
            )
        ).fetchone()
        assert row is not None
        last, acked, count, first = row
        return MailboxState(
            recipient, self._epoch, count, self._cursor(first), self._cursor(last or None), self._cursor(acked or None)
        )

    def _cursor(self, seq: int | None) -> Cursor | None:
        return None if seq is None else Cursor(self._epoch, seq)

    async def _listen_forever(self) -> None:
        """LISTEN on a connection of its own; after any break, reconnect and wake every stream (it may have missed
        notifications meanwhile)."""
        backoff = 0.2
        reconnecting = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if reconnecting:
                        self._wakeups.notify_everyone()
                    reconnecting, backoff = True, 0.2
                    async for notice in conn.notifies():
                        writer, _, recipients = notice.payload.rpartition("|")
                        if writer == self._writer_id:
                            continue  # this store's own write: its streams got the messages already
                        if recipients == "*":
                            self._wakeups.notify_everyone()
                        else:
                            self._wakeups.notify(recipients.split(","))
            except psycopg.Error as exc:
                reconnecting = True
                log.warning("mailbox notifications interrupted (%s); reconnecting in %.1f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(5.0, backoff * 2)

    async def _poll_forever(self) -> None:
        """The fallback for lost notifications: wake recipients written since the last look (with an overlap,
        because a transaction's timestamp is taken before it commits)."""
        seen: dict[str, float] = {}
        since = time.time()
        while True:
            await asyncio.sleep(self._fallback_s)
            try:
                async with self.connection() as conn:
                    rows = await (
                        await conn.execute(
                            "SELECT recipient, extract(epoch FROM written_at) FROM mailbox_recipients "
                            "WHERE written_at > "
                            "to_timestamp(%s)",
                            [since - _FALLBACK_OVERLAP_S],
                        )
                    ).fetchall()
            except StoreUnavailableError:
                continue
            fresh = [r for r, at in rows if seen.get(r) != float(at)]
            seen = {r: float(at) for r, at in rows}
            if rows:
                since = max(float(at) for _, at in rows)
            self._wakeups.notify(fresh)


def _now_ms() -> int:
    return int(time.time() * 1000)
