"""The archive sink: consumed records into Avro container files per partition, like Event Hubs Capture.

``hubstream consume --sink archive:DIR`` writes ``DIR/<topic>/<partition>/<first>-<last>.avro`` (layout in
archive_layout). After any crash and restart every offset is in the archive exactly once, because:

1. A file is written under a temp name. Rolling it (size, age, writer-schema change, flush) fsyncs it, renames it
   to its final name with os.replace and fsyncs the directory: a final file is complete and durable, a temp
   file is neither.
2. durable() moves only when a roll finished, and the worker commits only durable() offsets, so the committed
   offset never passes a record that is not in a final file.
3. start_offsets() deletes temp files (their records were never committed and are read again) and starts past
   the final files holding the committed offset, so a crash between the rename and the commit does not archive
   those records twice. Records that arrive anyway for offsets a final file holds are dropped.

Why a wrapper record (ARCHIVE_SCHEMA: offset, timestamp, key, headers, schemaId, schemaName, body) instead of
the event under its own schema: a container file has one schema, while a topic's writer schema changes over
time; the wrapper fits every version, like Capture's Offset/EnqueuedTimeUtc/Properties/Body. body keeps the exact
bytes received, so a replay can re-produce records byte for byte, and every record carries its offset, so "each
offset once" can be checked from the files alone. To decode body without a registry, each file holds one writer
schema in its metadata (a schema change rolls the file); ArchivedRecord.decode() uses it.

One member owns a partition at a time (the group coordinator's job). A member that lost its partition without
noticing could still roll a file; the roll re-checks the directory first and refuses to create an overlap, and
any overlap that slips through is reported by start_offsets() and read_archive(), never silently duplicated.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from bisect import bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fastavro
import fastavro.write

from hubstream.errors import ConfigurationError
from hubstream.files import new_private_file
from kafka_consumer.archive.layout import (
    META_PARTITION,
    META_SCHEMA_ID,
    META_TOPIC,
    META_WRITER_SCHEMA,
    PARSED_ARCHIVE_SCHEMA,
    ArchiveCorruptError,
    ArchiveError,
    final_files,
    final_name,
    fsync_dir,
    make_dirs,
    partition_dir,
    remove_temp_files,
    temp_name,
)
from kafka_consumer.events import ConsumedEvent

log = logging.getLogger(__name__)

TP = tuple[str, int]
_NO_END = 2**63  # sorts after every offset


@dataclass
class _OpenFile:
    temp: Path
    handle: BinaryIO
    writer: fastavro.write.Writer
    schema_id: str
    first: int
    last: int
    opened_at: float
    written: int  # bytes fastavro has written to the file
    pending: int = 0  # estimated bytes of records buffered in fastavro's current block

    @property
    def size(self) -> int:
        return self.written + self.pending


@dataclass
class _Partition:
    directory: Path
    archived: list[tuple[int, int]]  # offset ranges of final files, sorted
    durable_next: int | None
    accepted_next: int | None = None
    open: _OpenFile | None = None
    failed: str | None = None


class ArchiveSink:
    """Writes records to DIR/<topic>/<partition>/ as Avro container files; drive it from one thread."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 60.0,
        codec: str = "deflate",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 1 or max_age_s <= 0:
            raise ConfigurationError("the archive sink needs a positive max_bytes and max_age_s")
        try:
            fastavro.write.Writer(io.BytesIO(), PARSED_ARCHIVE_SCHEMA, codec=codec)
        except ValueError as exc:
            raise ConfigurationError(f"archive codec {codec!r}: {exc}") from exc
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._codec = codec
        self._clock = clock
        self._partitions: dict[TP, _Partition] = {}
        self._parsed_writers: dict[str, Any] = {}
        make_dirs(self.root)

    # --- the Sink protocol --------------------------------------------------------------------------

    def start_offsets(self, partitions: list[TP], committed: dict[TP, int | None]) -> dict[TP, int]:
        starts: dict[TP, int] = {}
        for tp in partitions:
            self._discard(tp)
            directory = partition_dir(self.root, *tp)
            removed = remove_temp_files(directory)
            if removed:
                log.info("%s[%d]: deleted %s; those records were never committed and will be read again", *tp, removed)
            archived = [(f.first, f.last) for f in final_files(directory)]
            known = committed.get(tp)
            start = _start_offset(archived, known if known is not None and known >= 0 else None)
            self._partitions[tp] = _Partition(directory, archived, durable_next=start)
            if start is not None and start != known:
                log.info("%s[%d]: the archive holds offsets up to %d; starting there, not at %s", *tp, start - 1, known)
                starts[tp] = start
        return starts

    def write(self, event: ConsumedEvent, raw_value: bytes | None, writer_schema: dict[str, Any]) -> None:
        tp = (event.topic, event.partition)
        state = self._started(tp)
        offset = event.offset
        if state.accepted_next is not None and offset < state.accepted_next:
            return  # accepted already since the assignment: the worker went back
        if _holds(state.archived, offset):
            with self._guard(tp, state):
                self._drop_archived(tp, state, offset)
            return
        body = self._body(event, raw_value, writer_schema)
        with self._guard(tp, state):
            if state.open is not None and self._must_roll_before(state, state.open, event):
                self._roll(tp, state)
            if state.open is None:
                state.open = self._open(tp, state, event, writer_schema)
            _append(state.open, event, body)
            state.accepted_next = offset + 1
            if self._due(state.open):
                self._roll(tp, state)

    def durable(self) -> dict[TP, int]:
        return {tp: s.durable_next for tp, s in self._partitions.items() if s.durable_next is not None}

    def flush(self, partitions: list[TP] | None = None) -> None:
        self._roll_each(list(self._partitions) if partitions is None else partitions, lambda f: True)

    def release(self, partitions: list[TP]) -> None:
        try:
            self.flush(partitions)
        finally:
            for tp in partitions:
                self._discard(tp)

    def discard(self, partitions: list[TP]) -> None:
        """Forget partitions without flushing, for partitions lost to another member: their temp files stay
        until the next start_offsets() of whoever owns them, and their records are read again."""
        for tp in partitions:
            self._discard(tp)

    def maybe_roll(self) -> None:
        self._roll_each(list(self._partitions), self._due)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for tp in list(self._partitions):
                self._discard(tp)

    # --- files ----------------------------------------------------------------------------------------

    def _open(self, tp: TP, state: _Partition, event: ConsumedEvent, writer_schema: dict[str, Any]) -> _OpenFile:
        make_dirs(state.directory)
        temp = state.directory / temp_name(event.offset)
        handle = new_private_file(temp)  # stays open in the _OpenFile until _roll() closes it
        metadata = {
            META_TOPIC: tp[0],
            META_PARTITION: str(tp[1]),
            META_SCHEMA_ID: event.schema_id,
            META_WRITER_SCHEMA: json.dumps(_plain_schema(writer_schema)),
        }
        try:
            writer = fastavro.write.Writer(handle, PARSED_ARCHIVE_SCHEMA, codec=self._codec, metadata=metadata)
        except BaseException:
            handle.close()
            raise
        opened_at = self._clock()
        return _OpenFile(temp, handle, writer, event.schema_id, event.offset, event.offset, opened_at, handle.tell())

    def _roll(self, tp: TP, state: _Partition) -> None:
        """fsync the open file, rename it to its final name, fsync the directory; then it counts as durable."""
        current = state.open
        if current is None:
            return
        with self._guard(tp, state):
            state.open = None
            try:
                current.writer.flush()
                current.handle.flush()
                os.fsync(current.handle.fileno())
            finally:
                current.handle.close()
            _refuse_overlap(state.directory, current)
            os.replace(current.temp, state.directory / final_name(current.first, current.last))
            fsync_dir(state.directory)
        insort(state.archived, (current.first, current.last))
        state.durable_next = current.last + 1
        log.debug("%s[%d]: archived offsets %d..%d", *tp, current.first, current.last)

    def _roll_each(self, partitions: Iterable[TP], due: Callable[[_OpenFile], bool]) -> None:
        """Roll every due file even if one fails, then raise the first failure."""
        first_error: ArchiveError | None = None
        for tp in partitions:
            state = self._partitions.get(tp)
            if state is None or state.open is None or not due(state.open):
                continue
            try:
                self._roll(tp, state)
            except ArchiveError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _drop_archived(self, tp: TP, state: _Partition, offset: int) -> None:
        # everything open is below offset; closing it keeps final files from straddling an existing one
        self._roll(tp, state)
        state.durable_next = max(state.durable_next or 0, offset + 1)
        state.accepted_next = offset + 1
        log.debug("%s[%d]@%d is archived already; dropped", *tp, offset)

    def _must_roll_before(self, state: _Partition, current: _OpenFile, event: ConsumedEvent) -> bool:
        return current.schema_id != event.schema_id or _spans_archived(state.archived, current.first, event.offset)

    def _due(self, current: _OpenFile) -> bool:
        return current.size >= self.max_bytes or self._clock() - current.opened_at >= self.max_age_s

    # --- state ----------------------------------------------------------------------------------------

    def _started(self, tp: TP) -> _Partition:
        state = self._partitions.get(tp)
        if state is None:
            raise ArchiveError(f"{tp[0]}[{tp[1]}] is not assigned to the archive sink: call start_offsets() first")
        if state.failed is not None:
            raise ArchiveError(state.failed)
        return state

    def _discard(self, tp: TP) -> None:
        """Forget a partition without flushing; its temp file stays until the next start_offsets()."""
        state = self._partitions.pop(tp, None)
        if state is not None and state.open is not None:
            state.open.handle.close()

    @contextmanager
    def _guard(self, tp: TP, state: _Partition) -> Iterator[None]:
        """A failure while writing leaves the partition's files unknown: refuse further writes to it."""
        try:
            yield
        except Exception as exc:
            if state.open is not None:
                state.open.handle.close()
                state.open = None
            if state.failed is None:
                state.failed = (
                    f"archiving {tp[0]}[{tp[1]}] failed: {exc}. Restart the consumer; "
                    f"records from offset {state.durable_next} on will be read again"
                )
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(state.failed) from exc

    def _body(self, event: ConsumedEvent, raw_value: bytes | None, writer_schema: dict[str, Any]) -> bytes:
        if raw_value is not None:
            return raw_value
        parsed = self._parsed_writers.get(event.schema_id)
        if parsed is None:
            parsed = self._parsed_writers[event.schema_id] = fastavro.parse_schema(_plain_schema(writer_schema))
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, parsed, event.value)
        except Exception as exc:
            raise ArchiveError(
                f"{event.topic}[{event.partition}]@{event.offset} does not fit its writer schema "
                f"{event.schema_name}: {exc}; pass the raw value"
            ) from exc
        return buffer.getvalue()


def _append(current: _OpenFile, event: ConsumedEvent, body: bytes) -> None:
    current.writer.write(
        {
            "offset": event.offset,
            "timestamp": event.timestamp_ms,
            "key": event.key,
            "headers": [{"name": name, "value": value} for name, value in event.headers],
            "schemaId": event.schema_id,
            "schemaName": event.schema_name,
            "body": body,
        }
    )
    current.last = event.offset
    position = current.handle.tell()
    if position != current.written:  # fastavro wrote out a block, this record included
        current.written, current.pending = position, 0
    else:
        headers = sum(len(name) + len(value or b"") for name, value in event.headers)
        current.pending += len(body) + len(event.key or b"") + headers + 24


def _start_offset(archived: list[tuple[int, int]], committed: int | None) -> int | None:
    """Past the final files that hold the committed offset; with no commit yet, past the last file."""
    if committed is None:
        return archived[-1][1] + 1 if archived else None
    start = committed
    for first, last in archived:  # sorted and disjoint: one pass follows adjacent files
        if first <= start <= last:
            start = last + 1
    return start


def _holds(archived: list[tuple[int, int]], offset: int) -> bool:
    index = bisect_right(archived, (offset, _NO_END)) - 1
    return index >= 0 and archived[index][1] >= offset


def _spans_archived(archived: list[tuple[int, int]], first: int, offset: int) -> bool:
    """Whether a final file starts after `first` and at or before `offset`."""
    index = bisect_right(archived, (first, _NO_END))
    return index < len(archived) and archived[index][0] <= offset


def _refuse_overlap(directory: Path, current: _OpenFile) -> None:
    # re-read from disk: another writer (a member that lost this partition) may have renamed a file meanwhile
    for other in final_files(directory):
        if other.first <= current.last and current.first <= other.last:
            raise ArchiveCorruptError(
                f"{other.path} already holds offsets of {current.temp.name} ({current.first}..{current.last}): "
                "another consumer archived this partition meanwhile; this member probably lost it"
            )


def _plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    # a schema fastavro has parsed carries private keys that are not Avro
    return {key: value for key, value in schema.items() if not key.startswith("__")}
