"""The sink processor: records written, in offset order, to a sink that says what is durable (the archive).

The worker drives a sink from its poll thread (rebalance callbacks included), so a sink need not be thread-safe:

    on assignment   start_offsets(): seek to what it returns; it also cleans up leftovers of a crash
    per record      write(), in offset order within a partition
    regularly       maybe_roll(), then commit durable()
    on revocation   flush(revoked), commit their durable() offsets, then release(revoked) (it forgets them)
    on shutdown     flush(), commit durable(), close()

Commit nothing a sink did not report in durable(): that is what makes its output survive a crash.

A record that cannot be decoded is dead-lettered (and counts as written) off the poll thread: the records after
it in its partition wait until the letter is taken, through a broker outage of any length. One the sink cannot
take stops the worker (ProcessingStoppedError) without committing it. While the schema registry is unreachable,
records wait in order (held, not committed; backpressure pauses their partitions) and a probe off the poll thread
tries the registry again with a capped backoff; the worker reports "degraded" meanwhile and goes on by itself once
it answers.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, cast, runtime_checkable

from hubstream.errors import RegistryError, SerdeError
from kafka_consumer.dead_letters import DeadLetterWriter, WriterFactory
from kafka_consumer.events import ConsumedEvent, decode_event
from kafka_consumer.loop_thread import LoopThread
from kafka_consumer.outages import Outage
from kafka_consumer.processing import (
    NOTHING_DURABLE,
    TP,
    Completed,
    Halted,
    Lane,
    ProcessingStoppedError,
    Report,
    WorkerContext,
)
from kafka_consumer.records import Record
from schemas.contracts import Contract
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    def start_offsets(
        self, partitions: list[tuple[str, int]], committed: dict[tuple[str, int], int | None]
    ) -> dict[tuple[str, int], int]:
        """Called on assignment before any record of these partitions is fetched. Returns, per partition, the offset
        to start reading from when it differs from `committed` (e.g. the archive already holds offsets beyond the
        committed one because the process died after the file rename but before the commit). Also deletes leftovers
        (temporary files) of those partitions."""
        ...

    def write(self, event: ConsumedEvent, raw_value: bytes | None, writer_schema: dict[str, Any]) -> None:
        """Accept one record (records of a partition arrive in offset order)."""
        ...

    def durable(self) -> dict[tuple[str, int], int]:
        """Per partition, the next offset after the last record that is durably in the archive (commit point)."""
        ...

    def flush(self, partitions: list[tuple[str, int]] | None = None) -> None:
        """Make everything accepted so far durable (roll the open files); None = all partitions."""
        ...

    def release(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions were revoked: flush them, then forget their state (another member may own them next)."""
        ...

    def discard(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions were lost (another member may already own them): forget them without flushing."""
        ...

    def maybe_roll(self) -> None:
        """Called regularly by the worker: roll files that exceeded their size or age."""
        ...

    def close(self) -> None: ...


class SinkProcessor:
    def __init__(
        self,
        sink: Sink,
        serde: AvroSerde,
        *,
        readers: dict[str, Contract] | None = None,
        dead_letters: WriterFactory | None = None,
    ) -> None:
        self._sink = sink
        self._serde = serde
        self._readers = readers or {}
        self._make_dead_letters = dead_letters
        self._dead_letters: DeadLetterWriter | None = None
        self._loop = LoopThread("hubstream-dead-letters")
        self._writer_schemas: dict[str, dict[str, Any]] = {}
        self._reports: list[Report] = []
        self._halted: set[int] = set()  # lanes that stopped at a record: nothing after it may be written
        self._context: WorkerContext | None = None
        self._held: dict[int, deque[tuple[Lane, Record]]] = {}  # waiting (registry, dead letter), in offset order
        self._lettering: dict[int, tuple[Lane, Record, Future[object]]] = {}  # a dead letter on its way, per lane
        self._registry = Outage("the schema registry", lambda: self._context.health if self._context else None)
        self._probes = ThreadPoolExecutor(1, thread_name_prefix="hubstream-registry-probe")
        self._probe: Future[object] | None = None

    def start(self, context: WorkerContext) -> None:
        self._context = context
        if context.options.dead_letter and self._make_dead_letters is not None:
            self._loop.start()
            self._dead_letters = self._make_dead_letters(
                Outage("the dead-letter topics", lambda: self._context.health if self._context else None)
            )

    def assigned(self, lanes: list[Lane], committed: Callable[[], dict[TP, int | None]]) -> dict[TP, int]:
        at = committed()
        return self._sink.start_offsets([lane.tp for lane in lanes], at)

    def accept(self, records: list[tuple[Lane, Record]]) -> None:
        for lane, record in records:
            if lane.id not in self._halted:
                self._write_or_hold(lane, record)

    def reports(self) -> list[Report]:
        reports, self._reports = self._reports, []
        return reports

    def commit_limit(self, tp: TP) -> int | None:
        return self._sink.durable().get(tp, NOTHING_DURABLE)

    def drain(self, lanes: list[Lane], timeout_s: float) -> None:
        self._sink.flush([lane.tp for lane in lanes])

    def release(self, lanes: list[Lane], *, lost: bool) -> None:
        tps = [lane.tp for lane in lanes]
        self._halted -= {lane.id for lane in lanes}
        for lane in lanes:  # not written, so not committed: the next owner reads them again
            self._held.pop(lane.id, None)
            lettering = self._lettering.pop(lane.id, None)
            if lettering is not None:
                lettering[2].cancel()
        if lost:
            self._sink.discard(tps)
        else:
            self._sink.release(tps)

    def tick(self) -> None:
        self._sink.maybe_roll()
        if self._lettering:
            self._settle_letters()
        if self._registry.down:
            self._retry_held()

    def close(self) -> None:
        self._probes.shutdown(wait=False, cancel_futures=True)
        for _, _, letter in self._lettering.values():
            letter.cancel()  # not committed: read again after a restart
        self._lettering.clear()
        try:
            self._sink.close()
        finally:
            if self._dead_letters is not None:
                self._loop.call(self._dead_letters.close(), 15)
                self._dead_letters = None
            self._loop.stop()

    def _retry_held(self) -> None:
        """When the backoff is over, probe the registry in a thread; once it answers, write what was held."""
        if self._probe is None:
            if self._registry.due() and self._held:
                _, record = next(iter(self._held.values()))[0]
                self._probe = self._probes.submit(self._decode_and_look_up, record)
            elif not self._held:
                self._registry.recovered()  # nothing waits (the partitions went elsewhere)
            return
        if not self._probe.done():
            return
        probe, self._probe = self._probe, None
        error = probe.exception()
        if isinstance(error, RegistryError):
            self._registry.failed(error)
            return
        self._registry.recovered()  # a bad record (SerdeError) is for _write to dead-letter, in its turn
        held, self._held = self._held, {}
        for queue in held.values():
            while queue:
                self._write_or_hold(*queue.popleft())

    def _write_or_hold(self, lane: Lane, record: Record) -> None:
        """Write a record, or hold it (in order) while the registry is down or a dead letter before it is on its way."""
        if self._registry.down or lane.id in self._lettering:
            self._held.setdefault(lane.id, deque()).append((lane, record))
            return
        try:
            self._write(lane, record)
        except RegistryError as exc:
            self._registry.failed(exc)
            self._held.setdefault(lane.id, deque()).append((lane, record))

    def _decode_and_look_up(self, record: Record) -> object:
        event = decode_event(self._serde, record, self._readers.get(record.topic))
        return self._writer_schema(event.schema_id)

    def _write(self, lane: Lane, record: Record) -> None:
        """Write one record; raises RegistryError (nothing written) when the registry cannot be reached."""
        try:
            event = decode_event(self._serde, record, self._readers.get(record.topic))
        except RegistryError:
            raise
        except SerdeError as exc:
            self._dead_letter(lane, record, exc)
            return
        writer_schema = self._writer_schema(event.schema_id)
        try:
            self._sink.write(event, event.body, writer_schema)
        except Exception as exc:
            log.error("%s failed: %s", record.where, exc)
            raise ProcessingStoppedError(record, exc) from exc
        self._reports.append(Completed(lane.id, lane.tp, record.offset))

    def _dead_letter(self, lane: Lane, record: Record, error: SerdeError) -> None:
        if self._dead_letters is None:  # dead letters are off
            raise ProcessingStoppedError(record, error) from error
        letter = self._loop.submit(self._dead_letters.write(record, error, 0))
        self._lettering[lane.id] = (lane, record, cast("Future[object]", letter))

    def _settle_letters(self) -> None:
        """Report the dead letters the broker took, then write what waited behind them in their partitions."""
        for lane_id, (lane, record, letter) in list(self._lettering.items()):
            if not letter.done():
                continue
            del self._lettering[lane_id]
            error = letter.exception()
            if error is not None:  # DeadLetterError: no retry can write it
                self._halted.add(lane.id)
                self._held.pop(lane.id, None)
                self._reports.append(Halted(lane.id, lane.tp, record.offset, str(error)))
                continue
            assert self._context is not None
            self._context.metrics.for_topic(self._context.group, record.topic).dead_lettered.inc()
            self._reports.append(Completed(lane.id, lane.tp, record.offset))
            waiting = self._held.pop(lane.id, deque())
            while waiting:
                self._write_or_hold(*waiting.popleft())

    def _writer_schema(self, schema_id: str) -> dict[str, Any]:
        schema = self._writer_schemas.get(schema_id)
        if schema is None:
            schema = self._writer_schemas[schema_id] = json.loads(self._serde.registry.schema_by_id(schema_id))
        return schema
