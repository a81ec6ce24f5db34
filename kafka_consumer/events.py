"""What a handler receives: the decoded event and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

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
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    body: bytes = field(default=b"", repr=False, compare=False)  # the plain Avro body the event was decoded from

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode(errors="replace")


def decode_event(serde: AvroSerde, message: Message, reader: Contract | None = None) -> ConsumedEvent:
    """Decode a consumed record (either Azure wire format); raises SerdeError or RegistryError."""
    headers = message.headers()
    decoded = serde.decode(message.value(), headers, reader=reader)
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
        headers=list(headers or []),
        body=decoded.body,
    )
