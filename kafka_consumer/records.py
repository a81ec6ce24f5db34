"""A consumed record as processors see it: its coordinates typed, read from the client's Message once.

confluent-kafka's ``Message`` types topic, partition and offset as optional (a Message can also be an error
event, or one built by hand); on a record consumed without error librdkafka always sets them. ``record_of``
checks that once, where the poll loop receives the record, so nothing downstream narrows them again.

A Record is a NamedTuple, not a frozen dataclass: the poll loop builds one per record, and a frozen dataclass's
``__init__`` (one ``object.__setattr__`` per field) cost several times as much.
"""

from __future__ import annotations

from typing import NamedTuple

from confluent_kafka import Message

Header = tuple[str, bytes | None]


class Record(NamedTuple):
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
    raw = message.headers()
    headers: list[Header] = []
    if isinstance(raw, list):
        headers = raw  # type: ignore[assignment] # librdkafka gives a new list of (str, bytes | None) each call
        for _, value in raw:
            if value.__class__ is str:  # a hand-built Message
                headers = [(name, value.encode() if isinstance(value, str) else value) for name, value in raw]
                break
    elif raw:
        headers = [(name, value.encode() if isinstance(value, str) else value) for name, value in raw.items()]
    _, timestamp = message.timestamp()
    return _new(Record, (topic, partition, offset, message.key(), message.value(), headers, timestamp))


_new = tuple.__new__  # Record's own __new__ is a Python function: this skips it (the poll loop's hot path)
