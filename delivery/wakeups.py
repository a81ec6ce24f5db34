"""Streams waiting for a recipient's next message, woken when a write commits.

A wake-up is only a hint: a woken stream reads the store again, and every stream also re-reads after a short
timeout, so a lost hint (another node's notification that never arrived) costs at most that timeout. A stream
subscribes *before* it reads, so a write that commits between its read and its wait still wakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class Waiter:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
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
