"""Reading a topic's records as an operator would: decoded, from any point, without touching any group.

The reader is assigned its partitions (``Cluster.reader``): it never joins a group and never commits, so
tailing a topic changes nothing a worker sees. Each value is decoded through its ``content-type`` header's
schema id, or the legacy id prefix (``schemas.serde``); a record that does not decode is still shown, with
why, and its raw bytes.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from hubstream.errors import BrokerError, HubstreamError, SerdeError
from kafka_consumer.admin.cluster import TP, Bounds, Cluster
from kafka_consumer.admin.partition_info import record_time, text_or_none
from schemas.natural import to_natural_json
from schemas.serde import AvroSerde

_FROM_END = re.compile(r"^-(\d+)$")


class InvalidStartError(HubstreamError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"--from {text!r}: use earliest, latest, an offset (42), a count back from the end (-10), "
            "or an ISO-8601 time (2026-01-31T09:00:00Z)"
        )


class UnknownPartitionError(BrokerError):
    def __init__(self, topic: str, asked: list[int], known: list[int]) -> None:
        super().__init__(f"topic {topic!r} has no partition {asked}; its partitions are {known}")


@dataclass(frozen=True)
class Start:
    """Where reading starts in every partition: a named end, an offset, N records back, or a time."""

    kind: str  # "earliest" | "latest" | "offset" | "back" | "time"
    offset: int = 0
    at: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Start:
        value = text.strip()
        if value in ("earliest", "latest"):
            return cls(value)
        if value.isdigit():
            return cls("offset", int(value))
        if match := _FROM_END.match(value):
            return cls("back", int(match[1]))
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidStartError(text) from None
        return cls("time", at=at if at.tzinfo else at.replace(tzinfo=UTC))


@dataclass(frozen=True)
class TailedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    headers: list[tuple[str, bytes | None]]
    value: bytes | None
    schema_id: str | None = None
    schema_name: str | None = None
    wire_format: str | None = None  # "header" | "legacy"
    event: Any = None  # natural JSON
    error: str | None = None  # why the value did not decode

    def as_json(self, *, raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "key": text_or_none(self.key),
            "schemaId": self.schema_id,
            "schema": self.schema_name,
            "format": self.wire_format,
            "event": self.event,
        }
        if self.error is not None:
            out["error"] = self.error
        if raw:
            out["value"] = None if self.value is None else base64.b64encode(self.value).decode("ascii")
            out["headers"] = [[k, None if v is None else text_or_none(v)] for k, v in self.headers]
        return out


@dataclass
class TailOptions:
    partitions: list[int] | None = None
    start: Start = field(default_factory=lambda: Start("latest"))
    count: int | None = None  # stop after this many records (those matching `key`)
    key: str | None = None
    follow: bool = True  # False: stop once every partition is read to its end
    idle_timeout_s: float | None = None  # stop after this long without a record


def start_offsets(cluster: Cluster, topic: str, options: TailOptions) -> dict[TP, tuple[int, int]]:
    """Per partition: the offset reading starts from (clamped to what the partition holds), and its end."""
    known = cluster.partitions(topic)
    chosen = options.partitions or known
    if missing := sorted(set(chosen) - set(known)):
        raise UnknownPartitionError(topic, missing, known)
    tps = [(topic, p) for p in chosen]
    bounds = cluster.bounds(tps)
    start = options.start
    if start.kind == "time":
        assert start.at is not None
        found = cluster.offsets_for_time(tps, int(start.at.timestamp() * 1000))
        return {tp: (found[tp] if found[tp] >= 0 else bounds[tp].latest, bounds[tp].latest) for tp in tps}
    return {tp: (_offset(start, bounds[tp]), bounds[tp].latest) for tp in tps}


def _offset(start: Start, bounds: Bounds) -> int:
    if start.kind == "earliest":
        return bounds.earliest
    if start.kind == "latest":
        return bounds.latest
    if start.kind == "back":
        return max(bounds.earliest, bounds.latest - start.offset)
    return min(max(start.offset, bounds.earliest), bounds.latest)


def tail(
    cluster: Cluster,
    serde: AvroSerde,
    topic: str,
    options: TailOptions,
    stop: threading.Event | None = None,
) -> Iterator[TailedRecord]:
    """Decoded records of the topic, as they are read; see TailOptions for when it stops."""
    offsets = start_offsets(cluster, topic, options)
    decoder = _Decoder(serde)
    wanted_key = options.key.encode() if options.key is not None else None
    at_end: set[TP] = set()  # from the reader's end-of-partition events: the fetch's high watermark
    consumer = cluster.reader()
    seen = 0
    try:
        consumer.assign([TopicPartition(t, p, offset) for (t, p), (offset, _) in offsets.items()])
        last_record = time.monotonic()
        while not (stop is not None and stop.is_set()):
            if options.count is not None and seen >= options.count:
                return
            if not options.follow and at_end >= offsets.keys():
                return
            if options.idle_timeout_s is not None and time.monotonic() - last_record > options.idle_timeout_s:
                return
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                _check(cluster, message, error, at_end)
                continue
            last_record = time.monotonic()
            record = decoder.record(message)
            if wanted_key is None or record.key == wanted_key:
                seen += 1
                yield record
    finally:
        consumer.close()


def _check(cluster: Cluster, message: Message, error: KafkaError, at_end: set[TP]) -> None:
    topic, partition = message.topic(), message.partition()
    if error.code() == KafkaError._PARTITION_EOF:
        if topic is not None and partition is not None:
            at_end.add((topic, partition))
        return
    problem = cluster.unreachable(error)
    if problem is not None or error.fatal():
        raise problem or BrokerError(f"reading {topic}: {error.str()}")


class _Decoder:
    """Messages to TailedRecords: the serde decodes, the writer's schema turns the datum into natural JSON."""

    def __init__(self, serde: AvroSerde) -> None:
        self._serde = serde
        self._schemas: dict[str, Any] = {}

    def record(self, message: Message) -> TailedRecord:
        value = message.value()
        raw_headers: list[Any] = list(message.headers() or [])
        headers = [(k, v if isinstance(v, bytes | None) else str(v).encode()) for k, v in raw_headers]
        key = message.key()
        base = TailedRecord(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp=record_time(message)[0],
            key=key.encode() if isinstance(key, str) else key,
            headers=headers,
            value=value if isinstance(value, bytes | None) else str(value).encode(),
        )
        try:
            decoded = self._serde.decode(base.value, headers)
            event = to_natural_json(decoded.record, self._schema(decoded.schema_id))
        except SerdeError as exc:
            return replace(base, error=str(exc), schema_id=getattr(exc, "schema_id", None))
        return replace(
            base,
            schema_id=decoded.schema_id,
            schema_name=decoded.writer_schema_name,
            wire_format=decoded.format,
            event=event,
        )

    def _schema(self, schema_id: str) -> Any:
        schema = self._schemas.get(schema_id)
        if schema is None:
            schema = self._schemas[schema_id] = json.loads(self._serde.registry.schema_by_id(schema_id))
        return schema
