"""What a handler receives: the decoded event and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka_consumer.records import Header, Record
from schemas.contracts import Contract
from schemas.serde import AvroSerde


@dataclass(frozen=True)
class ConsumedEvent:
    value: dict[str, Any]
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None
    schema_id: str
    schema_name: str
    headers: list[Header] = field(default_factory=list)
    body: bytes = field(default=b"", repr=False, compare=False)  # the plain Avro body the event was decoded from

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode(errors="replace")


def decode_event(serde: AvroSerde, record: Record, reader: Contract | None = None) -> ConsumedEvent:
    """Decode a consumed record (either Azure wire format); raises SerdeError or RegistryError."""
    decoded = serde.decode(record.value, record.headers, reader=reader)
    # the frozen dataclass's __init__ sets each field through object.__setattr__, several times the cost of
    # filling its __dict__ at once; this is the poll loop's hot path, and every field is given
    event = _new(ConsumedEvent)
    _set(
        event,
        "__dict__",
        {
            "value": decoded.record,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "timestamp_ms": record.timestamp_ms,
            "schema_id": decoded.schema_id,
            "schema_name": decoded.writer_schema_name,
            "headers": list(record.headers),
            "body": decoded.body,
        },
    )
    return event


_new = object.__new__
_set = object.__setattr__
