"""The consumer-group worker: poll, hand records to a processor, commit only what it finished.

Guarantees (at-least-once delivery; effectively-once effects with kafka_consumer.idempotency):
- one owner per partition per group: the group coordinator assigns partitions; members beyond the partition
  count stand by with none and take over when an owner leaves or dies;
- an offset is committed only after its record and every record before it finished (the processor reported
  it Completed), and never past the processor's commit limit (a sink's durable point);
- commits are coalesced per partition (kafka_consumer.commits) under a rate cap, and always made on revocation
  and shutdown; librdkafka's auto commit and auto offset store are off;
- backpressure (kafka_consumer.partitions) bounds the records waiting per partition;
- on revocation: the processor drains the partitions (bounded by ``drain_timeout_ms``), they are committed,
  then let go. stop() does the same for every partition and leaves the group, so a standby takes over without
  waiting for the session to time out. Lost partitions are let go without a commit (another member may own them).

Threads: this one (run) owns the Kafka consumer, every call on it and the rebalance callbacks; a processor runs
its work where it likes (kafka_consumer.processing) and never makes this thread wait long, so
``max.poll.interval.ms`` cannot expire under slow processing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from hubstream import kafka_config
from hubstream.errors import BrokerError, ConfigurationError
from hubstream.settings import Settings
from kafka_consumer.broker_offsets import committed_offsets, observe_lag
from kafka_consumer.client_errors import check_record_error, client_error_logger
from kafka_consumer.commits import Committer
from kafka_consumer.health import Health, WorkerStatus, log_rebalance
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.options import WorkerOptions
from kafka_consumer.partitions import Backpressure, OwnedPartitions
from kafka_consumer.processing import TP, Halted, Lane, Processor, WorkerContext
from kafka_consumer.records import Record, record_of

log = logging.getLogger(__name__)

ConsumerFactory = Callable[[dict[str, Any]], Consumer]

_POLL_TIMEOUT_S = 0.1
_MAX_BATCH = 500
_OBSERVE_EVERY_S = 1.0
_HOLD_STEP_S = 0.005


class ConsumerWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        topics: Sequence[str],
        processor: Processor,
        options: WorkerOptions | None = None,
        consumer_factory: ConsumerFactory = Consumer,
        resources: ExitStack | None = None,
    ) -> None:
        if not topics:
            raise ConfigurationError("a consumer worker needs at least one topic")
        self.group, self.topics, self.processor = group, list(topics), processor
        self.options = options or WorkerOptions.from_settings(settings)
        self.metrics = WorkerMetrics()
        self.health = Health(group, stall_after_s=max(30.0, 2 * self.options.drain_timeout_s + 10))
        self._config = kafka_config.consumer_config(settings, group)
        self._consumer_factory = consumer_factory
        self._resources = resources or ExitStack()  # closed when run() ends (e.g. the registry client)
        self._stop = threading.Event()
        self._owned = OwnedPartitions()
        self._backpressure = Backpressure(self._owned, self.options.max_pending_per_partition)
        self._committer = Committer(group, self.options.commit, self.metrics)
        self._last_observe = 0.0
        self._consumer: Consumer | None = None

    def stop(self) -> None:
        """Ask the worker to finish what is in flight, commit and leave the group (thread and signal safe)."""
        self._stop.set()

    @property
    def assigned(self) -> set[TP]:
        return set(self.health.assigned)

    def status(self) -> WorkerStatus:
        return self.health.status()

    def run(self) -> None:
        """Consume until stop() is called. Raises BrokerError on a fatal client error, and whatever the processor
        raises to stop the worker (e.g. ProcessingStoppedError)."""
        with self._resources:
            self.processor.start(WorkerContext(self.group, self.options, self.metrics, self.health))
            config = {**self._config, "error_cb": client_error_logger(self.group)}
            consumer = self._consumer = self._consumer_factory(config)
            try:
                consumer.subscribe(
                    self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
                )
                log.info(
                    "group %s: subscribed to %s",
                    self.group,
                    ", ".join(self.topics),
                    extra={"event": "subscribed", "group": self.group, "topics": self.topics},
                )
                while not self._stop.is_set():
                    self._poll_once(consumer)
                self.health.stopping = True
                self._let_go(set(self._owned.tps))
            except BaseException as exc:
                self.health.fatal = f"{exc.__class__.__name__}: {exc}"
                raise
            finally:
                self.health.stopping = True
                try:
                    consumer.close()  # leaves the group: partitions move without waiting for a session timeout
                finally:
                    self._consumer = None
                    self.processor.close()
                    self.health.stopped = True
                    log.info("group %s: left the group", self.group, extra={"event": "left_group", "group": self.group})

    def _poll_once(self, consumer: Consumer) -> None:
        hold, pause = self._backpressure.check()
        self._owned.pause(consumer, pause)
        if hold:
            time.sleep(_HOLD_STEP_S)
        else:
            self._accept(self._fetch(consumer))
        self.health.polled()
        self._take_reports()
        self._owned.resume(consumer, self._backpressure.to_resume())
        self._commit()
        if time.monotonic() - self._last_observe >= _OBSERVE_EVERY_S:
            self._last_observe = time.monotonic()
            self.processor.tick()
            self.health.member_id = consumer.memberid() or self.health.member_id
            observe_lag(self.group, consumer, self._owned, self.metrics)

    def _fetch(self, consumer: Consumer) -> list[Message]:
        """Wait (bounded) for one record, then take what else is there without waiting: consume(n, timeout) alone
        would hold a lone record until n arrived or the timeout passed, adding up to the timeout to its latency."""
        batch = max(1, min(_MAX_BATCH, self.options.max_pending_per_partition))
        try:
            messages = consumer.consume(1, timeout=_POLL_TIMEOUT_S)
            if messages and batch > 1:
                messages += consumer.consume(batch - 1, timeout=0)
        except KafkaException as exc:  # fatal: e.g. fenced, or authentication that can never succeed
            raise BrokerError(f"group {self.group}: the consumer failed: {exc.args[0].str()}") from exc
        return messages

    def _accept(self, messages: list[Message]) -> None:
        records: list[tuple[Lane, Record]] = []
        track = self._owned.track
        for message in messages:
            error = message.error()
            if error is not None:
                check_record_error(self.group, error)
                continue
            record = record_of(message)
            lane = track(record)
            if lane is not None:
                records.append((lane, record))
        if records:
            self._count_consumed(records)
            self.processor.accept(records)

    def _count_consumed(self, records: list[tuple[Lane, Record]]) -> None:
        """One increment per topic and batch (a labelled series costs a lock per inc)."""
        topic, count = records[0][0].tp[0], 0
        for lane, _ in records:
            if lane.tp[0] != topic:
                self.metrics.for_topic(self.group, topic).consumed.inc(count)
                topic, count = lane.tp[0], 0
            count += 1
        self.metrics.for_topic(self.group, topic).consumed.inc(count)

    def _take_reports(self) -> None:
        completed: dict[TP, int] = {}  # counted for the commit schedule once per partition, not per record
        apply = self._owned.apply
        for report in self.processor.reports():
            if apply(report) is None:
                continue
            if not isinstance(report, Halted):
                completed[report.tp] = completed.get(report.tp, 0) + 1
            elif self._owned.stop(self._consumer, report.tp, f"at offset {report.offset}: {report.reason}"):
                self.health.stopped_partitions = self._owned.stopped()
        for tp, count in completed.items():
            self._committer.schedule.completed(tp, count)

    def _commit(self, *, force: bool = False, only: set[TP] | None = None) -> None:
        if self._consumer is not None:
            self._committer.commit_owned(
                self._consumer, self._owned, self.processor.commit_limit, force=force, only=only
            )

    # --- rebalance callbacks (run inside consume(), on this thread) ------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels(self.group, "assign").inc()
        new = [tp for tp in partitions if (tp.topic, tp.partition) not in self._owned.tps]
        lanes = [lane for tp in new if (lane := self._owned.add((tp.topic, tp.partition))) is not None]
        self._changed_assignment(consumer)
        if lanes:
            starts = self.processor.assigned(
                lanes, lambda: committed_offsets(consumer, self.group, [lane.tp for lane in lanes])
            )
            if starts:
                cooperative = "cooperative" in str(self._config.get("partition.assignment.strategy"))
                self._owned.start_at(consumer, new, starts, cooperative=cooperative)
                log.info("group %s: resuming from the processor's durable output: %s", self.group, starts)
        log_rebalance(self.group, "assigned", consumer.memberid(), partitions, self._owned.tps, "nothing (standby)")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels(self.group, "revoke").inc()
        self._let_go({(tp.topic, tp.partition) for tp in partitions} & self._owned.tps)
        log_rebalance(self.group, "revoked", consumer.memberid(), partitions, self._owned.tps, "nothing")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # another member may already own these: committing now could rewind its progress
        self.metrics.rebalances.labels(self.group, "lost").inc()
        lost = {(tp.topic, tp.partition) for tp in partitions} & self._owned.tps
        self._release(self._owned.lanes(lost), lost=True)
        log_rebalance(self.group, "lost", consumer.memberid(), partitions, self._owned.tps, "nothing")

    def _let_go(self, tps: set[TP]) -> None:
        """Drain the partitions (bounded), commit what finished, then release them."""
        lanes = self._owned.lanes(tps)
        try:
            self.processor.drain(lanes, self.options.drain_timeout_s)
            self._take_reports()
            self._commit(force=True, only=tps)
        finally:
            self._release(lanes, lost=False)  # librdkafka lets go of them whatever happened here

    def _release(self, lanes: list[Lane], *, lost: bool) -> None:
        self.processor.release(lanes, lost=lost)
        tps = {lane.tp for lane in lanes}
        if self._consumer is not None:
            self._owned.resume(self._consumer, tps)  # librdkafka keeps a partition paused across reassignment
        self._owned.remove(tps)
        for tp in tps:
            self._committer.schedule.forget(tp)
            self.metrics.remove_partition(self.group, *tp)
        self.health.stopped_partitions = self._owned.stopped()
        if self._consumer is not None:
            self._changed_assignment(self._consumer)

    def _changed_assignment(self, consumer: Consumer) -> None:
        self.health.assigned = self._owned.tps
        self.health.member_id = consumer.memberid() or self.health.member_id
        self.health.joined = True
        self.metrics.assigned.labels(self.group).set(len(self._owned))
