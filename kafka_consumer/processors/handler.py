"""The handler processor: each event goes to a function, with retries, dead letters and key-ordered concurrency.

Records are decoded on the poll thread (cheap: the serde caches its plans) and run on the dispatcher's lanes
(kafka_consumer.processors.dispatch). After the registry failed, records are decoded on their lanes for a few
seconds instead, so the poll thread never waits on an unreachable registry again and again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hubstream.errors import RegistryError, SerdeError
from kafka_consumer.dead_letters import DeadLetterWriter, WriterFactory
from kafka_consumer.events import ConsumedEvent, decode_event
from kafka_consumer.handlers import Handler
from kafka_consumer.health import HandlerWatch
from kafka_consumer.outages import Outage
from kafka_consumer.processing import TP, Lane, Report, WorkerContext
from kafka_consumer.processors.dispatch import Dispatcher, Work
from kafka_consumer.records import Record
from schemas.contracts import Contract
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

_REGISTRY_BACKOFF_S = 5.0
_new = tuple.__new__


class HandlerProcessor:
    def __init__(
        self,
        handler: Handler,
        serde: AvroSerde,
        *,
        readers: dict[str, Contract] | None = None,
        dead_letters: WriterFactory | None = None,
    ) -> None:
        self._handler = handler
        self._serde = serde
        self._readers = readers or {}
        self._make_dead_letters = dead_letters
        self._registry_down_until = 0.0
        self._dispatcher: Dispatcher | None = None
        self._watch: HandlerWatch | None = None
        self._group = ""

    @property
    def abandoned_threads(self) -> int:
        """Plain handlers still running after their partition was let go (their threads cannot be stopped)."""
        return 0 if self._dispatcher is None else self._dispatcher.abandoned_threads

    def start(self, context: WorkerContext) -> None:
        options = context.options
        self._group = context.group
        self._dispatcher = Dispatcher(
            group=context.group,
            handler=self._handler,
            retry=options.retry,
            dead_letters=self._dead_letter_writer(context) if options.dead_letter else None,
            concurrency=options.key_concurrency,
            threads=options.handler_threads,
            metrics=context.metrics,
            registry=Outage("the schema registry", lambda: context.health),
        )
        self._watch = HandlerWatch(
            context.health, options.handler_budget_s, options.stuck_after_s, options.drain_timeout_s
        )
        self._dispatcher.start()

    def _dead_letter_writer(self, context: WorkerContext) -> Callable[[], DeadLetterWriter] | None:
        make = self._make_dead_letters
        if make is None:
            return None
        return lambda: make(Outage("the dead-letter topics", lambda: context.health))

    def assigned(self, lanes: list[Lane], committed: Callable[[], dict[TP, int | None]]) -> dict[TP, int]:
        for lane in lanes:
            self._running.open_lane(lane)
        return {}

    def accept(self, records: list[tuple[Lane, Record]]) -> None:
        if self._registry_down_until and time.monotonic() >= self._registry_down_until:
            self._registry_down_until = 0.0  # decode here again
        works: list[tuple[int, Work]] = []
        serde, readers = self._serde, self._readers
        for lane, record in records:  # one frame for the batch: this is the poll thread's hot path
            if self._registry_down_until:  # it failed (earlier in this batch): do not make the poll thread wait
                works.append((lane.id, self._decode_later(record)))
                continue
            try:
                event = decode_event(serde, record, readers.get(record.topic))
            except RegistryError:
                self._registry_down_until = time.monotonic() + _REGISTRY_BACKOFF_S
                works.append((lane.id, self._decode_later(record)))
            except SerdeError as exc:
                works.append((lane.id, Work(record, poison=exc)))
            else:
                works.append((lane.id, _new(Work, (record, event, None, None))))  # Work(record, event)
        self._running.submit(works)

    def reports(self) -> list[Report]:
        reports = self._running.reports
        return [reports.get_nowait() for _ in range(reports.qsize())]

    def commit_limit(self, tp: TP) -> int | None:
        return None

    def drain(self, lanes: list[Lane], timeout_s: float) -> None:
        try:
            stragglers = self._running.close_lanes([lane.id for lane in lanes], timeout_s)
        except TimeoutError:  # the dispatcher's loop is blocked (an async handler doing blocking work)
            log.error(
                "group %s: handlers of %s did not stop; their records go to the next owner",
                self._group,
                ", ".join(f"{t}[{p}]" for t, p in sorted(lane.tp for lane in lanes)),
                extra={"event": "drain_failed", "group": self._group},
            )
            return
        for (topic, partition), offset in stragglers:
            log.warning(
                "group %s: handler for %s[%d]@%d still running after %.0f s; it is not committed and the "
                "partition's next owner handles it again",
                self._group,
                topic,
                partition,
                offset,
                timeout_s,
                extra={
                    "event": "handler_abandoned",
                    "group": self._group,
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                },
            )

    def release(self, lanes: list[Lane], *, lost: bool) -> None:
        if lost:
            self._running.close_lanes([lane.id for lane in lanes], 0)

    def tick(self) -> None:
        if self._watch is not None:
            self._watch.check(self._running.running())
            self._watch.check_pool(self._running.abandoned(), self._running.threads)

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.stop()

    @property
    def _running(self) -> Dispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the handler processor was not started")
        return self._dispatcher

    def _decode_later(self, record: Record) -> Work:
        return Work(record, decode=self._decode)  # decoded, and retried, on the lane

    def _decode(self, record: Record) -> ConsumedEvent:
        return decode_event(self._serde, record, self._readers.get(record.topic))
