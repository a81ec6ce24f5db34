"""Running handlers: an asyncio loop in its own thread, one lane per owned partition.

The worker's poll thread hands each fetched record to its partition's lane; the lane starts it when key
order allows (key_order.KeyOrderedQueue) and reports back through a thread-safe queue:

    Completed(lane, tp, offset)        the record is done: handled, or dead-lettered
    Halted(lane, tp, offset, reason)   the record could not be finished (its dead letter could not be written):
                                       the lane takes nothing more (a registry outage only makes it wait)

(kafka_consumer.processing defines both.)

Async handlers run on the loop; plain ones in a thread pool, so a slow handler holds up only its own key (or
partition). Lanes have ids: a partition revoked and assigned again gets a new lane, and reports from the old one
are ignored by the worker.

A plain handler still running when its lane closes cannot be interrupted: its thread is "abandoned" and stays
out of the pool until the handler returns (``abandoned()``). When every thread of the pool is abandoned, no
plain handler can run at all, and the worker reports unhealthy (kafka_consumer.health.HandlerWatch).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.trace import SpanKind, StatusCode

from hubstream import tracing
from hubstream.errors import RegistryError
from kafka_consumer.dead_letters import DeadLetterError, DeadLetterWriter
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import Failed, RetryPolicy, call_with_retries
from kafka_consumer.handlers import Handler
from kafka_consumer.loop_thread import LoopThread
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.outages import Outage
from kafka_consumer.processing import Completed, Halted, Lane, Report
from kafka_consumer.processors.key_order import KeyOrderedQueue
from kafka_consumer.records import Record

log = logging.getLogger(__name__)

_REGISTRY_FIRST_BACKOFF_S = 0.5
_REGISTRY_MAX_BACKOFF_S = 30.0

TP = tuple[str, int]
R = TypeVar("R")


@dataclass(frozen=True)
class Work:
    """A fetched record for a lane: decoded, or with the reason it could not be."""

    record: Record
    event: ConsumedEvent | None = None
    poison: BaseException | None = None  # undecodable: dead-letter at once
    decode: Callable[[Record], ConsumedEvent] | None = None  # the registry was unreachable: decode again


@dataclass
class _Lane:
    id: int
    tp: TP
    queue: KeyOrderedQueue[Work]
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    halted: bool = False
    closed: bool = False


class Dispatcher:
    def __init__(
        self,
        *,
        group: str,
        handler: Handler | None,
        retry: RetryPolicy,
        dead_letters: Callable[[], DeadLetterWriter] | None,
        concurrency: int,
        threads: int,
        metrics: WorkerMetrics,
        registry: Outage | None = None,
    ) -> None:
        self.group = group
        self._registry = registry  # reports the worker degraded while records wait for the schema registry
        self.reports: queue.SimpleQueue[Report] = queue.SimpleQueue()
        self._handler = handler
        self._async_handler = handler if handler is not None and inspect.iscoroutinefunction(handler) else None
        self._is_async = self._async_handler is not None
        self._retry = retry
        self._make_dead_letters = dead_letters
        self._dead_letters: DeadLetterWriter | None = None
        self._concurrency = concurrency
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hubstream-handler")
        self._metrics = metrics
        self._lanes: dict[int, _Lane] = {}
        self._running: dict[tuple[int, int], tuple[TP, int, float]] = {}
        # slots of the plain handlers on a pool thread now, and of those abandoned (their lane closed): a
        # pool thread adds and removes its own slot, the loop marks abandoned ones, hence the lock
        self._threads_lock = threading.Lock()
        self._in_threads: set[tuple[int, int]] = set()
        self._abandoned: dict[tuple[int, int], tuple[TP, int]] = {}
        self._thread = LoopThread("hubstream-dispatch")
        self._loop = self._thread.loop

    # --- called from the poll thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if self._make_dead_letters is not None:
            # the producer is made on the loop, where its delivery futures resolve
            self._dead_letters = self._thread.call(self._async(self._make_dead_letters))

    def open_lane(self, lane: Lane) -> None:
        self._thread.call_soon(self._open, lane)

    def submit(self, works: list[tuple[int, Work]]) -> None:
        """Hand fetched records to their lanes, in order (one wake-up of the loop for the whole batch)."""
        if works:
            self._thread.call_soon(self._submit, works)

    def close_lanes(self, lanes: list[int], timeout_s: float) -> list[tuple[TP, int]]:
        """Stop the lanes: drop waiting records, wait for running ones (bounded), cancel the rest.

        Returns (partition, offset) of the records still running when the time was up; they are not reported
        done, so their offsets are not committed and the partition's next owner handles them again.
        """
        if not lanes:
            return []
        return self._thread.call(self._close(lanes, timeout_s), timeout_s + 10)

    def running(self) -> list[tuple[TP, int, float]]:
        """(partition, offset, monotonic start) of every record being handled now."""
        return list(self._running.values())

    def abandoned(self) -> list[tuple[TP, int]]:
        """(partition, offset) of the plain handlers still running on a pool thread after their lane closed."""
        with self._threads_lock:
            return list(self._abandoned.values())

    @property
    def abandoned_threads(self) -> int:
        """How many pool threads abandoned handlers hold (each comes back when its handler returns)."""
        with self._threads_lock:
            return len(self._abandoned)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread.running:
            try:
                self._thread.call(self._close(list(self._lanes), 0), timeout_s)
                if self._dead_letters is not None:
                    self._thread.call(self._dead_letters.close(), timeout_s)
                    self._dead_letters = None  # frees the librdkafka handle, which would keep reconnecting
            except TimeoutError:
                log.error(
                    "group %s: the handler loop did not stop within %.0f s (an async handler blocks it)",
                    self.group,
                    timeout_s,
                )
            finally:
                self._thread.stop(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- on the loop ----------------------------------------------------------------------------------

    @staticmethod
    async def _async(factory: Callable[[], R]) -> R:
        return factory()

    def _open(self, lane: Lane) -> None:
        self._lanes[lane.id] = _Lane(lane.id, lane.tp, KeyOrderedQueue(self._concurrency))

    def _submit(self, works: list[tuple[int, Work]]) -> None:
        touched: dict[int, _Lane] = {}
        for lane_id, work in works:
            lane = self._lanes.get(lane_id)
            if lane is None or lane.closed or lane.halted:
                continue
            lane.queue.push(work.record.key, work)
            touched[lane_id] = lane
        for lane in touched.values():
            self._pump(lane)

    def _pump(self, lane: _Lane) -> None:
        if lane.closed or lane.halted:
            return
        for work in lane.queue.take():
            task = self._loop.create_task(self._run(lane, work))
            lane.tasks.add(task)

    async def _close(self, lane_ids: list[int], timeout_s: float) -> list[tuple[TP, int]]:
        tasks: set[asyncio.Task[None]] = set()
        for lane_id in lane_ids:
            lane = self._lanes.pop(lane_id, None)
            if lane is not None:
                lane.closed = True
                lane.queue.clear()
                tasks |= lane.tasks
        if not tasks:
            return []
        _, pending = await asyncio.wait(tasks, timeout=timeout_s) if timeout_s > 0 else (set(), tasks)
        closing = set(lane_ids)
        left = [(tp, offset) for (lane, offset), (tp, _, _) in list(self._running.items()) if lane in closing]
        self._abandon(closing)  # before the cancelled tasks forget what they were running
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        for slot in [slot for slot in list(self._running) if slot[0] in closing]:  # pool threads add to it
            self._running.pop(slot, None)
        return left

    def _abandon(self, closing: set[int]) -> None:
        """Mark the plain handlers of closed lanes still on a pool thread: it cannot be interrupted, it runs on."""
        with self._threads_lock:
            for slot in self._in_threads:
                if slot[0] in closing:
                    self._mark_abandoned(slot)

    def _mark_abandoned(self, slot: tuple[int, int]) -> None:  # with the threads lock held
        running = self._running.get(slot)
        if running is not None:
            self._abandoned[slot] = (running[0], running[1])

    def _returned(self, slot: tuple[int, int]) -> None:
        """A plain handler returned (on its pool thread): an abandoned thread is back in the pool."""
        with self._threads_lock:
            self._in_threads.discard(slot)
            back = self._abandoned.pop(slot, None)
        if back is not None:
            (topic, partition), offset = back
            log.info(
                "group %s: the abandoned handler for %s[%d]@%d returned; its thread is back in the pool",
                self.group,
                topic,
                partition,
                offset,
                extra={"event": "handler_returned", "group": self.group, "topic": topic, "partition": partition},
            )

    async def _run(self, lane: _Lane, work: Work) -> None:
        record = work.record
        offset = record.offset
        slot = (lane.id, offset)
        started = lambda: self._started(slot, lane.tp, offset)  # noqa: E731 - called on each attempt
        try:
            if tracing.enabled():
                failed = await self._handle_in_span(work, slot, started)
            else:
                failed = await self._handle(work, slot, started)
            if failed is None or await self._give_up(lane, record, failed):
                self.reports.put(Completed(lane.id, lane.tp, offset))
        except asyncio.CancelledError:
            raise  # revoked, lost or shutting down: not finished, so not reported
        except BaseException as exc:  # noqa: BLE001 - e.g. SystemExit from a handler: stop the partition, say why
            self._halt(lane, offset, f"unexpected {exc.__class__.__name__} while handling {record.where}: {exc}")
        finally:
            self._running.pop(slot, None)
            lane.queue.done(record.key)
            task = asyncio.current_task()
            if task is not None:  # always: this runs as a task
                lane.tasks.discard(task)
            self._pump(lane)

    def _started(self, slot: tuple[int, int], tp: TP, offset: int) -> None:
        """An attempt of the handler begins (on the loop, or on a pool thread): the watch times it from now."""
        self._running[slot] = (tp, offset, time.monotonic())

    async def _handle_in_span(
        self, work: Work, slot: tuple[int, int], started_attempt: Callable[[], None]
    ) -> Failed | None:
        """_handle in a consumer span that continues the record's trace (its traceparent header), retries and all."""
        record = work.record
        attributes: dict[str, str | int] = {
            tracing.MESSAGING_SYSTEM: "kafka",
            tracing.MESSAGING_DESTINATION: record.topic,
            tracing.MESSAGING_PARTITION: str(record.partition),
            tracing.MESSAGING_OFFSET: record.offset,
            tracing.MESSAGING_GROUP: self.group,
            tracing.MESSAGING_OPERATION_TYPE: "process",
            tracing.MESSAGING_OPERATION_NAME: "process",
        }
        with tracing.tracer().start_as_current_span(
            f"process {record.topic}",
            context=tracing.context_from_headers(record.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            failed = await self._handle(work, slot, started_attempt)
            if failed is not None:
                span.record_exception(failed.error)
                span.set_status(StatusCode.ERROR, f"failed {failed.attempts} attempt(s): {failed.error!r}")
            return failed

    async def _handle(self, work: Work, slot: tuple[int, int], started_attempt: Callable[[], None]) -> Failed | None:
        """None when the handler succeeded; Failed when the record should be dead-lettered."""
        topic = work.record.topic
        if work.poison is not None:
            return Failed(work.poison, 0)
        event = work.event
        if event is None:
            decoded = await self._decode_again(work)
            if isinstance(decoded, Failed):
                return decoded
            event = decoded
        started = time.monotonic()

        def on_retry(error: BaseException, attempt: int) -> None:
            self._metrics.for_topic(self.group, topic).retried.inc()
            log.warning(
                "%s: attempt %d failed (%s: %s); retrying",
                work.record.where,
                attempt,
                error.__class__.__name__,
                error,
            )

        failed = await call_with_retries(
            lambda: self._call(event, slot, started_attempt), self._retry, on_retry=on_retry
        )
        self._metrics.for_topic(self.group, topic).handler_seconds.observe(time.monotonic() - started)
        if failed is None:
            self._metrics.for_topic(self.group, topic).processed.inc()
        return failed

    async def _decode_again(self, work: Work) -> ConsumedEvent | Failed:
        """Decode a record that met an unreachable registry. It is tried again, with a capped backoff, for as long
        as the registry is down (the worker reports degraded meanwhile): the partition waits, it does not halt."""
        assert work.decode is not None
        decode = work.decode
        wait_s = _REGISTRY_FIRST_BACKOFF_S
        while True:
            try:
                event = await self._loop.run_in_executor(self._pool, decode, work.record)
            except RegistryError as exc:
                log.warning("%s: schema registry unreachable, retrying in %.1f s: %s", work.record.where, wait_s, exc)
                if self._registry is not None:
                    self._registry.failed(exc)
                await asyncio.sleep(wait_s)
                wait_s = min(_REGISTRY_MAX_BACKOFF_S, wait_s * 2)
                continue
            except Exception as exc:  # noqa: BLE001 - the record itself is bad: dead-letter it
                failed: ConsumedEvent | Failed = Failed(exc, 0)
            else:
                failed = event
            if self._registry is not None:
                self._registry.recovered()
            return failed

    async def _call(self, event: ConsumedEvent, slot: tuple[int, int], started_attempt: Callable[[], None]) -> None:
        if self._async_handler is not None:
            started_attempt()
            await self._async_handler(event)
            return
        handler = self._handler
        assert handler is not None  # the handler processor always passes one

        def run() -> object:
            with self._threads_lock:  # so that _abandon sees both or neither
                started_attempt()  # when a pool thread takes it, not while it waits for one
                self._in_threads.add(slot)
                if slot[0] not in self._lanes:  # its lane closed (and gave up on it) while it waited for a thread
                    self._mark_abandoned(slot)
            try:
                return handler(event)
            finally:
                self._returned(slot)

        if tracing.enabled():  # the handler's own spans are children of the record's
            result = await self._loop.run_in_executor(self._pool, contextvars.copy_context().run, run)
        else:
            result = await self._loop.run_in_executor(self._pool, run)
        if inspect.isawaitable(result):
            await result

    async def _give_up(self, lane: _Lane, record: Record, failed: Failed) -> bool:
        """Dead-letter a record that failed; False when that was not possible and the lane halted."""
        topic = record.topic
        self._metrics.for_topic(self.group, topic).failed.inc()
        if self._dead_letters is None:
            self._halt(
                lane,
                record.offset,
                f"{record.where} failed {failed.attempts} attempt(s) and dead "
                f"letters are off: {failed.error.__class__.__name__}: {failed.error}",
            )
            return False
        try:
            await self._dead_letters.write(record, failed.error, failed.attempts)
        except DeadLetterError as exc:
            self._halt(lane, record.offset, str(exc))
            return False
        self._metrics.for_topic(self.group, topic).dead_lettered.inc()
        return True

    def _halt(self, lane: _Lane, offset: int, reason: str) -> None:
        if not lane.halted:
            lane.halted = True
            lane.queue.clear()
            log.error(
                "group %s: %s[%d] stopped at offset %d: %s",
                self.group,
                *lane.tp,
                offset,
                reason,
                extra={
                    "event": "partition_stopped",
                    "group": self.group,
                    "topic": lane.tp[0],
                    "partition": lane.tp[1],
                    "offset": offset,
                },
            )
        self.reports.put(Halted(lane.id, lane.tp, offset, reason))
