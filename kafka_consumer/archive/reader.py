"""Reading the archive back: every record of the final files, in offset order per partition."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fastavro

from kafka_consumer.archive.layout import (
    META_WRITER_SCHEMA,
    ArchiveCorruptError,
    ArchiveFile,
    final_files,
    partition_dir,
    partitions,
    topics,
)


@dataclass(frozen=True)
class ArchivedRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    headers: list[tuple[str, bytes | None]]
    schema_id: str
    schema_name: str
    body: bytes
    writer_schema: dict[str, Any]
    file: Path
    _parsed_writer: Any = field(repr=False, compare=False, default=None)

    def decode(self, reader_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The event: body decoded with the file's writer schema, resolved to reader_schema if given."""
        writer = self._parsed_writer or fastavro.parse_schema(self.writer_schema)
        reader = fastavro.parse_schema(reader_schema) if reader_schema is not None else None
        event = fastavro.schemaless_reader(io.BytesIO(self.body), writer, reader)
        return cast(dict[str, Any], event)  # an event's schema is a record; fastavro types any Avro value


def read_archive(root: str | Path, topic: str | None = None) -> Iterator[ArchivedRecord]:
    """Every archived record, by topic, then partition, then offset. Temp files are not part of the archive."""
    root = Path(root)
    for name in [topic] if topic is not None else topics(root):
        for partition in partitions(root, name):
            yield from read_partition(root, name, partition)


def read_partition(root: str | Path, topic: str, partition: int) -> Iterator[ArchivedRecord]:
    for archive_file in final_files(partition_dir(Path(root), topic, partition)):
        yield from _read_file(archive_file, topic, partition)


def archive_offsets(root: str | Path, topic: str, partition: int) -> list[int]:
    """Offsets of every archived record of a partition, in file order, repeats included."""
    return [record.offset for record in read_partition(root, topic, partition)]


def _read_file(archive_file: ArchiveFile, topic: str, partition: int) -> Iterator[ArchivedRecord]:
    with open(archive_file.path, "rb") as handle:
        reader = fastavro.reader(handle)
        if META_WRITER_SCHEMA not in reader.metadata:
            raise ArchiveCorruptError(f"{archive_file.path} has no writer schema in its metadata; not an archive file")
        writer_schema = json.loads(reader.metadata[META_WRITER_SCHEMA])
        parsed = fastavro.parse_schema(writer_schema)
        previous = archive_file.first - 1
        for datum in reader:
            if not isinstance(datum, dict):
                raise ArchiveCorruptError(f"{archive_file.path} holds a {type(datum).__name__}, not archive records")
            record = datum
            offset = record["offset"]
            # a record outside the name's range, or out of order, would break "each offset once"
            if not previous < offset <= archive_file.last:
                raise ArchiveCorruptError(f"{archive_file.path}: offset {offset} does not belong after {previous}")
            previous = offset
            yield ArchivedRecord(
                topic=topic,
                partition=partition,
                offset=offset,
                timestamp_ms=record["timestamp"],
                key=record["key"],
                headers=[(h["name"], h["value"]) for h in record["headers"]],
                schema_id=record["schemaId"],
                schema_name=record["schemaName"],
                body=record["body"],
                writer_schema=writer_schema,
                file=archive_file.path,
                _parsed_writer=parsed,
            )
        if previous != archive_file.last:
            raise ArchiveCorruptError(f"{archive_file.path}: ends at {previous}, its name says {archive_file.last}")
