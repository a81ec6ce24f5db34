"""Streams waiting for a recipient's next message, woken when a write commits.

A write on this node hands its new messages to the waiting streams (``deliver``), so a stream that is up to date
sends them without reading the store again: one write costs one read per woken stream otherwise. Any other wake-up
(another node's notification, a lost one found by the store's fallback) is only a hint: the woken stream reads the
store, and every stream also re-reads after a short timeout, so a lost hint costs at most that timeout. A stream
subscribes *before* it reads, so a write that commits between its read and its wait still wakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from delivery.mailbox import Message

_HELD_MAX = 1000  # messages a waiter keeps for its stream; beyond, the stream reads the store instead


class Waiter:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._held: list[Message] = []
        self._complete = True  # every wake-up since the last take came with its messages

    def wake(self, messages: Sequence[Message] = ()) -> None:
        if not messages or len(self._held) + len(messages) > _HELD_MAX:
            self._complete = False
            self._held.clear()
        elif self._complete:
            self._held.extend(messages)
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True when woken (since the last wait), False after the timeout."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True

    def take(self) -> list[Message] | None:
        """The messages the wake-ups since the last take brought, in commit order; None when one came without
        them (the store must be read)."""
        held, complete = self._held, self._complete
        self._held, self._complete = [], True
        return held if complete else None


class Wakeups:
    """Must be used from one event loop; ``notify_threadsafe`` is for other threads."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[Waiter]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextmanager
    def subscribe(self, recipient: str) -> Iterator[Waiter]:
        waiter = Waiter()
        self._waiters.setdefault(recipient, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(recipient)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[recipient]

    def watched(self, recipient: str) -> bool:
        """Whether a stream here follows ``recipient`` (a writer builds messages to hand over only then)."""
        return recipient in self._waiters

    def deliver(self, messages: Sequence[Message]) -> None:
        """A committed write's new messages, in commit order: each waiting stream of their recipients gets them."""
        by_recipient: dict[str, list[Message]] = {}
        for message in messages:
            by_recipient.setdefault(message.recipient, []).append(message)
        for recipient, written in by_recipient.items():
            for waiter in self._waiters.get(recipient, ()):
                waiter.wake(written)

    def notify(self, recipients: Iterable[str]) -> None:
        for recipient in recipients:
            for waiter in self._waiters.get(recipient, ()):
                waiter.wake()

    def notify_everyone(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()

    def notify_threadsafe(self, recipients: Iterable[str]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.notify, list(recipients))

    @property
    def streams(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())
