"""The archive on disk: directory layout, file names, the container schema, and the no-overlap rule.

    DIR/<topic>/<partition>/00000000000000000120-00000000000000000199.avro   final: offsets 120..199, durable
    DIR/<topic>/<partition>/.00000000000000000200.avro.tmp                   still being written, first offset 200

A final file's name holds its first and last offsets, zero-padded to 20 digits (the width of a signed 64-bit
offset) so names sort by offset. Final files of a partition never overlap; two that do mean something wrote
the same offsets twice, and reading stops with ArchiveCorruptError naming both. A temp file was never renamed,
so its records were never committed: they will be read again, and the file is only deleted.

Files are created 0600 and the directories the archive creates 0700 (existing ones keep their mode): records
hold whole event bodies, which may be personal data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import fastavro

from hubstream.errors import HubstreamError
from hubstream.files import private_dirs

# Every record is this wrapper; body holds the event's Avro bytes under the writer schema named by schemaId.
ARCHIVE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ArchivedEvent",
    "namespace": "hubstream.archive",
    "doc": "One Kafka record as consumed. body is the raw Avro value; its writer schema is in the file metadata.",
    "fields": [
        {"name": "offset", "type": "long"},
        {"name": "timestamp", "type": ["null", "long"], "doc": "Kafka record timestamp, ms since the epoch"},
        {"name": "key", "type": ["null", "bytes"]},
        {
            "name": "headers",
            "doc": "In record order; a list, not a map, because Kafka allows repeated header names",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Header",
                    "fields": [{"name": "name", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}],
                },
            },
        },
        {"name": "schemaId", "type": "string", "doc": "Schema registry id of the writer schema of body"},
        {"name": "schemaName", "type": "string", "doc": "Full name of the writer schema"},
        {"name": "body", "type": "bytes"},
    ],
}
PARSED_ARCHIVE_SCHEMA = fastavro.parse_schema(ARCHIVE_SCHEMA)

# file metadata: a file holds one writer schema, so it can be decoded without a registry
META_TOPIC = "hubstream.topic"
META_PARTITION = "hubstream.partition"
META_SCHEMA_ID = "hubstream.schema_id"
META_WRITER_SCHEMA = "hubstream.writer_schema"

_FINAL = re.compile(r"^(\d{20})-(\d{20})\.avro$")
_TEMP = re.compile(r"^\.(\d{20})\.avro\.tmp$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's own rule for topic names


class ArchiveError(HubstreamError):
    """The archive cannot accept or give back records; the message says which partition and why."""


class ArchiveCorruptError(ArchiveError):
    """Files of one partition hold the same offsets twice, or a file's records do not match its name."""


@dataclass(frozen=True)
class ArchiveFile:
    path: Path
    first: int
    last: int


def final_name(first: int, last: int) -> str:
    return f"{first:020d}-{last:020d}.avro"


def temp_name(first: int) -> str:
    return f".{first:020d}.avro.tmp"


def partition_dir(root: Path, topic: str, partition: int) -> Path:
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise ArchiveError(f"{topic!r} is not a Kafka topic name; it cannot name an archive directory")
    return root / topic / str(partition)


def topics(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _TOPIC.match(p.name)) if root.is_dir() else []


def partitions(root: Path, topic: str) -> list[int]:
    directory = root / topic
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def final_files(directory: Path) -> list[ArchiveFile]:
    """The partition's final files in offset order; raises ArchiveCorruptError if two overlap."""
    files = []
    for name in os.listdir(directory) if directory.is_dir() else []:
        match = _FINAL.match(name)
        if match:
            first, last = int(match[1]), int(match[2])
            if first > last:
                raise ArchiveCorruptError(f"{directory / name}: first offset is after the last")
            files.append(ArchiveFile(directory / name, first, last))
    files.sort(key=lambda f: f.first)
    for before, after in pairwise(files):
        if after.first <= before.last:
            raise ArchiveCorruptError(
                f"{before.path} and {after.path} both hold offsets {after.first}..{min(before.last, after.last)}: "
                "the archive holds those records twice. Keep one copy (e.g. move the other file away) and restart."
            )
    return files


def remove_temp_files(directory: Path) -> list[str]:
    """Delete files that were never renamed to final; returns their names."""
    removed = [name for name in (os.listdir(directory) if directory.is_dir() else []) if _TEMP.match(name)]
    for name in removed:
        os.unlink(directory / name)
    if removed:
        fsync_dir(directory)
    return removed


def make_dirs(directory: Path) -> None:
    """Create directory and its missing parents owner-only (0700), making every new entry durable (fsync of
    each parent)."""
    for path in private_dirs(directory):
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
