"""The dead-letter topic as ``dlq replay`` reads it: assign() from the replay group's offsets, to each end once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from hubstream import kafka_config
from hubstream.errors import BrokerError, BrokerUnavailableError
from hubstream.settings import Settings
from kafka_consumer.admin.replay_errors import ReplayCommitError, TopicNotFoundError
from kafka_consumer.records import Record, record_of

log = logging.getLogger(__name__)

_TIMEOUT_S = 15.0
_BATCH = 500
_POLL_S = 0.2


class DlqReader:
    """The DLQ topic read with assign() from the group's committed offsets, to the end of every partition."""

    def __init__(self, settings: Settings, topic: str, group: str, idle_timeout_s: float) -> None:
        config = kafka_config.consumer_config(settings, group)
        # earliest: a committed offset that retention has deleted meanwhile resumes at the oldest record
        config.update({"enable.partition.eof": True, "auto.offset.reset": "earliest"})
        self._consumer = Consumer(config)
        self.topic = topic
        self.group = group
        self._idle_timeout_s = idle_timeout_s
        self._start: dict[int, int] = {}
        self.next_offsets: dict[int, int] = {}  # partition -> offset after the last record read
        self.done: set[int] = set()

    def start(self, from_beginning: bool) -> set[str]:
        """Assign every partition at its start offset; returns the names of the cluster's topics."""
        try:
            # every topic, not just ours: a metadata request naming a missing topic auto-creates it on some brokers
            metadata = self._consumer.list_topics(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            raise BrokerUnavailableError(
                f"could not list topics: {exc.args[0].str()}; check that Kafka is reachable"
            ) from exc
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            raise TopicNotFoundError(self.topic, "dead-letter topic", "check the name (it is usually <topic>.dlq)")
        partitions = [TopicPartition(self.topic, p) for p in sorted(found.partitions)]
        try:
            if not from_beginning:
                partitions = self._consumer.committed(partitions, timeout=_TIMEOUT_S)
            self._start = {tp.partition: tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in partitions}
            self._consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in self._start.items()])
        except KafkaException as exc:
            raise BrokerError(f"could not read the offsets of group {self.group!r}: {exc.args[0].str()}") from exc
        return set(metadata.topics)

    async def batches(self) -> AsyncIterator[list[Record]]:
        """Batches of records, until every partition reached its end once; raises BrokerError when stuck."""
        last_news = time.monotonic()
        while len(self.done) < len(self._start):
            polled = await asyncio.to_thread(self._consumer.consume, _BATCH, _POLL_S)
            batch = [record for message in polled if (record := self._take(message)) is not None]
            if any(message.error() is None or is_eof(message) for message in polled):
                last_news = time.monotonic()
            elif time.monotonic() - last_news > self._idle_timeout_s:
                raise BrokerUnavailableError(
                    f"no record and no end of partition for {self._idle_timeout_s:.0f} s "
                    f"(partitions at their end: {sorted(self.done)} of {sorted(self._start)})"
                )
            yield batch

    def _take(self, message: Message) -> Record | None:
        """A polled message as a record to replay, or None; notes ends of partitions and raises fatal errors."""
        error = message.error()
        if error is not None:
            partition = message.partition()
            if is_eof(message) and partition is not None:  # an end-of-partition event names its partition
                self.done.add(partition)
                self._consumer.pause([TopicPartition(self.topic, partition)])
            elif error.fatal():
                raise BrokerError(f"the consumer of {self.topic!r} failed: {error.str()}")
            else:  # librdkafka retries these itself (e.g. a connection that dropped); the idle timeout bounds it
                log.warning("reading %s: %s", self.topic, error.str())
            return None
        record = record_of(message)
        if record.partition in self.done:  # fetched after the end we stop at
            return None
        self.next_offsets[record.partition] = record.offset + 1
        return record

    def total(self, read: int) -> int | None:
        """Records read plus those left, from the watermarks the last fetches brought (no broker query)."""
        left = 0
        for partition, start in self._start.items():
            if partition in self.done:
                continue
            low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            if high < 0:
                return None
            position = self.next_offsets.get(partition, start if start >= 0 else max(low, 0))
            left += max(high - position, 0)
        return read + left

    def commit(self, replayed: int) -> dict[int, int]:
        """Commit the offset after the last record read of each partition that moved."""
        if not self.next_offsets:
            return {}
        offsets = [TopicPartition(self.topic, p, offset) for p, offset in sorted(self.next_offsets.items())]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ReplayCommitError(self.group, replayed, exc.args[0].str()) from exc
        failed = [(tp.partition, tp.error) for tp in result or [] if tp.error is not None]
        if failed:
            partition, error = failed[0]
            raise ReplayCommitError(self.group, replayed, f"partition {partition}: {error.str()}")
        return dict(self.next_offsets)

    def close(self) -> None:
        self._consumer.close()


def is_eof(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF
