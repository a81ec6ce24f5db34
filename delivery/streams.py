"""Following a mailbox live: what an SSE or WebSocket stream sends, from a cursor on.

A stream first replays what the mailbox holds after the client's cursor, then waits for new messages (a wake-up:
from this node's writer, or from the store for other nodes' writes) and sends them as they come, in cursor order,
each exactly once.
A stream that is up to date sends what this node's writes hand over (delivery.wakeups) and reads the store
otherwise, so nothing is buffered per client beyond one write's messages: a client that stops reading is cut off
by the send timeout and resumes later from its cursor, without holding up anyone else.

A stream ends with a Farewell that tells the client when to reconnect: when the node shuts down, when the store
is unavailable (a 5xx would make browsers give up for good), when the client's token expires, and after
``stream_max_s`` (so long-lived streams spread over the nodes again).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from delivery.mailbox import Cursor, Message, StoreUnavailableError
from delivery.stores import MailboxStore
from delivery.wakeups import Wakeups
from hubstream.settings import DeliverySettings

_PAGE = 200
# A stream re-reads at least this often (times 0.5-1.5, so streams opened together do not read together), even
# if every wake-up were lost; with PostgreSQL the store's own fallback finds lost notifications within seconds.
_SAFETY_POLL_S = 60.0


@dataclass(frozen=True)
class Gap:
    """Messages right after the client's cursor are gone; ``resume`` is where the stream goes on."""

    after: Cursor | None
    resume: Cursor | None


@dataclass(frozen=True)
class Farewell:
    reason: str  # shutdown, store-unavailable, token-expired, max-lifetime
    retry_ms: int


StreamItem = Message | Gap | Farewell


@dataclass
class Follow:
    store: MailboxStore
    wakeups: Wakeups
    settings: DeliverySettings
    closing: asyncio.Event  # set when the node shuts down

    def retry_ms(self) -> int:
        """The reconnect hint, with jitter so clients of a node that went away do not all return at once."""
        return int(self.settings.retry_ms * random.uniform(0.5, 1.5))

    async def items(
        self, recipient: str, after: Cursor | None, conversation: str | None, expires_at: float
    ) -> AsyncIterator[StreamItem]:
        cursor = after
        ends_at = min(expires_at, time.time() + self.settings.stream_max_s)
        must_read = True
        with self.wakeups.subscribe(recipient) as waiter:
            while True:
                if self.closing.is_set():
                    yield Farewell("shutdown", self.retry_ms())
                    return
                if time.time() >= ends_at:
                    yield Farewell("token-expired" if ends_at == expires_at else "max-lifetime", self.retry_ms())
                    return
                if must_read:
                    try:
                        page = await self.store.read(recipient, cursor, _PAGE, conversation)
                    except StoreUnavailableError:
                        yield Farewell("store-unavailable", self.retry_ms())
                        return
                    if page.gap:
                        yield Gap(cursor, page.messages[0].cursor if page.messages else page.next)
                    for message in page.messages:
                        yield message
                    cursor = page.next or cursor
                    if len(page.messages) == _PAGE:
                        continue
                # woken by a write, by the node closing (it wakes everyone), or at the latest by the safety poll
                safety_s = _SAFETY_POLL_S * random.uniform(0.5, 1.5)
                woken = await waiter.wait(max(0.0, min(safety_s, ends_at - time.time())))
                handed = _following(cursor, waiter.take()) if woken and conversation is None else None
                must_read = handed is None
                for message in handed or ():
                    yield message
                    cursor = message.cursor


def _following(cursor: Cursor | None, messages: list[Message] | None) -> list[Message] | None:
    """The handed-over messages that come right after ``cursor``, when they continue it without a hole (those the
    last read already sent are skipped); None when the store must be read instead."""
    if messages is None:
        return None
    position = 0 if cursor is None else cursor.seq
    fresh = []
    for message in messages:
        if cursor is not None and message.cursor.epoch != cursor.epoch:
            return None
        if message.cursor.seq <= position:
            continue
        if message.cursor.seq != position + 1:
            return None  # another writer's message in between, or one this stream has not seen
        fresh.append(message)
        position += 1
    return fresh
