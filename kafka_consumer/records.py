"""A consumed record as processors see it: its coordinates typed, read from the client's Message once.

confluent-kafka's ``Message`` types topic, partition and offset as optional (a Message can also be an error
event, or one built by hand); on a record consumed without error librdkafka always sets them. ``record_of``
checks that once, where the poll loop receives the record, so nothing downstream narrows them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

Header = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]
    timestamp_ms: int  # as librdkafka gives it: -1 when the record has no timestamp

    @property
    def tp(self) -> tuple[str, int]:
        return self.topic, self.partition

    @property
    def where(self) -> str:
        """``topic[partition]@offset``, for messages and logs."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


def record_of(message: Message) -> Record:
    """The typed view of a record consumed without error; ValueError for an error event or a hand-built Message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None or message.error() is not None:
        raise ValueError(f"not a consumed record: {topic}[{partition}]@{offset} ({message.error()})")
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    _, timestamp = message.timestamp()
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=message.key(),
        value=message.value(),
        headers=[(name, value.encode() if isinstance(value, str) else value) for name, value in pairs],
        timestamp_ms=timestamp,
    )
