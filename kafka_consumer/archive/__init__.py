"""The archive: consumed records in Avro container files per partition, exactly once, like Event Hubs Capture."""

from kafka_consumer.archive.layout import (
    ARCHIVE_SCHEMA,
    ArchiveCorruptError,
    ArchiveError,
)
from kafka_consumer.archive.reader import ArchivedRecord, archive_offsets, read_archive
from kafka_consumer.archive.sink import ArchiveSink

__all__ = [
    "ARCHIVE_SCHEMA",
    "ArchiveCorruptError",
    "ArchiveError",
    "ArchiveSink",
    "ArchivedRecord",
    "archive_offsets",
    "read_archive",
]
