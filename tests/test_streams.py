"""Following a mailbox (delivery.streams): a stream that is up to date sends what a write hands over, without
reading the store; anything it cannot prove continuous (another writer's message in between, too many held)
makes it read, so nothing is lost, repeated or reordered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from delivery.mailbox import Cursor, Message, Page
from delivery.stores import MailboxStore, open_store
from delivery.streams import Follow, StreamItem
from delivery.wakeups import _HELD_MAX, Waiter, Wakeups
from hubstream.settings import DeliverySettings
from tests.fixtures.stores import DEFAULT_RETENTION, StoreFactory, delivery

pytestmark = pytest.mark.asyncio


class CountingReads:
    """A store whose reads are counted."""

    def __init__(self, store: MailboxStore) -> None:
        self.store = store
        self.reads = 0

    async def read(self, recipient: str, after: Cursor | None, limit: int, conversation: str | None = None) -> Page:
        self.reads += 1
        return await self.store.read(recipient, after, limit, conversation)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def follow(store: Any, wakeups: Wakeups) -> Follow:
    return Follow(store, wakeups, DeliverySettings(), asyncio.Event())


async def collect(items: AsyncIterator[StreamItem], count: int) -> list[Message]:
    got: list[Message] = []
    async for item in items:
        assert isinstance(item, Message), item
        got.append(item)
        if len(got) == count:
            return got
    raise AssertionError(f"the stream ended after {len(got)} messages")


async def written(store: MailboxStore, recipient: str, first: int, count: int) -> None:
    await store.write([delivery(recipient, f"e{n}", offset=n) for n in range(first, first + count)])


async def test_an_up_to_date_stream_sends_writes_without_reading_the_store(
    new_store: StoreFactory, wakeups: Wakeups
) -> None:
    store = await new_store()
    await written(store, "u1", 0, 5)
    counting = CountingReads(store)
    stream = asyncio.create_task(collect(follow(counting, wakeups).items("u1", None, None, time.time() + 60), 35))
    await _until(lambda: wakeups.watched("u1") and counting.reads == 1)
    for batch in range(3):
        await written(store, "u1", 5 + batch * 10, 10)
    got = await asyncio.wait_for(stream, 10)
    assert [m.cursor.seq for m in got] == list(range(1, 36))
    assert [m.event_id for m in got] == [f"e{n}" for n in range(35)]
    assert counting.reads == 1  # the first page; the three writes came with their messages


async def test_another_writers_message_in_between_makes_the_stream_read(
    store_url: Callable[[], str], tmp_path: Path
) -> None:
    url = store_url()
    ours, theirs = Wakeups(), Wakeups()  # the other writer (another node) wakes nobody here directly
    store = open_store(url, retention=DEFAULT_RETENTION, wakeups=ours, state_dir=tmp_path)
    other = open_store(url, retention=DEFAULT_RETENTION, wakeups=theirs, state_dir=tmp_path)
    await store.open()
    await other.open()
    try:
        counting = CountingReads(store)
        stream = asyncio.create_task(collect(follow(counting, ours).items("u1", None, None, time.time() + 60), 6))
        await _until(lambda: ours.watched("u1") and counting.reads == 1)
        await written(store, "u1", 0, 2)  # seq 1-2, handed over
        await written(other, "u1", 2, 2)  # seq 3-4: no hand-over here
        await written(store, "u1", 4, 2)  # seq 5-6 do not continue seq 2: the stream reads 3-6
        got = await asyncio.wait_for(stream, 10)
    finally:
        await other.close()
        await store.close()
    assert [m.cursor.seq for m in got] == [1, 2, 3, 4, 5, 6]
    assert [m.event_id for m in got] == [f"e{n}" for n in range(6)]
    assert counting.reads >= 2


async def test_a_waiter_holds_a_bounded_number_of_messages_then_asks_for_a_read() -> None:
    message = Message("u1", Cursor("00000000", 1), "e", "t", "s", "0" * 32, None, "{}", 0)
    waiter = Waiter()
    waiter.wake([message] * (_HELD_MAX - 1))
    assert waiter.take() == [message] * (_HELD_MAX - 1)
    waiter.wake([message] * _HELD_MAX)
    waiter.wake([message])
    assert waiter.take() is None  # over the bound: dropped, the stream reads
    waiter.wake([message])
    waiter.wake()  # a hint without messages (another node's notification)
    assert waiter.take() is None
    assert waiter.take() == []


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
