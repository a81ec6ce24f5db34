"""The mailbox store contract: every store (SQLite, PostgreSQL) passes the same tests, over a real database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from delivery.mailbox import AckAheadError, Cursor, Delivery
from delivery.stores import MailboxStore, Retention, open_store
from delivery.wakeups import Wakeups
from tests.fixtures.stores import DEFAULT_RETENTION, StoreFactory, delivery

pytestmark = pytest.mark.asyncio


def deliveries(recipient: str, count: int, *, start: int = 0, conversation: str = "c1") -> list[Delivery]:
    return [
        delivery(recipient, f"{recipient}-e{i}", offset=i, conversation=conversation)
        for i in range(start, start + count)
    ]


async def test_messages_come_back_in_order_with_increasing_cursors(new_store: StoreFactory) -> None:
    store = await new_store()
    assert await store.write(deliveries("u1", 5)) == 5
    page = await store.read("u1", None, 100)
    assert [m.event_id for m in page.messages] == [f"u1-e{i}" for i in range(5)]
    cursors = [m.cursor for m in page.messages]
    assert cursors == sorted(cursors) and len(set(cursors)) == 5
    assert all(c.epoch == store.epoch for c in cursors)
    assert page.next == cursors[-1] and page.gap is False
    assert page.messages[0].event_json == '{"n": 0}'


async def test_paging_after_a_cursor_returns_the_rest_exactly_once(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.write(deliveries("u1", 25))
    seen, after = [], None
    while True:
        page = await store.read("u1", after, 10)
        if not page.messages:
            break
        seen += [m.event_id for m in page.messages]
        after = page.next
    assert seen == [f"u1-e{i}" for i in range(25)]
    assert (await store.read("u1", after, 10)).next == after  # nothing new: the same cursor to wait on


async def test_a_write_is_idempotent_per_recipient_and_event(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.write(deliveries("u1", 3))
    assert await store.write(deliveries("u1", 4)) == 1  # e0..e2 again, e3 new
    assert await store.write(deliveries("u1", 4)) == 0
    page = await store.read("u1", None, 100)
    assert [m.event_id for m in page.messages] == ["u1-e0", "u1-e1", "u1-e2", "u1-e3"]
    assert [m.cursor.seq for m in page.messages] == [1, 2, 3, 4]  # a skipped duplicate burns no cursor


async def test_one_event_for_several_recipients_lands_in_each_mailbox(new_store: StoreFactory) -> None:
    store = await new_store()
    fan_out = [delivery(r, "minutes-1", offset=7) for r in ("ann", "bob", "cyd")]
    assert await store.write(fan_out) == 3
    for recipient in ("ann", "bob", "cyd"):
        assert [m.event_id for m in (await store.read(recipient, None, 10)).messages] == ["minutes-1"]
    assert (await store.read("dan", None, 10)).messages == []


async def test_the_conversation_filter_keeps_one_chat(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.write(deliveries("u1", 3, conversation="a") + deliveries("u1", 2, start=3, conversation="b"))
    page = await store.read("u1", None, 10, conversation="b")
    assert [m.event_id for m in page.messages] == ["u1-e3", "u1-e4"]


async def test_ack_is_idempotent_monotonic_and_refuses_cursors_ahead(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.write(deliveries("u1", 4))
    cursors = [m.cursor for m in (await store.read("u1", None, 10)).messages]
    state = await store.ack("u1", cursors[2])
    assert state.acked == cursors[2] and state.last == cursors[3] and state.count == 4
    assert (await store.ack("u1", cursors[2])).acked == cursors[2]
    assert (await store.ack("u1", cursors[0])).acked == cursors[2]  # never backwards
    with pytest.raises(AckAheadError) as ahead:
        await store.ack("u1", Cursor(store.epoch, 99))
    assert ahead.value.status == 409
    with pytest.raises(AckAheadError):
        await store.ack("u1", Cursor("00000000" if store.epoch != "00000000" else "00000001", 1))
    with pytest.raises(AckAheadError):
        await store.ack("nobody", Cursor(store.epoch, 1))


async def test_a_cursor_older_than_what_is_kept_gets_an_explicit_gap(new_store: StoreFactory) -> None:
    store = await new_store(Retention(max_messages=5, ttl_s=3600, acked_grace_s=3600))
    await store.write(deliveries("u1", 3))
    first = (await store.read("u1", None, 1)).messages[0].cursor
    await store.write(deliveries("u1", 5, start=3))  # 8 written, the 3 oldest dropped by the cap
    state = await store.state("u1")
    assert state.count == 5 and state.first == Cursor(store.epoch, 4)
    page = await store.read("u1", first, 10)
    assert page.gap is True and [m.cursor.seq for m in page.messages] == [4, 5, 6, 7, 8]
    kept = await store.read("u1", Cursor(store.epoch, 3), 10)
    assert kept.gap is False and len(kept.messages) == 5


async def test_a_cursor_from_another_epoch_is_a_gap(new_store: StoreFactory) -> None:
    store = await new_store()
    await store.write(deliveries("u1", 2))
    other = "00000000" if store.epoch != "00000000" else "00000001"
    page = await store.read("u1", Cursor(other, 1), 10)
    assert page.gap is True and len(page.messages) == 2 and page.next == page.messages[-1].cursor


async def test_expired_messages_are_pruned_and_leave_a_gap(new_store: StoreFactory) -> None:
    store = await new_store(Retention(max_messages=100, ttl_s=0.05, acked_grace_s=3600))
    await store.write(deliveries("u1", 3))
    old = (await store.read("u1", None, 1)).messages[0].cursor
    await asyncio.sleep(0.1)
    await store.write(deliveries("u1", 1, start=3))
    assert await store.prune() == 3
    page = await store.read("u1", old, 10)
    assert page.gap is True and [m.event_id for m in page.messages] == ["u1-e3"]


async def test_acked_messages_stay_for_the_grace_period(new_store: StoreFactory) -> None:
    store = await new_store(Retention(max_messages=100, ttl_s=3600, acked_grace_s=3600))
    await store.write(deliveries("u1", 3))
    cursors = [m.cursor for m in (await store.read("u1", None, 10)).messages]
    await store.ack("u1", cursors[1])
    assert await store.prune() == 0  # another device can still read them
    assert len((await store.read("u1", None, 10)).messages) == 3
    short = await new_store(Retention(max_messages=100, ttl_s=3600, acked_grace_s=0.0))
    await short.write(deliveries("u2", 3))
    await short.ack("u2", (await short.read("u2", None, 10)).messages[1].cursor)
    await asyncio.sleep(0.01)
    assert await short.prune() == 2
    page = await short.read("u2", None, 10)
    assert page.gap is False and [m.event_id for m in page.messages] == ["u2-e2"]


async def test_a_reopened_store_keeps_its_messages_and_epoch(reopen_store: Callable[[], MailboxStore]) -> None:
    store = reopen_store()
    await store.open()
    await store.write(deliveries("u1", 2))
    epoch = store.epoch
    await store.close()
    again = reopen_store()
    await again.open()
    try:
        assert again.epoch == epoch
        assert [m.event_id for m in (await again.read("u1", None, 10)).messages] == ["u1-e0", "u1-e1"]
    finally:
        await again.close()


async def test_concurrent_writers_of_one_recipient_never_let_a_reader_skip(new_store: StoreFactory) -> None:
    """Cursors follow commit order: a reader polling after its last cursor sees every message exactly once."""
    writer_a, writer_b = await new_store(), await new_store(same_database=True)
    done = asyncio.Event()
    seen: list[str] = []

    async def read_along() -> None:
        after = None
        while True:
            finished = done.is_set()
            page = await writer_a.read("u1", after, 50)
            seen.extend(m.event_id for m in page.messages)
            after = page.next
            if finished and not page.messages:
                return

    async def write(store: MailboxStore, name: str) -> None:
        for batch in range(20):
            await store.write([delivery("u1", f"{name}-{batch}-{i}", offset=i) for i in range(5)])

    reader = asyncio.create_task(read_along())
    await asyncio.gather(write(writer_a, "a"), write(writer_b, "b"))
    done.set()
    await reader
    assert len(seen) == 200 and len(set(seen)) == 200
    page = await writer_a.read("u1", None, 1000)
    assert [m.cursor.seq for m in page.messages] == list(range(1, 201))


async def test_a_write_wakes_the_recipients_waiters(new_store: StoreFactory, wakeups: Wakeups) -> None:
    store = await new_store()
    with wakeups.subscribe("u1") as waiter, wakeups.subscribe("u2") as other:
        await store.write(deliveries("u1", 1))
        assert await waiter.wait(2.0) is True
        assert await other.wait(0.05) is False


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_message_keeps_its_trace_context(new_store: StoreFactory, wakeups: Wakeups) -> None:
    store = await new_store()
    traced = replace(delivery("u1", "e-traced"), trace=TRACEPARENT)
    with wakeups.subscribe("u1") as waiter:
        await store.write([traced, delivery("u1", "e-plain", offset=1)])
        handed = waiter.take()  # what a following stream on this node gets without reading
    assert handed is not None and [m.trace for m in handed] == [TRACEPARENT, None]
    page = await store.read("u1", None, 10)  # what a stream reads back, on any node, after any reconnect
    assert [m.trace for m in page.messages] == [TRACEPARENT, None]
    assert "trace" not in page.messages[0].as_json()  # kept for the stream's span, never sent to clients


async def test_a_sqlite_file_from_before_traces_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the messages table as it was created before the trace column
        db.execute(
            "CREATE TABLE messages (recipient TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,"
            " topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, schema_name TEXT NOT NULL,"
            " schema_id TEXT NOT NULL, conversation TEXT, event_json TEXT NOT NULL, arrived_at INTEGER NOT NULL,"
            " acked_at INTEGER, PRIMARY KEY (recipient, seq)) WITHOUT ROWID"
        )
    store = open_store(f"sqlite:{path}", retention=DEFAULT_RETENTION, wakeups=Wakeups(), state_dir=tmp_path)
    await store.open()
    try:
        await store.write([replace(delivery("u1", "e1"), trace=TRACEPARENT)])
        assert [m.trace for m in (await store.read("u1", None, 10)).messages] == [TRACEPARENT]
    finally:
        await store.close()
