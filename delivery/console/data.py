"""What the console shows, from the operators' admin code (the same as ``hubstream partitions`` and ``groups``).

Every broker call is blocking (librdkafka's admin client, an assigned reader), so each view is computed in a
thread, each call bounded by ``wait_s`` and each request by ``answer_s``, and each answer is kept for ``ttl_s``
(1 s): any number of open consoles cost the cluster one round of calls per second. Concurrent requests for the
same view share one computation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hubstream.errors import BrokerUnavailableError, HubstreamError
from hubstream.settings import Settings
from kafka_consumer.admin.cluster import Cluster
from kafka_consumer.admin.group_inspection import describe_group, list_groups
from kafka_consumer.admin.group_registry import GroupRegistry
from kafka_consumer.admin.partition_info import describe_partitions
from schemas.contracts import Catalog

WAIT_S = 5.0
TTL_S = 1.0
ANSWER_S = 15.0  # a view makes a few bounded calls in a row; a request waits this long for them
_KEPT = 64  # cached views at most (group names come from URLs)


@dataclass
class _Entry:
    task: asyncio.Future[dict[str, Any]]
    finished_at: float | None = None  # the answer is fresh for ttl_s from here

    def stale(self, now: float, ttl_s: float) -> bool:
        return self.finished_at is not None and now - self.finished_at >= ttl_s

    def finished(self, task: asyncio.Future[dict[str, Any]]) -> None:
        self.finished_at = time.monotonic()
        if not task.cancelled():
            task.exception()  # a failure nobody waited for is not logged as "never retrieved"


@dataclass
class ConsoleData:
    settings: Settings
    group: str  # the node's own group: shown first
    topics: list[str]  # the node's topics; the catalog's are added
    wait_s: float = WAIT_S
    ttl_s: float = TTL_S
    answer_s: float = ANSWER_S
    _cluster: Cluster | None = None
    _catalog: dict[str, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    def watched_topics(self) -> list[str]:
        """The node's topics and the catalog's."""
        return sorted(set(self.topics) | set(self._bindings()))

    def schemas(self) -> list[str]:
        """The schema names a stream's events are named by (SSE ``event:``)."""
        return sorted(set(self._bindings().values()))

    def _bindings(self) -> dict[str, str]:
        """topic -> schema name from the catalog, read once (one that does not load adds nothing)."""
        if self._catalog is None:
            try:
                self._catalog = {t: b.schema for t, b in Catalog.from_settings(self.settings).topics.items()}
            except HubstreamError:
                self._catalog = {}
        return self._catalog

    async def topics_view(self) -> dict[str, Any]:
        return await self._cached(("topics", ""), self._topics)

    async def groups_view(self) -> dict[str, Any]:
        return await self._cached(("groups", ""), self._groups)

    async def group_view(self, group: str) -> dict[str, Any]:
        return await self._cached(("group", group), lambda: self._group(group))

    async def _cached(self, key: tuple[str, str], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The view's last answer while fresh; else one computation in a thread, which every request waits on.

        A request gives up after ``answer_s`` (503), but the thread runs on and no second one starts for the view
        until it ends: a hanging cluster holds one thread per view, not one per request."""
        now = time.monotonic()
        entry = self._cache.get(key)
        if entry is None or entry.stale(now, self.ttl_s):
            if len(self._cache) >= _KEPT:
                self._cache = {k: e for k, e in self._cache.items() if not e.stale(now, self.ttl_s)}
            entry = self._cache[key] = _Entry(asyncio.ensure_future(asyncio.to_thread(compute)))
            entry.task.add_done_callback(entry.finished)
        try:
            result: dict[str, Any] = await asyncio.wait_for(asyncio.shield(entry.task), self.answer_s)
        except TimeoutError:
            raise BrokerUnavailableError(f"the cluster did not answer within {self.answer_s:.0f} s") from None
        return result

    def close(self) -> None:
        """Let the admin client go (it has no close; librdkafka destroys it with the last reference)."""
        self._cluster = None

    def cluster(self) -> Cluster:
        with self._lock:  # views compute in threads of their own; they share one admin client
            if self._cluster is None:
                self._cluster = Cluster(self.settings, wait_s=self.wait_s)
            return self._cluster

    def _topics(self) -> dict[str, Any]:
        cluster = self.cluster()
        existing = cluster.topics()
        suffix = self.settings.consumer.dead_letter_suffix
        topics, dead_letters = [], []
        for topic in self.watched_topics():
            if topic not in existing:
                topics.append({"topic": topic, "exists": False, "partitions": []})
                continue
            partitions = [p.as_json() for p in describe_partitions(cluster, topic)]
            topics.append({"topic": topic, "exists": True, "partitions": partitions})
            dlq = topic + suffix
            bounds = cluster.bounds((dlq, p) for p in existing.get(dlq, []))
            dead_letters.append(
                {
                    "topic": topic,
                    "dlq": dlq,
                    "exists": dlq in existing,
                    "records": sum(b.span for b in bounds.values()),
                    "partitions": {str(p): b.span for (_, p), b in sorted(bounds.items())},
                }
            )
        return {"at": time.time(), "topics": topics, "deadLetters": dead_letters}

    def _groups(self) -> dict[str, Any]:
        remembered = {g.group: g.topics for g in GroupRegistry.for_settings(self.settings).groups()}
        remembered.setdefault(self.group, list(self.topics))
        summaries = list_groups(self.cluster(), remembered)
        return {"at": time.time(), "node": self.group, "groups": [s.as_json() for s in summaries]}

    def _group(self, group: str) -> dict[str, Any]:
        topics = self.topics if group == self.group else []
        # no commit times: they cost an assigned reader per refresh; `hubstream groups describe` shows them
        described = describe_group(self.cluster(), group, topics, commit_times=False)
        return {"at": time.time(), **described.as_json()}
