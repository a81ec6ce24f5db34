"""Per partition of a topic: the offset bounds, the record count, and the last record's time and key.

What Event Hubs' ``get_partition_properties`` reports (last enqueued offset, time), asked through the Kafka
protocol: ListOffsets for the bounds, then the last record itself, read by an assigned consumer (no group).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_NOT_AVAILABLE, Message

from kafka_consumer.admin.cluster import Cluster


@dataclass(frozen=True)
class PartitionInfo:
    topic: str
    partition: int
    earliest: int
    latest: int  # the offset the next record gets; the last record is at latest - 1
    records: int  # latest - earliest: exact unless the topic is compacted or transactional
    last_offset: int | None
    last_timestamp: datetime | None  # the last record's time: its append time, or its create time
    last_timestamp_type: str | None  # "log-append" | "create"
    last_key: bytes | None

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "earliest": self.earliest,
            "latest": self.latest,
            "records": self.records,
            "lastOffset": self.last_offset,
            "lastTimestamp": self.last_timestamp.isoformat() if self.last_timestamp else None,
            "lastTimestampType": self.last_timestamp_type,
            "lastKey": text_or_none(self.last_key),
        }


def describe_partitions(cluster: Cluster, topic: str) -> list[PartitionInfo]:
    """Every partition of the topic; NoSuchTopicError when it does not exist."""
    tps = [(topic, p) for p in cluster.partitions(topic)]
    bounds = cluster.bounds(tps)
    last = cluster.records_at({tp: b.latest - 1 for tp, b in bounds.items() if b.span > 0})
    return [_info(tp, bounds[tp].earliest, bounds[tp].latest, last.get(tp)) for tp in tps]


def _info(tp: tuple[str, int], earliest: int, latest: int, message: Message | None) -> PartitionInfo:
    when, kind = record_time(message) if message is not None else (None, None)
    return PartitionInfo(
        topic=tp[0],
        partition=tp[1],
        earliest=earliest,
        latest=latest,
        records=max(0, latest - earliest),
        last_offset=message.offset() if message is not None else None,
        last_timestamp=when,
        last_timestamp_type=kind,
        last_key=_key(message),
    )


def record_time(message: Message) -> tuple[datetime | None, str | None]:
    kind, ms = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or ms is None or ms < 0:
        return None, None
    return datetime.fromtimestamp(ms / 1000, UTC), "log-append" if kind == TIMESTAMP_LOG_APPEND_TIME else "create"


def _key(message: Message | None) -> bytes | None:
    if message is None:
        return None
    key = message.key()
    return key.encode() if isinstance(key, str) else key


def text_or_none(value: bytes | None) -> str | None:
    """Bytes as UTF-8 text, or as 0x-hex when they are not text (keys are usually text)."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + value.hex()
