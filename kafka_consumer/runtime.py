"""The consumer-group worker: poll, decode, hand each event to its handler, commit only what finished.

Guarantees (at-least-once delivery; effectively-once effects with kafka_consumer.idempotency):
- one owner per partition per group: the group coordinator assigns partitions, members beyond the partition
  count stand by with none and take over when an owner leaves or dies;
- records of a partition are handled in offset order (``key_concurrency`` = 1), or with N > 1 up to N at once
  but never two of the same key, so order holds per key;
- an offset is committed only after its record and every record before it finished (handled, or
  dead-lettered): the commit point is the lowest offset still waiting or in flight, never past it;
- commits are coalesced per partition (kafka_consumer.commits) under a rate cap, and always made on revocation
  and shutdown; librdkafka's auto commit and auto offset store are off;
- a failing handler is retried with backoff (kafka_consumer.failures); a record that still fails, or cannot be
  decoded, goes to the dead-letter topic (kafka_consumer.dead_letters) and counts as finished. If the dead
  letter cannot be written the partition stops there and the worker reports unhealthy: nothing is skipped;
- backpressure: while a partition has ``max_pending_per_partition`` records waiting, nothing more is fetched;
  if it stays full for half a second it is paused (consumer.pause) and resumed at half, and the other
  partitions are fetched again. Memory stays bounded whatever the handlers' speed;
- on revocation: stop starting that partition's records, wait for those in flight (``drain_timeout_ms``),
  commit, then let go. stop() does the same for every partition and leaves the group, so a standby takes over
  without waiting for the session to time out. A handler still running when the wait is over is abandoned:
  its record is not committed and the next owner handles it again.

Threads: this one (run) owns the Kafka consumer, every call on it and the rebalance callbacks; handlers run on
the dispatcher's asyncio loop (kafka_consumer.dispatch). The poll loop never waits on a handler (backpressure
holds it for half a second at most), so ``max.poll.interval.ms`` cannot expire under a slow handler; a handler
running past ``handler_budget_ms`` is logged, and one running past ``max.poll.interval.ms`` marks the worker
unhealthy (stuck).

With a sink (the archive) instead of a handler, records are written on this thread in offset order, an offset
is committed only once the sink reports it durable, and on assignment the sink may move the start offset past
records it already holds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hubstream import kafka_config
from hubstream.errors import BrokerError, ConfigurationError, HubstreamError, RegistryError, SerdeError
from hubstream.settings import Settings
from kafka_consumer.commits import Committer
from kafka_consumer.dead_letters import DeadLetterError, DeadLetterWriter
from kafka_consumer.dispatch import Completed, Dispatcher, Halted, Work
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.handlers import Handler
from kafka_consumer.health import HandlerWatch, Health, WorkerStatus
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.offsets import PartitionOffsets
from kafka_consumer.options import WorkerOptions
from kafka_consumer.sinks import Sink
from kafka_producer.producer import AsyncProducer
from schemas.contracts import Contract
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

TP = tuple[str, int]
ConsumerFactory = Callable[[dict[str, Any]], Consumer]

_POLL_TIMEOUT_S = 0.1
_MAX_BATCH = 500
_OBSERVE_EVERY_S = 1.0
_COMMITTED_ATTEMPTS = 3
_REGISTRY_BACKOFF_S = 5.0
_HOLD_BEFORE_PAUSE_S = 0.5  # a partition full this long is paused
_HOLD_STEP_S = 0.005  # after a failed registry lookup, records are decoded on their lanes for this long
_LEGACY_PREFIX_BYTES = 36  # 4 zero bytes + 32 ASCII chars of schema id


class ProcessingStopped(HubstreamError):
    """The worker stopped on a record it could not process; that record was not committed."""

    def __init__(self, message: Message, reason: BaseException) -> None:
        self.topic, self.partition, self.offset = message.topic(), message.partition(), message.offset()
        super().__init__(
            f"stopped at {self.topic}[{self.partition}]@{self.offset} without committing it: {reason}. "
            "Fix the cause and restart; the record will be delivered again."
        )


@dataclass
class _Owned:
    """A partition this member owns: its lane in the dispatcher and its offsets."""

    lane: int
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    first_offset: int | None = None  # where consumption started: the committed offset at assignment
    asked_committed: bool = False  # the group's committed offset was looked up (for the lag of idle partitions)
    paused: bool = False
    stopped: str | None = None


class ConsumerWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        topics: Sequence[str],
        serde: AvroSerde,
        handler: Handler | None = None,
        sink: Sink | None = None,
        readers: dict[str, Contract] | None = None,
        options: WorkerOptions | None = None,
        consumer_factory: ConsumerFactory = Consumer,
    ) -> None:
        if (handler is None) == (sink is None):
            raise ConfigurationError("a consumer worker needs either a handler or a sink, not both")
        if not topics:
            raise ConfigurationError("a consumer worker needs at least one topic")
        self.group = group
        self.topics = list(topics)
        self.options = options or WorkerOptions.from_settings(settings)
        self.metrics = WorkerMetrics()
        self._settings = settings
        self._handler = handler
        self._sink = sink
        self._serde = serde
        self._readers = readers or {}
        self._writer_schemas: dict[str, dict[str, Any]] = {}
        self._config = kafka_config.consumer_config(settings, group)
        self._consumer_factory = consumer_factory
        self._stop = threading.Event()
        self._owned: dict[TP, _Owned] = {}
        self._next_lane = 0
        self._committer = Committer(group, self.options.commit, self.metrics)
        self._last_observe = 0.0
        self._registry_down_until = 0.0
        self._full_since: float | None = None
        self.health = Health(group, stall_after_s=max(30.0, 2 * self.options.drain_timeout_s + 10))
        self._handler_watch = HandlerWatch(self.health, self.options.handler_budget_s, self.options.stuck_after_s,
                                           self.options.drain_timeout_s)
        self._dispatcher = Dispatcher(
            group=group,
            handler=handler,
            retry=self.options.retry,
            dead_letters=self._dead_letter_writer if self.options.dead_letter else None,
            concurrency=self.options.key_concurrency,
            threads=self.options.handler_threads,
            metrics=self.metrics,
        )
        self._consumer: Consumer | None = None

    def stop(self) -> None:
        """Ask the worker to finish what is in flight, commit and leave the group (thread and signal safe)."""
        self._stop.set()

    @property
    def member_id(self) -> str | None:
        return self.health.member_id

    @property
    def abandoned_handlers(self) -> int:
        """Plain handlers still running after their partition was let go (their threads cannot be stopped)."""
        return self._dispatcher.abandoned_threads

    @property
    def assigned(self) -> set[TP]:
        return set(self.health.assigned)

    def status(self) -> WorkerStatus:
        return self.health.status()

    def _dead_letter_writer(self) -> DeadLetterWriter:
        producer = AsyncProducer(kafka_config.producer_config(self._settings))
        return DeadLetterWriter(producer, group=self.group, suffix=self.options.dead_letter_suffix)

    # --- the poll loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stop() is called. Raises BrokerError on a fatal client error, and (with a sink)
        ProcessingStopped on a record the sink cannot take."""
        self._dispatcher.start()
        consumer = self._consumer_factory({**self._config, "error_cb": self._on_client_error})
        self._consumer = consumer
        try:
            consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                               on_lost=self._on_lost)
            log.info("group %s: subscribed to %s", self.group, ", ".join(self.topics),
                     extra={"event": "subscribed", "group": self.group, "topics": self.topics})
            while not self._stop.is_set():
                if self._holding():
                    continue
                try:
                    messages = consumer.consume(self._batch_size(), timeout=_POLL_TIMEOUT_S)
                except KafkaException as exc:  # fatal: e.g. fenced, or authentication that can never succeed
                    raise BrokerError(f"group {self.group}: the consumer failed: {exc.args[0].str()}") from exc
                self.health.polled()
                batch: list[tuple[int, Work]] = []
                for message in messages:
                    self._accept(message, batch)
                self._dispatcher.submit(batch)
                self._after_poll()
            self._shutdown()
        except BaseException as exc:
            self.health.fatal = f"{exc.__class__.__name__}: {exc}"
            raise
        finally:
            self.health.stopping = True
            try:
                consumer.close()  # leaves the group: partitions move to another member without waiting for a timeout
            finally:
                self._consumer = None
                self._dispatcher.stop()
                if self._sink is not None:
                    self._sink.close()
                self.health.stopped = True
                log.info("group %s: left the group", self.group, extra={"event": "left_group", "group": self.group})

    def _batch_size(self) -> int:
        return max(1, min(_MAX_BATCH, self.options.max_pending_per_partition))

    def _after_poll(self) -> None:
        self._take_reports()
        self._apply_backpressure()
        self._commit_due()
        now = time.monotonic()
        if now - self._last_observe >= _OBSERVE_EVERY_S:
            self._last_observe = now
            self._observe()

    def _shutdown(self) -> None:
        self.health.stopping = True
        self._drain(set(self._owned), "shutdown")
        if self._sink is not None:
            self._sink.flush()
        self._commit(force=True)

    # --- records ----------------------------------------------------------------------------------------

    def _accept(self, message: Message, batch: list[tuple[int, Work]]) -> None:
        """Track a fetched record and write it to the sink, or add it to the batch for the dispatcher."""
        error = message.error()
        if error is not None:
            self._on_message_error(error)
            return
        tp = (message.topic(), message.partition())
        owned = self._owned.get(tp)
        if owned is None or owned.stopped:
            return  # fetched before a revocation or a stop took effect; the next owner reads it again
        offset = message.offset()
        if owned.offsets.seen(offset):
            return  # fetched before a quick revoke and re-assign took effect; it was dispatched already
        if owned.first_offset is None:
            owned.first_offset = offset
        owned.offsets.started(offset)
        self.metrics.for_topic(self.group, tp[0]).consumed.inc()
        if self._sink is not None:
            self._write_to_sink(message, owned)
            return
        batch.append((owned.lane, self._work(message)))

    def _work(self, message: Message) -> Work:
        if time.monotonic() < self._registry_down_until:
            return self._decode_later(message)  # the registry just failed: do not make this thread wait again
        try:
            return Work(message, event=self._decode(message)[0])
        except RegistryError:
            self._registry_down_until = time.monotonic() + _REGISTRY_BACKOFF_S
            return self._decode_later(message)
        except SerdeError as exc:
            return Work(message, poison=exc)

    def _decode_later(self, message: Message) -> Work:
        return Work(message, decode=lambda m: self._decode(m)[0])  # decoded, and retried, on the lane

    def _decode(self, message: Message) -> tuple[ConsumedEvent, bytes]:
        """The event, and the plain Avro body (without the legacy format's id prefix)."""
        value = message.value()
        decoded = self._serde.decode(value, message.headers(), reader=self._readers.get(message.topic()))
        body = value[_LEGACY_PREFIX_BYTES:] if decoded.format == "legacy" else value
        _, timestamp = message.timestamp()
        event = ConsumedEvent(
            value=decoded.record,
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            timestamp_ms=timestamp,
            schema_id=decoded.schema_id,
            schema_name=decoded.writer_schema_name,
            headers=list(message.headers() or []),
        )
        return event, body

    def _write_to_sink(self, message: Message, owned: _Owned) -> None:
        assert self._sink is not None
        offset = message.offset()
        try:
            event, body = self._decode(message)
        except RegistryError as exc:
            raise ProcessingStopped(message, exc) from exc
        except SerdeError as exc:
            try:
                self._dispatcher.dead_letter(message, exc, 0)
            except DeadLetterError as dlq_exc:
                self._stop_partition((message.topic(), message.partition()), offset, str(dlq_exc))
                return
            except SerdeError as off:  # dead letters are off
                raise ProcessingStopped(message, off) from off
            owned.offsets.finished(offset)
            self._committer.schedule.completed((message.topic(), message.partition()))
            return
        try:
            self._sink.write(event, body, self._writer_schema(event.schema_id))
        except Exception as exc:
            log.error("group %s: %s[%d]@%d failed: %s", self.group, message.topic(), message.partition(), offset, exc)
            raise ProcessingStopped(message, exc) from exc
        owned.offsets.finished(offset)
        self._committer.schedule.completed((message.topic(), message.partition()))

    def _writer_schema(self, schema_id: str) -> dict[str, Any]:
        schema = self._writer_schemas.get(schema_id)
        if schema is None:
            schema = self._writer_schemas[schema_id] = json.loads(self._serde.registry.schema_by_id(schema_id))
        return schema

    def _take_reports(self) -> None:
        """Apply what the dispatcher reported: finished offsets and stopped partitions."""
        reports = self._dispatcher.reports
        while not reports.empty():
            report = reports.get_nowait()
            owned = self._owned.get(report.tp)
            if owned is None or owned.lane != report.lane:
                continue  # from a lane of an earlier assignment
            if isinstance(report, Completed):
                owned.offsets.finished(report.offset)
                self._committer.schedule.completed(report.tp)
            elif isinstance(report, Halted):
                self._stop_partition(report.tp, report.offset, report.reason)

    def _stop_partition(self, tp: TP, offset: int, reason: str) -> None:
        owned = self._owned[tp]
        if owned.stopped:
            return
        owned.stopped = reason
        self.health.stopped_partitions = {**self.health.stopped_partitions, tp: f"at offset {offset}: {reason}"}
        if not owned.paused and self._consumer is not None:
            self._consumer.pause([TopicPartition(*tp)])
            owned.paused = True

    def _on_message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise BrokerError(f"fatal consumer error: {error.str()}")
        # e.g. a subscribed topic that does not exist yet; librdkafka keeps retrying
        log.warning("group %s: %s", self.group, error.str(), extra={"event": "consumer_error", "group": self.group})

    def _on_client_error(self, error: KafkaError) -> None:
        log.warning("group %s: kafka client error: %s", self.group, error.str(),
                    extra={"event": "client_error", "group": self.group})

    # --- backpressure -----------------------------------------------------------------------------------

    def _holding(self) -> bool:
        """Backpressure. While a partition has max_pending_per_partition records waiting, stop fetching for a
        moment (the handlers usually catch up at once); if it stays full for HOLD_BEFORE_PAUSE_S, pause it and
        fetch the others again. Pausing costs more than holding: librdkafka drops what it prefetched for the
        partition and fetches it again on resume."""
        high = self.options.max_pending_per_partition
        full = [tp for tp, owned in self._owned.items() if not owned.paused and owned.offsets.in_flight >= high]
        if not full:
            self._full_since = None
            return False
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
        if now - self._full_since < _HOLD_BEFORE_PAUSE_S:
            time.sleep(_HOLD_STEP_S)
            self.health.polled()
            self._after_poll()
            return True
        self._full_since = None
        if self._consumer is not None:
            self._consumer.pause([TopicPartition(*tp) for tp in full])
            for tp in full:
                self._owned[tp].paused = True
        return False

    def _apply_backpressure(self) -> None:
        """Resume paused partitions that drained to half their bound (pausing is _holding's)."""
        if self._consumer is None:
            return
        high = self.options.max_pending_per_partition
        resume = []
        for tp, owned in self._owned.items():
            if owned.paused and not owned.stopped and owned.offsets.in_flight <= high // 2:
                resume.append(TopicPartition(*tp))
                owned.paused = False
        if resume:
            self._consumer.resume(resume)

    # --- commits ----------------------------------------------------------------------------------------

    def _commit_due(self) -> None:
        if self._sink is not None:
            self._sink.maybe_roll()
        self._commit()

    def _commit_points(self, only: set[TP] | None) -> dict[TP, int]:
        """Per partition, the offset that may be committed now, limited by the sink's durability."""
        durable = self._sink.durable() if self._sink is not None else {}
        points = {}
        for tp, owned in self._owned.items():
            if only is not None and tp not in only:
                continue
            point = owned.offsets.committable
            if point is None:
                continue
            if self._sink is not None:
                if tp not in durable:
                    continue
                point = min(point, durable[tp])
                if point == owned.offsets.committed:
                    continue
            points[tp] = point
        return points

    def _commit(self, *, force: bool = False, only: set[TP] | None = None) -> None:
        if self._consumer is None:
            return
        for tp, offset in self._committer.commit(self._consumer, self._commit_points(only), force=force).items():
            if tp in self._owned:
                self._owned[tp].offsets.mark_committed(offset)

    # --- observation: lag, slow and stuck handlers --------------------------------------------------------

    def _observe(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        self.health.member_id = consumer.memberid() or self.health.member_id
        self._learn_committed(consumer)
        paused = 0
        for (topic, partition), owned in self._owned.items():
            paused += owned.paused
            self.metrics.pending.labels(self.group, topic, str(partition)).set(owned.offsets.in_flight)
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            if high < 0:
                continue  # nothing fetched yet
            checkpoint = owned.offsets.committed if owned.offsets.committed is not None else owned.first_offset
            if checkpoint is not None:
                self.metrics.lag.labels(self.group, topic, str(partition)).set(max(0, high - checkpoint))
            position = owned.offsets.commit_point
            position = checkpoint if position is None else position
            if position is not None:
                self.metrics.processing_lag.labels(self.group, topic, str(partition)).set(max(0, high - position))
        self.metrics.assigned.labels(self.group).set(len(self._owned))
        self.metrics.paused.labels(self.group).set(paused)
        self._handler_watch.check(self._dispatcher.running())

    def _learn_committed(self, consumer: Consumer) -> None:
        """Ask once per assignment for the committed offset of partitions that have fetched nothing yet."""
        unknown = [tp for tp, o in self._owned.items()
                   if not o.asked_committed and o.first_offset is None and o.offsets.committed is None]
        if not unknown:
            return
        try:
            answers = consumer.committed([TopicPartition(*tp) for tp in unknown], timeout=5)
        except KafkaException as exc:
            log.debug("group %s: committed offsets not known yet: %s", self.group, exc)
            return
        for answer in answers:
            owned = self._owned.get((answer.topic, answer.partition))
            if owned is None:
                continue
            owned.asked_committed = True
            if answer.error is None and answer.offset >= 0 and owned.offsets.committed is None:
                owned.offsets.mark_committed(answer.offset)

    def _log_stragglers(self, stragglers: list[tuple[TP, int]], when: str) -> None:
        for (topic, partition), offset in stragglers:
            log.warning(
                "group %s: handler for %s[%d]@%d still running after %.0f s at %s; it is not committed and the "
                "partition's next owner handles it again", self.group, topic, partition, offset,
                self.options.drain_timeout_s, when,
                extra={"event": "handler_abandoned", "group": self.group, "topic": topic, "partition": partition,
                       "offset": offset},
            )

    # --- rebalance callbacks (run inside consume(), on this thread) ------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels(self.group, "assign").inc()
        new = [tp for tp in partitions if (tp.topic, tp.partition) not in self._owned]
        for tp in new:
            self._next_lane += 1
            self._owned[(tp.topic, tp.partition)] = _Owned(self._next_lane)
            self._dispatcher.open_lane(self._next_lane, (tp.topic, tp.partition))
        self._changed_assignment(consumer)
        if self._sink is not None and new:
            self._start_sink(consumer, new)
        self._log_rebalance("assigned", consumer, partitions, "nothing (standby)")

    def _start_sink(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start where the sink's durable output ends when it holds more than the group committed."""
        assert self._sink is not None
        committed = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                     for tp in self._committed_now(consumer, partitions)}
        starts = self._sink.start_offsets(list(committed), committed)
        if not starts:
            return
        for tp in partitions:
            start = starts.get((tp.topic, tp.partition))
            if start is not None:
                tp.offset = start
                # the skipped records are durable in the sink: commit up to the start even if nothing follows
                self._owned[(tp.topic, tp.partition)].offsets.start_at(start)
        log.info("group %s: resuming from the sink's durable output: %s", self.group, starts)
        if "cooperative" in str(self._config.get("partition.assignment.strategy")):
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _committed_now(self, consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The committed offsets, asked a few times: right after a rebalance the coordinator may not answer yet."""
        for attempt in range(1, _COMMITTED_ATTEMPTS + 1):
            try:
                return consumer.committed(partitions, timeout=15)
            except KafkaException as exc:
                if attempt == _COMMITTED_ATTEMPTS:
                    raise BrokerError(f"group {self.group}: the committed offsets of {_names(partitions)} could not "
                                      f"be read ({exc.args[0].str()}); the sink cannot start safely") from exc
                time.sleep(attempt)
        raise AssertionError("unreachable")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels(self.group, "revoke").inc()
        revoked = {(tp.topic, tp.partition) for tp in partitions} & set(self._owned)
        try:
            self._drain(revoked, "revocation")
            if self._sink is not None:
                self._sink.flush(list(revoked))
            self._commit(force=True, only=revoked)
            if self._sink is not None:
                self._sink.release(list(revoked))
        finally:
            self._release(consumer, revoked)  # librdkafka lets go of them whatever happened here
        self._log_rebalance("revoked", consumer, partitions, "nothing")

    def _drain(self, partitions: set[TP], when: str) -> None:
        """Close the partitions' lanes, waiting (bounded) for their handlers, and apply what they reported."""
        lanes = [self._owned[tp].lane for tp in partitions]
        try:
            stragglers = self._dispatcher.close_lanes(lanes, self.options.drain_timeout_s)
        except TimeoutError:  # the dispatcher's loop is blocked (an async handler doing blocking work)
            log.error("group %s: handlers of %s did not stop at %s; their records go to the next owner",
                      self.group, _names([TopicPartition(*tp) for tp in sorted(partitions)]), when,
                      extra={"event": "drain_failed", "group": self.group})
            stragglers = []
        self._log_stragglers(stragglers, when)
        self._take_reports()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # another member may already own these: committing now could rewind its progress
        self.metrics.rebalances.labels(self.group, "lost").inc()
        lost = {(tp.topic, tp.partition) for tp in partitions} & set(self._owned)
        self._dispatcher.close_lanes([self._owned[tp].lane for tp in lost], 0)
        if self._sink is not None:
            self._sink.discard(list(lost))
        self._release(consumer, lost)
        log.warning("group %s: member %s lost %s", self.group, consumer.memberid(), _names(partitions),
                    extra={"event": "partitions_lost", "group": self.group, "member_id": consumer.memberid(),
                           "partitions": _names(partitions).split(", ")})

    def _release(self, consumer: Consumer, partitions: set[TP]) -> None:
        # librdkafka keeps a partition paused across reassignment: resume before letting go
        paused = [TopicPartition(*tp) for tp in partitions if self._owned[tp].paused]
        if paused:
            consumer.resume(paused)
        for tp in partitions:
            self._owned.pop(tp, None)
            self._committer.schedule.forget(tp)
            self.metrics.remove_partition(self.group, *tp)
        self.health.stopped_partitions = {tp: r for tp, r in self.health.stopped_partitions.items()
                                          if tp not in partitions}
        self._changed_assignment(consumer)

    def _changed_assignment(self, consumer: Consumer) -> None:
        self.health.assigned = frozenset(self._owned)
        self.health.member_id = consumer.memberid() or self.health.member_id
        self.health.joined = True
        self.metrics.assigned.labels(self.group).set(len(self._owned))

    def _log_rebalance(self, what: str, consumer: Consumer, partitions: list[TopicPartition], empty: str) -> None:
        member = consumer.memberid()
        names = _names(partitions)
        log.info("group %s: member %s %s %s; owns %s", self.group, member, what, names or empty,
                 _names([TopicPartition(*tp) for tp in sorted(self._owned)]) or "nothing",
                 extra={"event": f"partitions_{what}", "group": self.group, "member_id": member,
                        "partitions": names.split(", ") if names else [],
                        "owned": [f"{t}[{p}]" for t, p in sorted(self._owned)]})


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)

