"""The consumer-group worker: poll, decode, hand each event to the handler, commit only what finished.

Guarantees:
- one owner per partition per group (the group coordinator assigns partitions);
- records of a partition are handled one after another, in offset order;
- an offset is committed only after the handler returned for it and every record before it
  (at-least-once: a crash re-delivers what was not committed);
- commits are coalesced (at most one per ``commit_interval_s``) and always made on revocation and shutdown;
- stop() lets the record in hand finish, commits, and leaves the group so a standby takes over at once.

A record that cannot be decoded, or whose handler raises, stops the worker without committing it, so
nothing is skipped; restarting re-delivers it.

With a sink (e.g. the archive) instead of a handler, an offset is committed only once the sink reports the
record durable, and on assignment the sink may move the start offset past records it already holds.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hubstream import kafka_config
from hubstream.errors import BrokerError, ConfigurationError, HubstreamError
from hubstream.settings import Settings
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.handlers import Handler
from kafka_consumer.offsets import PartitionOffsets
from kafka_consumer.sinks import Sink
from schemas.contracts import Contract
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

_POLL_TIMEOUT_S = 0.2
_LEGACY_PREFIX_BYTES = 36  # 4 zero bytes + 32 ASCII chars of schema id


class ProcessingStopped(HubstreamError):
    """The worker stopped on a record it could not process; that record was not committed."""

    def __init__(self, message: Message, reason: BaseException) -> None:
        self.topic, self.partition, self.offset = message.topic(), message.partition(), message.offset()
        super().__init__(
            f"stopped at {self.topic}[{self.partition}]@{self.offset} without committing it: {reason}. "
            "Fix the cause and restart; the record will be delivered again."
        )


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
        commit_interval_s: float = 0.5,
    ) -> None:
        if (handler is None) == (sink is None):
            raise ConfigurationError("a consumer worker needs either a handler or a sink, not both")
        self.group = group
        self.topics = list(topics)
        self._handler = handler
        self._sink = sink
        self._writer_schemas: dict[str, dict[str, Any]] = {}
        self._is_async = handler is not None and inspect.iscoroutinefunction(handler)
        self._serde = serde
        self._readers = readers or {}
        self._commit_interval_s = commit_interval_s
        self._config = kafka_config.consumer_config(settings, group)
        self._offsets: dict[tuple[str, int], PartitionOffsets] = {}
        self._stop = threading.Event()
        self._last_commit = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self.assigned: set[tuple[str, int]] = set()

    def stop(self) -> None:
        """Ask the worker to finish the record in hand, commit and leave the group (thread/signal safe)."""
        self._stop.set()

    @property
    def member_id(self) -> str | None:
        return self._consumer.memberid() if self._consumer else None

    def run(self) -> None:
        """Consume until stop() is called; raises ProcessingStopped on a record it cannot process."""
        consumer = Consumer({**self._config, "error_cb": self._on_client_error})
        self._consumer = consumer
        self._loop = asyncio.new_event_loop() if self._is_async else None
        consumer.subscribe(
            self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("group %s: subscribed to %s", self.group, ", ".join(self.topics))
        try:
            while not self._stop.is_set():
                message = consumer.poll(_POLL_TIMEOUT_S)
                if message is not None:
                    self._process(message)
                self._commit_if_due()
            if self._sink is not None:
                self._sink.flush()
            self._commit(force=True)
        finally:
            if self._sink is not None:
                self._sink.close()
            consumer.close()  # leaves the group: partitions move to another member without waiting for a timeout
            self._consumer = None
            if self._loop is not None:
                self._loop.close()
            log.info("group %s: left the group", self.group)

    def _process(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._on_message_error(error)
            return
        tp = (message.topic(), message.partition())
        offsets = self._offsets.setdefault(tp, PartitionOffsets())
        offsets.started(message.offset())
        try:
            event, body = self._decode(message)
            if self._sink is not None:
                self._sink.write(event, body, self._writer_schema(event.schema_id))
            else:
                self._call_handler(event)
        except Exception as exc:
            log.error("group %s: %s[%d]@%d failed: %s", self.group, *tp, message.offset(), exc)
            raise ProcessingStopped(message, exc) from exc
        offsets.finished(message.offset())

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

    def _writer_schema(self, schema_id: str) -> dict[str, Any]:
        schema = self._writer_schemas.get(schema_id)
        if schema is None:
            schema = self._writer_schemas[schema_id] = json.loads(self._serde.registry.schema_by_id(schema_id))
        return schema

    def _call_handler(self, event: ConsumedEvent) -> None:
        result: Any = self._handler(event)
        if self._loop is not None and inspect.isawaitable(result):
            self._loop.run_until_complete(result)

    def _on_message_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise BrokerError(f"fatal consumer error: {error.str()}")
        # e.g. a subscribed topic that does not exist yet; librdkafka keeps retrying
        log.warning("group %s: %s", self.group, error.str())

    def _on_client_error(self, error: KafkaError) -> None:
        log.warning("group %s: kafka client error: %s", self.group, error.str())

    # --- commits -----------------------------------------------------------------------------------

    def _commit_if_due(self) -> None:
        if time.monotonic() - self._last_commit >= self._commit_interval_s:
            if self._sink is not None:
                self._sink.maybe_roll()
            self._commit()

    def _commit_points(self) -> dict[tuple[str, int], int]:
        """Per partition, the offset that may be committed now (None-free), limited by the sink's durability."""
        durable = self._sink.durable() if self._sink is not None else {}
        points = {}
        for tp, offsets in self._offsets.items():
            point = offsets.committable
            if point is None:
                continue
            if self._sink is not None:
                if tp not in durable:
                    continue
                point = min(point, durable[tp])
                if point == offsets.committed:
                    continue
            points[tp] = point
        return points

    def _commit(self, *, force: bool = False, only: set[tuple[str, int]] | None = None) -> None:
        pending = [
            TopicPartition(topic, partition, point)
            for (topic, partition), point in self._commit_points().items()
            if only is None or (topic, partition) in only
        ]
        self._last_commit = time.monotonic()
        if not pending or self._consumer is None:
            return
        try:
            results = self._consumer.commit(offsets=pending, asynchronous=False) or []
        except KafkaException as exc:
            # e.g. a rebalance in progress: the offsets stay pending and the next commit retries them
            level = logging.ERROR if force else logging.WARNING
            log.log(level, "group %s: commit failed: %s", self.group, exc.args[0].str())
            return
        for tp in results:
            if tp.error is None:
                self._offsets[(tp.topic, tp.partition)].mark_committed(tp.offset)
            else:
                log.warning("group %s: commit of %s[%d] failed: %s", self.group, tp.topic, tp.partition, tp.error)

    # --- rebalance callbacks (run inside poll, on this thread) ---------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.add((tp.topic, tp.partition))
        if self._sink is not None and partitions:
            self._start_sink(consumer, partitions)
        log.info(
            "group %s: member %s assigned %s", self.group, consumer.memberid(), _names(partitions) or "nothing (standby)"
        )

    def _start_sink(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start where the sink's durable output ends when it holds more than the group committed."""
        assert self._sink is not None
        committed = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                     for tp in consumer.committed(partitions, timeout=15)}
        starts = self._sink.start_offsets(list(committed), committed)
        if not starts:
            return
        for tp in partitions:
            start = starts.get((tp.topic, tp.partition))
            if start is not None:
                tp.offset = start
        log.info("group %s: resuming from the sink's durable output: %s", self.group, starts)
        if self._config.get("partition.assignment.strategy") == "cooperative-sticky":
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if self._sink is not None:
            self._sink.flush(list(revoked))
        self._commit(force=True, only=revoked)  # nothing is in flight: processing is on this thread
        if self._sink is not None:
            self._sink.release(list(revoked))
        self._forget(revoked)
        log.info("group %s: member %s revoked %s", self.group, consumer.memberid(), _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # another member may already own these: committing now could rewind its progress
        lost = {(tp.topic, tp.partition) for tp in partitions}
        if self._sink is not None:
            self._sink.discard(list(lost))
        self._forget(lost)
        log.warning("group %s: member %s lost %s", self.group, consumer.memberid(), _names(partitions))

    def _forget(self, partitions: set[tuple[str, int]]) -> None:
        for tp in partitions:
            self._offsets.pop(tp, None)
            self.assigned.discard(tp)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)

