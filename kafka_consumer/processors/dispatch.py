"""Running handlers: an asyncio loop in its own thread, one lane per owned partition.

The worker's poll thread hands each fetched record to its partition's lane; the lane starts it when key
order allows (key_order.KeyOrderedQueue) and reports back through a thread-safe queue:

    Completed(lane, tp, offset)        the record is done: handled, or dead-lettered
    Halted(lane, tp, offset, reason)   the record could not be finished (its dead letter could not be written):
                                       the lane takes nothing more (a registry outage only makes it wait)

(kafka_consumer.processing defines both.)

Async handlers run on the loop; plain ones in a thread pool, so a slow handler holds up only its own key (or
partition). A lane has one runner task per key slot (key_concurrency), not one task per record: a runner handles
its record, then the next one key order lets start, and so on until the lane has none. For a plain handler a
runner hands up to ``_BATCH`` records to one pool thread, which runs them in order (one thread hop per batch);
a record that raises or returns an awaitable comes back to the loop for its retries and dead letter before the
rest run. With tracing on, every record takes the one-at-a-time path, in its own span.

Lanes have ids: a partition revoked and assigned again gets a new lane, and reports from the old one are
ignored by the worker.

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
from typing import NamedTuple, TypeVar

from opentelemetry.trace import SpanKind, StatusCode

from hubstream import tracing
from hubstream.errors import RegistryError
from kafka_consumer.dead_letters import DeadLetterError, DeadLetterWriter
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import Failed, RetryPolicy, call_with_retries
from kafka_consumer.handlers import Handler
from kafka_consumer.loop_thread import LoopThread
from kafka_consumer.metrics import TopicMetrics, WorkerMetrics
from kafka_consumer.outages import Outage
from kafka_consumer.processing import Completed, Halted, Lane, Report
from kafka_consumer.processors.key_order import KeyOrderedQueue
from kafka_consumer.processors.timings import Timings
from kafka_consumer.records import Record

log = logging.getLogger(__name__)

_REGISTRY_FIRST_BACKOFF_S = 0.5
_REGISTRY_MAX_BACKOFF_S = 30.0
_BATCH = 64  # plain handlers: records one pool thread runs in a row (one thread hop, not one per record)
_YIELD_EVERY = 64  # a runner lets other lanes in this often (an async handler that never suspends would not)

TP = tuple[str, int]
R = TypeVar("R")


def _completed(lane: int, tp: TP, offset: int) -> Completed:
    """Completed(lane, tp, offset), one per record: filling the frozen dataclass's __dict__ at once costs a third
    of its __init__ (one object.__setattr__ per field)."""
    report = _new(Completed)
    report.__dict__.update(lane=lane, tp=tp, offset=offset)
    return report


_new = object.__new__


class Work(NamedTuple):
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
    metrics: TopicMetrics  # its labelled series, looked up once
    timings: Timings  # its handler run times, added to metrics.handler_seconds in bulk
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # its runners: at most one per key slot
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
        metrics = self._metrics.for_topic(self.group, lane.tp[0])
        queue: KeyOrderedQueue[Work] = KeyOrderedQueue(self._concurrency)
        self._lanes[lane.id] = _Lane(lane.id, lane.tp, queue, metrics, Timings(metrics.handler_seconds))

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
        """Start a runner for each record that may start now (each then runs on while its lane has work)."""
        if lane.closed or lane.halted:
            return
        for work in lane.queue.take():
            self._start_runner(lane, work)

    def _start_runner(self, lane: _Lane, work: Work) -> None:
        task = self._loop.create_task(self._runner(lane, work))
        lane.tasks.add(task)
        task.add_done_callback(lane.tasks.discard)

    async def _runner(self, lane: _Lane, work: Work) -> None:
        """Run ``work``, then the lane's next records as key order lets them start, in the slot ``work`` took:
        one task per slot instead of one per record. Plain handlers get their records in batches (_run_batch)."""
        ran = succeeded = 0
        try:
            while True:
                key = work.record.key
                try:
                    if tracing.enabled():
                        await self._process(lane, work)
                    elif self._is_async:
                        succeeded += await self._run_async(lane, work)
                    else:
                        await self._run_batch(lane, [work, *lane.queue.take_more(key, _BATCH - 1)])
                finally:
                    lane.queue.done(key)
                if lane.closed or lane.halted:
                    return
                started = lane.queue.take()
                if not started:
                    return
                work = started[0]
                for other in started[1:]:  # (done() frees one slot, so there is at most one)
                    self._start_runner(lane, other)
                ran += 1
                if ran % _YIELD_EVERY == 0:
                    lane.metrics.processed.inc(succeeded)
                    lane.timings.flush()
                    succeeded = 0
                    await asyncio.sleep(0)
        finally:
            if succeeded:
                lane.metrics.processed.inc(succeeded)
            lane.timings.flush()

    async def _run_async(self, lane: _Lane, work: Work) -> bool:
        """The common case in one frame: a decoded record, an async handler, tracing off; True when its first
        attempt succeeded (the caller counts those). Anything else goes through _process: retries, decoding
        again, dead letters, halting."""
        event = work.event
        handler = self._async_handler
        if event is None or handler is None:
            await self._process(lane, work)
            return False
        offset = work.record.offset
        slot = (lane.id, offset)
        started = time.monotonic()
        self._running[slot] = (lane.tp, offset, started)
        try:
            await handler(event)
        except BaseException as exc:  # noqa: BLE001 - _process retries it, halts, or lets cancellation through
            await self._process(lane, work, exc)
            return False
        lane.timings.add(time.monotonic() - started)
        self.reports.put(_completed(lane.id, lane.tp, offset))
        del self._running[slot]
        return True

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

    async def _process(self, lane: _Lane, work: Work, first_error: BaseException | None = None) -> None:
        """One record, retries and dead letter included; ``first_error``: its first attempt ran and raised."""
        record = work.record
        offset = record.offset
        slot = (lane.id, offset)
        try:
            if tracing.enabled():
                failed = await self._handle_in_span(lane, work, slot, first_error)
            else:
                failed = await self._handle(lane, work, slot, first_error)
            if failed is None or await self._give_up(lane, record, failed):
                self.reports.put(_completed(lane.id, lane.tp, offset))
        except asyncio.CancelledError:
            raise  # revoked, lost or shutting down: not finished, so not reported
        except BaseException as exc:  # noqa: BLE001 - e.g. SystemExit from a handler: stop the partition, say why
            self._halt(lane, offset, f"unexpected {exc.__class__.__name__} while handling {record.where}: {exc}")
        finally:
            self._running.pop(slot, None)

    async def _run_batch(self, lane: _Lane, works: list[Work]) -> None:
        """Plain handler, tracing off: decoded records go to one pool thread, which runs them in order. A record
        that raised, returned an awaitable or must be decoded again continues through _process, then the rest."""
        i = 0
        while i < len(works) and not lane.closed and not lane.halted:
            if works[i].event is None:
                await self._process(lane, works[i])
                i += 1
                continue
            end = i + 1
            while end < len(works) and works[end].event is not None:
                end += 1
            seconds, error, result = await self._loop.run_in_executor(
                self._pool, self._run_in_thread, lane, works[i:end]
            )
            for done, took in zip(works[i : i + len(seconds)], seconds, strict=True):
                lane.timings.add(took)
                self.reports.put(_completed(lane.id, lane.tp, done.record.offset))
            if seconds:
                lane.metrics.processed.inc(len(seconds))
            i += len(seconds)
            if error is None and result is None:
                continue  # all ran, or the lane closed and the rest never started
            if result is not None:
                try:
                    await result  # type: ignore[misc] # a plain handler that returned an awaitable
                except Exception as exc:  # noqa: BLE001 - retried below like any first failure
                    error = exc
            if error is None:
                lane.metrics.processed.inc()
                self.reports.put(_completed(lane.id, lane.tp, works[i].record.offset))
                self._running.pop((lane.id, works[i].record.offset), None)
            else:
                await self._process(lane, works[i], error)
            i += 1

    def _run_in_thread(self, lane: _Lane, works: list[Work]) -> tuple[list[float], BaseException | None, object]:
        """On a pool thread: run decoded records in order while their lane is open. Returns the run time of each
        that succeeded, then the error or awaitable of the one that stopped the run, if any."""
        handler = self._handler
        assert handler is not None  # the handler processor always passes one
        seconds: list[float] = []
        for work in works:
            slot = (lane.id, work.record.offset)
            with self._threads_lock:  # so that _abandon sees both or neither
                if lane.closed:  # let go while this waited for a thread or ran: the rest never start
                    break
                started = time.monotonic()
                self._running[slot] = (lane.tp, slot[1], started)
                self._in_threads.add(slot)
            try:
                result = handler(work.event)  # type: ignore[arg-type] # decoded: _run_batch checked
            except BaseException as exc:  # noqa: BLE001 - the loop retries, dead-letters or halts
                return seconds, exc, None
            finally:
                self._returned(slot)
            if inspect.isawaitable(result):
                return seconds, None, result
            seconds.append(time.monotonic() - started)
            self._running.pop(slot, None)
        return seconds, None, None

    async def _handle_in_span(
        self, lane: _Lane, work: Work, slot: tuple[int, int], first_error: BaseException | None
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
            failed = await self._handle(lane, work, slot, first_error)
            if failed is not None:
                span.record_exception(failed.error)
                span.set_status(StatusCode.ERROR, f"failed {failed.attempts} attempt(s): {failed.error!r}")
            return failed

    async def _handle(
        self, lane: _Lane, work: Work, slot: tuple[int, int], first_error: BaseException | None
    ) -> Failed | None:
        """None when the handler succeeded; Failed when the record should be dead-lettered."""
        if work.poison is not None:
            return Failed(work.poison, 0)
        event = work.event
        if event is None:
            decoded = await self._decode_again(work)
            if isinstance(decoded, Failed):
                return decoded
            event = decoded
        started = time.monotonic()
        if first_error is None:
            try:
                await self._call(lane, event, slot)  # most calls succeed: no retry machinery for them
                failed = None
            except Exception as exc:  # noqa: BLE001 - retried
                failed = await self._retried(lane, work.record, event, slot, exc)
        elif isinstance(first_error, Exception):
            failed = await self._retried(lane, work.record, event, slot, first_error)
        else:
            raise first_error  # e.g. SystemExit on a pool thread: _process halts the partition
        lane.metrics.handler_seconds.observe(time.monotonic() - started)
        if failed is None:
            lane.metrics.processed.inc()
        return failed

    async def _retried(
        self, lane: _Lane, record: Record, event: ConsumedEvent, slot: tuple[int, int], error: Exception
    ) -> Failed | None:
        """The rest of the retry policy for a record whose first attempt raised ``error``."""
        first = [error]

        async def attempt() -> None:
            if first:  # call_with_retries' first attempt stands for the one that already failed
                raise first.pop()
            await self._call(lane, event, slot)

        def on_retry(error: BaseException, attempt: int) -> None:
            lane.metrics.retried.inc()
            log.warning(
                "%s: attempt %d failed (%s: %s); retrying", record.where, attempt, error.__class__.__name__, error
            )

        return await call_with_retries(attempt, self._retry, on_retry=on_retry)

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

    async def _call(self, lane: _Lane, event: ConsumedEvent, slot: tuple[int, int]) -> None:
        """One attempt; the watch times it from its start (for a plain handler: when a pool thread takes it)."""
        if self._async_handler is not None:
            self._running[slot] = (lane.tp, slot[1], time.monotonic())
            await self._async_handler(event)
            return
        handler = self._handler
        assert handler is not None  # the handler processor always passes one

        def run() -> object:
            with self._threads_lock:  # so that _abandon sees both or neither
                self._running[slot] = (lane.tp, slot[1], time.monotonic())
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
        lane.metrics.failed.inc()
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
        lane.metrics.dead_lettered.inc()
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
