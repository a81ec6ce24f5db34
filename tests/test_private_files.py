"""Archive files and the idempotency database are owner-only whatever the umask: files 0600, new directories 0700."""

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from hubstream.files import private_dirs, private_file
from kafka_consumer.archive import ArchiveSink
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.idempotency import ProcessedIds

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "hubstream.test",
    "fields": [{"name": "eventId", "type": "string"}],
}


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: without care, new files would be 0644 and directories 0755
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _event(offset: int) -> tuple[ConsumedEvent, bytes]:
    value = {"eventId": f"e-{offset}"}
    raw = io.BytesIO()
    fastavro.schemaless_writer(raw, fastavro.parse_schema(SCHEMA), value)
    event = ConsumedEvent(
        value=value,
        topic="orders",
        partition=0,
        offset=offset,
        key=b"k",
        timestamp_ms=None,
        schema_id="v1",
        schema_name="hubstream.test.Order",
    )
    return event, raw.getvalue()


def test_the_archive_creates_owner_only_directories_and_files(tmp_path: Path) -> None:
    root = tmp_path / "archive" / "nested"
    sink = ArchiveSink(root, max_age_s=3600)
    sink.start_offsets([("orders", 0)], {})
    for offset in range(3):
        sink.write(*_event(offset), SCHEMA)
    partition = root / "orders" / "0"
    (temp,) = partition.iterdir()
    assert temp.name.endswith(".tmp") and _mode(temp) == 0o600
    sink.close()

    (final,) = partition.iterdir()
    assert final.name.endswith(".avro") and _mode(final) == 0o600
    for directory in (tmp_path / "archive", root, root / "orders", partition):
        assert _mode(directory) == 0o700, directory


def test_the_idempotency_store_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "consumer" / "processed.db"
    with ProcessedIds(path) as store:
        assert store.mark("e-1")
        files = {p.name: _mode(p) for p in path.parent.iterdir()}
        # while the store is open SQLite keeps its write-ahead log and shared-memory index next to it
        assert files == {"processed.db": 0o600, "processed.db-wal": 0o600, "processed.db-shm": 0o600}
    assert _mode(tmp_path / "state") == 0o700 and _mode(path.parent) == 0o700


def test_an_existing_store_file_and_directory_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    path = shared / "processed.db"
    path.touch(mode=0o640)
    with ProcessedIds(path) as store:
        store.mark("e-1")
        assert _mode(shared) == 0o750 and _mode(path) == 0o640  # the operator's choice, not ours to change
        assert _mode(shared / "processed.db-wal") == 0o640


def test_private_dirs_reports_what_it_created(tmp_path: Path) -> None:
    assert private_dirs(tmp_path / "a" / "b") == [tmp_path / "a", tmp_path / "a" / "b"]
    assert private_dirs(tmp_path / "a" / "b") == []
    private_file(tmp_path / "a" / "b" / "f")
    (tmp_path / "a" / "b" / "f").write_bytes(b"kept")
    private_file(tmp_path / "a" / "b" / "f")  # exists: neither truncated nor changed
    assert (tmp_path / "a" / "b" / "f").read_bytes() == b"kept"
