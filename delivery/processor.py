"""The delivery processor: consumed events into their recipients' mailboxes, committed only once durable.

The consumer worker's poll thread hands records over (accept); one writer task on the delivery node's event loop
takes them in batches, in the order they came, and for each batch:

1. decodes every record into its topic's contract (in a thread when a schema id is new, as that means a registry
   lookup, or when the batch is large; on the loop otherwise, which saves two thread hops);
2. routes it (delivery.routing): one Delivery per recipient, the event as natural JSON;
3. writes the whole batch in one store transaction (idempotent per recipient and eventId), which also wakes the
   recipients' streams;
4. reports the records Completed, so the worker may commit them.

A record that cannot be decoded goes to the dead-letter topic (and is Completed). When the registry or the store
fails, the batch is retried with backoff until it succeeds, the worker's /healthz reports "degraded" meanwhile,
and backpressure stops fetching: nothing is lost and nothing needs a restart. One writer keeps a partition's
records in offset order, so a conversation's chunks reach the mailbox in the order they were produced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TypeVar

from opentelemetry.trace import Span

from delivery.mailbox import Delivery, StoreUnavailableError
from delivery.metrics import DeliveryMetrics
from delivery.routing import NoRecipientError, Route
from delivery.stores import MailboxStore
from delivery.traces import end_write_spans, start_write_spans, traceparent
from hubstream import tracing
from hubstream.errors import RegistryError, SerdeError
from kafka_consumer.dead_letters import DeadLetterError, DeadLetterWriter, WriterFactory
from kafka_consumer.events import decode_event
from kafka_consumer.outages import Outage
from kafka_consumer.processing import TP, Completed, Halted, Lane, Report, WorkerContext
from kafka_consumer.records import Record
from schemas.contracts import Catalog, Contract
from schemas.natural import NaturalJson
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

T = TypeVar("T")
_FIRST_BACKOFF_S = 0.2
_MAX_BACKOFF_S = 5.0
_INLINE_MAX = 50  # records decoded on the loop (well under a millisecond); larger batches go to a thread


@dataclass
class _Routed:
    lane: Lane
    record: Record
    deliveries: list[Delivery]
    poison: BaseException | None = None


class DeliveryProcessor:
    def __init__(
        self,
        serde: AvroSerde,
        catalog: Catalog,
        routes: dict[str, Route],
        store: MailboxStore,
        *,
        loop: asyncio.AbstractEventLoop,
        metrics: DeliveryMetrics,
        dead_letters: WriterFactory | None,
        batch_max: int = 500,
    ) -> None:
        self._serde = serde
        self._routes = routes
        self._contracts: dict[str, Contract] = {topic: catalog.contract_for(topic) for topic in routes}
        self._converters = {topic: NaturalJson(contract.schema) for topic, contract in self._contracts.items()}
        self._store = store
        self._loop = loop
        self._metrics = metrics
        self._make_dead_letters = dead_letters
        self._dead_letters: DeadLetterWriter | None = None
        self._batch_max = batch_max
        self._reports: queue.SimpleQueue[Report] = queue.SimpleQueue()
        self._context: WorkerContext | None = None
        self._writer: Future[None] | None = None
        # the rest is used on the loop only
        self._queue: list[tuple[Lane, Record]] = []
        self._arrived = asyncio.Event()
        self._pending: dict[int, int] = {}  # lane id -> records accepted and not yet reported
        self._drained = asyncio.Condition()
        self._dropped: set[int] = set()
        self._outages: dict[str, Outage] = {}  # the registry, the store: what the writer is waiting for

    # --- the Processor protocol (poll thread) --------------------------------------------------------------

    def start(self, context: WorkerContext) -> None:
        self._context = context
        if context.options.dead_letter and self._make_dead_letters is not None:
            self._dead_letters = self._make_dead_letters(Outage("the dead-letter topics", lambda: context.health))
        self._writer = asyncio.run_coroutine_threadsafe(self._write_forever(), self._loop)

    def assigned(self, lanes: list[Lane], committed: Callable[[], dict[TP, int | None]]) -> dict[TP, int]:
        return {}

    def accept(self, records: list[tuple[Lane, Record]]) -> None:
        self._loop.call_soon_threadsafe(self._enqueue, records)

    def reports(self) -> list[Report]:
        return [self._reports.get_nowait() for _ in range(self._reports.qsize())]

    def commit_limit(self, tp: TP) -> int | None:
        return None  # records are reported only once their writes are durable

    def drain(self, lanes: list[Lane], timeout_s: float) -> None:
        ids = {lane.id for lane in lanes}
        try:
            asyncio.run_coroutine_threadsafe(self._written(ids), self._loop).result(timeout_s)
        except TimeoutError:
            log.warning(
                "mailbox writes of %s did not finish within %.0f s; they are not committed and the next "
                "owner writes them again (once: writes are idempotent)",
                ", ".join(f"{t}[{p}]" for t, p in sorted(lane.tp for lane in lanes)),
                timeout_s,
                extra={"event": "drain_timeout"},
            )

    def release(self, lanes: list[Lane], *, lost: bool) -> None:
        self._loop.call_soon_threadsafe(self._forget, {lane.id for lane in lanes})

    def tick(self) -> None:
        pass

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        if self._dead_letters is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._dead_letters.close(), self._loop).result(15)

    # --- on the loop -----------------------------------------------------------------------------------------

    def _enqueue(self, records: list[tuple[Lane, Record]]) -> None:
        for lane, _ in records:
            self._pending[lane.id] = self._pending.get(lane.id, 0) + 1
        self._queue.extend(records)
        self._arrived.set()

    def _forget(self, lane_ids: set[int]) -> None:
        self._dropped |= lane_ids
        self._queue = [(lane, m) for lane, m in self._queue if lane.id not in lane_ids]
        for lane_id in lane_ids:
            self._pending.pop(lane_id, None)

    async def _written(self, lane_ids: set[int]) -> None:
        async with self._drained:
            await self._drained.wait_for(lambda: not any(self._pending.get(i) for i in lane_ids))

    async def _write_forever(self) -> None:
        while True:
            await self._arrived.wait()
            batch, self._queue = self._queue[: self._batch_max], self._queue[self._batch_max :]
            if not self._queue:
                self._arrived.clear()
            batch = [(lane, m) for lane, m in batch if lane.id not in self._dropped]
            if batch:
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[tuple[Lane, Record]]) -> None:
        taken_ns = time.time_ns() if tracing.enabled() else 0
        routed = self._route_inline(batch)
        if routed is None:
            routed = await self._retrying(
                "the schema registry", "decode", lambda: asyncio.to_thread(self._route, batch)
            )
        spans = self._trace(routed, taken_ns) if taken_ns else None
        deliveries = [d for r in routed for d in r.deliveries]
        started = time.monotonic()
        stored = await self._retrying("the mailbox store", "write", lambda: self._store.write(deliveries))
        if deliveries:
            self._metrics.write_seconds.observe(time.monotonic() - started)
        self._count(routed, len(deliveries) - stored)
        if spans is not None:
            end_write_spans(spans, [(len(r.deliveries), r.poison) for r in routed])
        for r in routed:
            if r.poison is not None and not await self._dead_letter(r):
                continue
            self._done(Completed(r.lane.id, r.lane.tp, r.record.offset))

    def _trace(self, routed: list[_Routed], taken_ns: int) -> list[Span]:
        """Start each record's mailbox-write span; its deliveries keep the span's traceparent for their streams."""
        group = self._context.group if self._context else ""
        spans = start_write_spans([r.record for r in routed], group=group, started_ns=taken_ns)
        for r, span in zip(routed, spans, strict=True):
            if r.deliveries:
                parent = traceparent(span)
                r.deliveries = [replace(d, trace=parent) for d in r.deliveries]
        return spans

    def _route_inline(self, batch: list[tuple[Lane, Record]]) -> list[_Routed] | None:
        """A few records of schemas decoded before, routed on the loop (a thread hop would cost more); None when
        the batch must go to a thread."""
        if len(batch) > _INLINE_MAX or not all(self._serde.decodes_offline(record.headers) for _, record in batch):
            return None
        try:
            return self._route(batch)
        except RegistryError:
            return None

    def _route(self, batch: list[tuple[Lane, Record]]) -> list[_Routed]:
        """Decode and route a batch (in a thread); RegistryError fails the whole batch, to be retried."""
        return [self._route_one(lane, record) for lane, record in batch]

    def _route_one(self, lane: Lane, record: Record) -> _Routed:
        topic = record.topic
        route = self._routes[topic]
        try:
            event = decode_event(self._serde, record, self._contracts[topic])
        except RegistryError:
            raise
        except SerdeError as exc:
            return _Routed(lane, record, [], exc)
        recipients = route.recipients_of(event.value)
        if not recipients:
            if route.without_recipients == "dead-letter":
                return _Routed(lane, record, [], NoRecipientError(f"{record.where} names no recipient"))
            log.warning(
                "%s names no recipient (%s); nothing to deliver",
                record.where,
                route.recipient or route.recipients,
                extra={"event": "unroutable", "topic": topic},
            )
            self._metrics.unroutable.labels(topic).inc()
            return _Routed(lane, record, [])
        natural = json.dumps(self._converters[topic].to_json(event.value), ensure_ascii=False, separators=(",", ":"))
        event_id = route.event_id_of(event.value, event.partition, event.offset)
        conversation = route.conversation_of(event.value)
        return _Routed(
            lane,
            record,
            [
                Delivery(
                    r,
                    event_id,
                    topic,
                    event.partition,
                    event.offset,
                    event.schema_name,
                    event.schema_id,
                    conversation,
                    natural,
                )
                for r in recipients
            ],
        )

    async def _retrying(self, what: str, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Retry until it works, with a capped backoff; the worker reports degraded while it does not."""
        outage = self._outages.get(what)
        if outage is None:
            health = lambda: self._context.health if self._context else None  # noqa: E731 - read when it fails
            outage = self._outages[what] = Outage(
                what, health, first_backoff_s=_FIRST_BACKOFF_S, max_backoff_s=_MAX_BACKOFF_S
            )
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                result = await attempt()
            except (RegistryError, StoreUnavailableError) as exc:
                self._metrics.store_errors.labels(operation).inc()
                outage.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)
                continue
            outage.recovered()
            return result

    async def _dead_letter(self, routed: _Routed) -> bool:
        assert routed.poison is not None
        if self._dead_letters is None:
            self._done(
                Halted(
                    routed.lane.id,
                    routed.lane.tp,
                    routed.record.offset,
                    f"{routed.record.where} cannot be delivered and dead letters are off: {routed.poison}",
                )
            )
            return False
        try:
            await self._dead_letters.write(routed.record, routed.poison, 0)
        except DeadLetterError as exc:
            self._done(Halted(routed.lane.id, routed.lane.tp, routed.record.offset, str(exc)))
            return False
        if self._context is not None:
            self._context.metrics.for_topic(self._context.group, routed.record.topic).dead_lettered.inc()
        return True

    def _count(self, routed: list[_Routed], duplicates: int) -> None:
        for r in routed:
            if r.deliveries:
                self._metrics.mailbox_writes.labels(r.record.topic).inc(len(r.deliveries))
        self._metrics.duplicates.inc(duplicates)
        if self._context is not None:
            for r in routed:
                self._context.metrics.for_topic(self._context.group, r.record.topic).processed.inc()

    def _done(self, report: Report) -> None:
        self._reports.put(report)
        left = self._pending.get(report.lane, 0) - 1
        if left > 0:
            self._pending[report.lane] = left
        else:
            self._pending.pop(report.lane, None)
            self._loop.create_task(self._notify_drained())

    async def _notify_drained(self) -> None:
        async with self._drained:
            self._drained.notify_all()
