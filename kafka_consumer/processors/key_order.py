"""Key-ordered concurrency for one partition: up to N records in flight, never two with the same key.

Records are released in offset order, except that a record waits while an earlier record with its key is
waiting or running; records of other keys may pass it. So order holds per key, and with N = 1 per partition.
Records without a key count as one key: their relative order is kept too.

Every operation costs O(log keys), not O(records waiting): each key's records wait in a deque of their own,
and the keys that could start now are in a heap by their first record's place in the partition. With N = 1
everything runs in offset order, so one deque is all it takes.

A caller running a record of key K may also run K's next records itself, one after the other, in the slot it
holds (``take_more``): they would have waited for K anyway (with N = 1, every next record would have).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

_NO_KEY: Hashable = object()


class KeyOrderedQueue(Generic[T]):
    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._in_order: deque[T] = deque()  # N = 1: every waiting record, in offset order
        self._by_key: dict[Hashable, deque[tuple[int, T]]] = {}  # N > 1: a key's waiting records, in order
        self._ready: list[tuple[int, Hashable]] = []  # N > 1: keys waiting and not running, by their first record
        self._running_keys: set[Hashable] = set()
        self._waiting = 0
        self._pushed = 0

    def __len__(self) -> int:
        """Records waiting (not running)."""
        return self._waiting

    @property
    def running(self) -> int:
        return len(self._running_keys)

    def push(self, key: bytes | None, item: T) -> None:
        self._waiting += 1
        if self.concurrency == 1:
            self._in_order.append(item)
            return
        k = _NO_KEY if key is None else key
        self._pushed += 1
        queue = self._by_key.get(k)
        if queue is None:
            queue = self._by_key[k] = deque()
            if k not in self._running_keys:
                heapq.heappush(self._ready, (self._pushed, k))
        queue.append((self._pushed, item))

    def take(self) -> list[T]:
        """The records that may start now; they count as running until done() is called with their key."""
        if self.concurrency == 1:
            if self._running_keys or not self._in_order:
                return []
            self._running_keys.add(_NO_KEY)
            self._waiting -= 1
            return [self._in_order.popleft()]
        started: list[T] = []
        while self._ready and len(self._running_keys) < self.concurrency:
            _, k = heapq.heappop(self._ready)
            started.append(self._pop(k))
            self._running_keys.add(k)
        return started

    def take_more(self, key: bytes | None, limit: int) -> list[T]:
        """Up to ``limit`` records to run, in this order, after the running record of ``key`` and in its slot
        (done() is then called once, after the last of them)."""
        more: list[T] = []
        if self.concurrency == 1:
            while self._in_order and len(more) < limit:
                more.append(self._in_order.popleft())
            self._waiting -= len(more)
            return more
        k = _NO_KEY if key is None else key
        while k in self._by_key and len(more) < limit:
            more.append(self._pop(k))
        return more

    def done(self, key: bytes | None) -> None:
        if self.concurrency == 1:
            self._running_keys.clear()
            return
        k = _NO_KEY if key is None else key
        if k not in self._running_keys:
            return
        self._running_keys.remove(k)
        queue = self._by_key.get(k)
        if queue:
            heapq.heappush(self._ready, (queue[0][0], k))

    def clear(self) -> int:
        """Drop every waiting record (a revoked partition); returns how many."""
        dropped = self._waiting
        self._in_order.clear()
        self._by_key.clear()
        self._ready.clear()
        self._waiting = 0
        return dropped

    def _pop(self, k: Hashable) -> T:
        queue = self._by_key[k]
        _, item = queue.popleft()
        if not queue:
            del self._by_key[k]
        self._waiting -= 1
        return item
