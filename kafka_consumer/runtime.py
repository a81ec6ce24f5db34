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
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hubstream import kafka_config
from hubstream.errors import BrokerError, HubstreamError
from hubstream.settings import Settings
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.handlers import Handler
from kafka_consumer.offsets import PartitionOffsets
from schemas.contracts import Contract
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

_POLL_TIMEOUT_S = 0.2


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
        handler: Handler,
        serde: AvroSerde,
        readers: dict[str, Contract] | None = None,
        commit_interval_s: float = 0.5,
    ) -> None:
        self.group = group
        self.topics = list(topics)
        self._handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)
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
            self._commit(force=True)
        finally:
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
            event = self._decode(message)
            self._call_handler(event)
        except Exception as exc:
            log.error("group %s: %s[%d]@%d failed: %s", self.group, *tp, message.offset(), exc)
            raise ProcessingStopped(message, exc) from exc
        offsets.finished(message.offset())

    def _decode(self, message: Message) -> ConsumedEvent:
        decoded = self._serde.decode(message.value(), message.headers(), reader=self._readers.get(message.topic()))
        _, timestamp = message.timestamp()
        return ConsumedEvent(
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
            self._commit()

    def _commit(self, *, force: bool = False, only: set[tuple[str, int]] | None = None) -> None:
        pending = [
            TopicPartition(topic, partition, offsets.committable)
            for (topic, partition), offsets in self._offsets.items()
            if offsets.committable is not None and (only is None or (topic, partition) in only)
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
        log.info(
            "group %s: member %s assigned %s", self.group, consumer.memberid(), _names(partitions) or "nothing (standby)"
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._commit(force=True, only=revoked)  # nothing is in flight: processing is on this thread
        self._forget(revoked)
        log.info("group %s: member %s revoked %s", self.group, consumer.memberid(), _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # another member may already own these: committing now could rewind its progress
        self._forget({(tp.topic, tp.partition) for tp in partitions})
        log.warning("group %s: member %s lost %s", self.group, consumer.memberid(), _names(partitions))

    def _forget(self, partitions: set[tuple[str, int]]) -> None:
        for tp in partitions:
            self._offsets.pop(tp, None)
            self.assigned.discard(tp)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)

