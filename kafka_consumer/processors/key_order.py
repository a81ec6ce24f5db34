"""Key-ordered concurrency for one partition: up to N records in flight, never two with the same key.

Records are released in offset order, except that a record waits while an earlier record with its key is
waiting or running; records of other keys may pass it. So order holds per key, and with N = 1 per partition.
Records without a key count as one key: their relative order is kept too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

_NO_KEY = object()


class KeyOrderedQueue(Generic[T]):
    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._waiting: deque[tuple[Hashable, T]] = deque()
        self._running_keys: set[Hashable] = set()

    def __len__(self) -> int:
        """Records waiting (not running)."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running_keys)

    def push(self, key: bytes | None, item: T) -> None:
        self._waiting.append((_NO_KEY if key is None else key, item))

    def take(self) -> list[T]:
        """The records that may start now; they count as running until done() is called with their key."""
        started: list[T] = []
        if not self._waiting or self.running >= self.concurrency:
            return started
        if self.concurrency == 1:
            key, item = self._waiting.popleft()
            self._running_keys.add(key)
            return [item]
        blocked: set[Hashable] = set(self._running_keys)
        kept: deque[tuple[Hashable, T]] = deque()
        while self._waiting and self.running < self.concurrency:
            key, item = self._waiting.popleft()
            if key in blocked:
                kept.append((key, item))
                continue
            blocked.add(key)
            self._running_keys.add(key)
            started.append(item)
        kept.extend(self._waiting)
        self._waiting = kept
        return started

    def done(self, key: bytes | None) -> None:
        self._running_keys.discard(_NO_KEY if key is None else key)

    def clear(self) -> int:
        """Drop every waiting record (a revoked partition); returns how many."""
        dropped = len(self._waiting)
        self._waiting.clear()
        return dropped
