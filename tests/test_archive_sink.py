import io
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubstream.errors import ConfigurationError
from kafka_consumer.archive import (
    ArchiveCorruptError,
    ArchiveError,
    ArchiveSink,
    archive_offsets,
    read_archive,
)
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.processors.sink import Sink

TOPIC = "orders"
TP = (TOPIC, 0)
V1: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "hubstream.test",
    "fields": [{"name": "eventId", "type": "string"}, {"name": "amount", "type": "long"}],
}
V2: dict[str, Any] = {
    **V1,
    "fields": [*V1["fields"], {"name": "currency", "type": "string", "default": "KRW"}],
}
SCHEMAS = {"v1": V1, "v2": V2}


def _value(offset: int, schema_id: str = "v1") -> dict[str, Any]:
    value: dict[str, Any] = {"eventId": f"e-{offset}", "amount": offset * 100}
    if schema_id == "v2":
        value["currency"] = "EUR"
    return value


def _raw(value: dict[str, Any], schema_id: str) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(SCHEMAS[schema_id]), value)
    return buffer.getvalue()


def _event(offset: int, tp: tuple[str, int] = TP, schema_id: str = "v1") -> ConsumedEvent:
    return ConsumedEvent(
        value=_value(offset, schema_id),
        topic=tp[0],
        partition=tp[1],
        offset=offset,
        key=f"k-{offset % 3}".encode(),
        timestamp_ms=1_700_000_000_000 + offset,
        schema_id=schema_id,
        schema_name="hubstream.test.Order",
        headers=[("content-type", f"avro/binary+{schema_id}".encode()), ("trace", None), ("trace", b"2")],
    )


def _write(sink: ArchiveSink, offsets: range | list[int], tp: tuple[str, int] = TP, schema_id: str = "v1") -> None:
    for offset in offsets:
        event = _event(offset, tp, schema_id)
        sink.write(event, _raw(event.value, schema_id), SCHEMAS[schema_id])


def _names(root: Path, tp: tuple[str, int] = TP) -> list[str]:
    directory = root / tp[0] / str(tp[1])
    return sorted(os.listdir(directory)) if directory.exists() else []


def _final(first: int, last: int) -> str:
    return f"{first:020d}-{last:020d}.avro"


def _temp(first: int) -> str:
    return f".{first:020d}.avro.tmp"


def _crash(sink: ArchiveSink) -> None:
    """What kill -9 leaves: open files closed by the OS, fastavro's buffered block never written."""
    for state in sink._partitions.values():
        if state.open is not None:
            state.open.handle.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def _started(root: Path, committed: int | None = None, **options: Any) -> ArchiveSink:
    sink = ArchiveSink(root, **options)
    sink.start_offsets([TP], {TP: committed})
    return sink


def test_archive_sink_has_every_method_the_sink_processor_calls(root: Path) -> None:
    sink = ArchiveSink(root)
    assert isinstance(sink, Sink)  # the protocol is runtime-checkable: a missing method fails here
    sink.close()


def test_flush_renames_the_temp_file_to_its_offset_range(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(120, 130))
    assert _names(root) == [_temp(120)]
    assert sink.durable() == {}  # nothing is durable before the roll
    sink.flush()
    assert _names(root) == [_final(120, 129)]
    assert sink.durable() == {TP: 130}
    sink.close()


def test_roll_by_size(root: Path) -> None:
    sink = _started(root, max_bytes=4096)
    _write(sink, range(300))
    names = _names(root)
    finals = [name for name in names if not name.startswith(".")]
    assert len(finals) > 3
    assert names[0] == _temp(int(finals[-1][21:41]) + 1)  # the rest is still open
    for name in finals:
        assert os.path.getsize(root / TOPIC / "0" / name) < 4096 + 512
    assert sink.durable() == {TP: int(finals[-1][21:41]) + 1}
    sink.flush()
    assert archive_offsets(root, TOPIC, 0) == list(range(300))
    sink.close()


def test_roll_by_age(root: Path) -> None:
    now = [0.0]
    sink = _started(root, max_age_s=60, clock=lambda: now[0])
    _write(sink, range(5))
    now[0] = 59.0
    sink.maybe_roll()
    assert _names(root) == [_temp(0)]
    now[0] = 60.0
    sink.maybe_roll()
    assert _names(root) == [_final(0, 4)]
    assert sink.durable() == {TP: 5}
    sink.close()


def test_a_writer_schema_change_rolls_the_file(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(3), schema_id="v1")
    _write(sink, range(3, 5), schema_id="v2")
    sink.flush()
    assert _names(root) == [_final(0, 2), _final(3, 4)]
    records = list(read_archive(root))
    assert [(r.offset, r.schema_id) for r in records] == [(0, "v1"), (1, "v1"), (2, "v1"), (3, "v2"), (4, "v2")]
    assert [r.decode() for r in records] == [_value(o, "v1") for o in range(3)] + [_value(o, "v2") for o in (3, 4)]
    assert records[0].decode(reader_schema=V2) == {**_value(0), "currency": "KRW"}  # resolved to a newer reader
    sink.close()


def test_release_flushes_then_forgets(root: Path) -> None:
    sink = ArchiveSink(root)
    other = (TOPIC, 1)
    sink.start_offsets([TP, other], {TP: None, other: None})
    _write(sink, range(10))
    _write(sink, range(4), tp=other)
    sink.release([TP])
    assert _names(root) == [_final(0, 9)]
    assert sink.durable() == {}  # TP is forgotten; `other` has nothing durable yet
    with pytest.raises(ArchiveError, match="start_offsets"):
        _write(sink, [10])
    sink.close()  # flushes the partition it still holds
    assert _names(root, other) == [_final(0, 3)]


def test_records_already_accepted_are_not_written_again(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(5))
    _write(sink, range(3, 8))  # the worker went back to 3
    sink.flush()
    assert archive_offsets(root, TOPIC, 0) == list(range(8))
    sink.close()


def _write_then_die(root: str, flushed: int, unflushed: int) -> None:
    sink = ArchiveSink(root)
    sink.start_offsets([TP], {TP: None})
    _write(sink, range(flushed))
    sink.flush()
    _write(sink, range(flushed, flushed + unflushed))
    os._exit(1)  # no close, no commit


def _run_and_kill(root: Path, flushed: int, unflushed: int) -> None:
    process = multiprocessing.get_context("spawn").Process(target=_write_then_die, args=(str(root), flushed, unflushed))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 1


def test_crash_after_the_rename_before_the_commit(root: Path) -> None:
    _run_and_kill(root, flushed=50, unflushed=0)
    sink = ArchiveSink(root)
    assert sink.start_offsets([TP], {TP: 0}) == {TP: 50}  # committed 0 was never moved
    assert sink.durable() == {TP: 50}  # committing this tells the group what the archive has
    _write(sink, range(50, 60))
    sink.close()
    assert archive_offsets(root, TOPIC, 0) == list(range(60))


def test_crash_with_an_open_temp_file(root: Path) -> None:
    _run_and_kill(root, flushed=50, unflushed=10)
    assert _names(root) == [_temp(50), _final(0, 49)]
    sink = ArchiveSink(root)
    assert sink.start_offsets([TP], {TP: 50}) == {}  # start where the group committed
    assert _names(root) == [_final(0, 49)]  # the temp file's records were never committed
    _write(sink, range(50, 60))
    sink.close()
    assert archive_offsets(root, TOPIC, 0) == list(range(60))


def test_start_offsets_follow_the_files_holding_the_committed_offset(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(50))
    sink.flush()
    _write(sink, range(50, 100))
    sink.close()
    assert ArchiveSink(root).start_offsets([TP], {TP: 20}) == {TP: 100}
    assert ArchiveSink(root).start_offsets([TP], {TP: 100}) == {}
    assert ArchiveSink(root).start_offsets([TP], {TP: None}) == {TP: 100}
    assert ArchiveSink(root).start_offsets([TP], {TP: 150}) == {}  # offsets reset forward: the group decides


def test_records_a_final_file_holds_are_dropped(root: Path) -> None:
    sink = _started(root, committed=120)
    _write(sink, range(120, 200))
    sink.close()
    sink = ArchiveSink(root)
    assert sink.start_offsets([TP], {TP: 100}) == {}  # 100..119 are not archived: read them
    _write(sink, range(100, 251))  # 120..199 arrive again
    assert sink.durable() == {TP: 200}
    sink.close()
    assert _names(root) == [_final(100, 119), _final(120, 199), _final(200, 250)]
    assert archive_offsets(root, TOPIC, 0) == list(range(100, 251))


def test_start_offsets_deletes_only_its_partitions_leftovers(root: Path) -> None:
    other = (TOPIC, 1)
    for tp in (TP, other):
        directory = root / tp[0] / str(tp[1])
        directory.mkdir(parents=True)
        (directory / _temp(7)).write_bytes(b"partial")
    ArchiveSink(root).start_offsets([TP], {TP: 7})
    assert _names(root) == []
    assert _names(root, other) == [_temp(7)]


def test_overlapping_files_are_reported_with_their_names(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(10))
    sink.close()
    directory = root / TOPIC / "0"
    shutil.copy(directory / _final(0, 9), directory / _final(5, 14))
    with pytest.raises(ArchiveCorruptError, match=rf"{_final(0, 9)}.*{_final(5, 14)}"):
        ArchiveSink(root).start_offsets([TP], {TP: 0})
    with pytest.raises(ArchiveCorruptError):
        list(read_archive(root))


def test_a_roll_refuses_to_overlap_a_file_another_writer_made(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(10))
    rival = _started(root.parent / "rival")
    _write(rival, range(5, 20))
    rival.close()
    shutil.copy(root.parent / "rival" / TOPIC / "0" / _final(5, 19), root / TOPIC / "0" / _final(5, 19))
    with pytest.raises(ArchiveCorruptError, match="another consumer"):
        sink.flush()
    assert sink.durable() == {}
    with pytest.raises(ArchiveError, match="Restart the consumer"):
        _write(sink, [10])
    sink.close()


def test_every_record_reads_back_once_with_its_metadata(root: Path) -> None:
    sink = ArchiveSink(root, max_bytes=2048)
    tps = [(TOPIC, 0), (TOPIC, 1), ("payments", 0)]
    sink.start_offsets(tps, dict.fromkeys(tps))
    for tp in tps:
        _write(sink, range(40), tp=tp)
    sink.close()
    records = list(read_archive(root))
    assert [(r.topic, r.partition, r.offset) for r in records] == [
        (topic, partition, offset) for topic, partition in sorted(tps) for offset in range(40)
    ]
    first = records[0]
    expected = _event(0, ("payments", 0))
    assert (first.key, first.timestamp_ms, first.headers) == (expected.key, expected.timestamp_ms, expected.headers)
    assert first.body == _raw(expected.value, "v1") and first.decode() == expected.value
    assert [r.offset for r in read_archive(root, topic="payments")] == list(range(40))
    for tp in tps:
        assert archive_offsets(root, *tp) == list(range(40))


def test_fastavro_reads_every_file_on_its_own(root: Path) -> None:
    sink = _started(root, max_bytes=2048)
    _write(sink, range(100))
    sink.close()
    for name in _names(root):
        first, last = int(name[:20]), int(name[21:41])
        with open(root / TOPIC / "0" / name, "rb") as handle:
            reader = fastavro.reader(handle)
            offsets = [record["offset"] for record in reader]  # type: ignore[call-overload] - fastavro: any Avro value
            assert reader.metadata["hubstream.schema_id"] == "v1"
        assert offsets == list(range(first, last + 1))


def test_a_value_without_raw_bytes_is_encoded_with_the_writer_schema(root: Path) -> None:
    sink = _started(root)
    event = _event(0)
    sink.write(event, None, V1)
    bad = ConsumedEvent({"eventId": 1}, TOPIC, 0, 1, None, None, "v1", "hubstream.test.Order")
    with pytest.raises(ArchiveError, match="does not fit"):
        sink.write(bad, None, V1)
    sink.close()
    [record] = read_archive(root)
    assert record.body == _raw(event.value, "v1")


def test_names_outside_kafkas_rules_are_refused(root: Path) -> None:
    with pytest.raises(ArchiveError, match="not a Kafka topic name"):
        ArchiveSink(root).start_offsets([("../etc", 0)], {})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.integers(1, 30)),
            st.just(("flush",)),
            st.just(("commit",)),
            st.tuples(st.just("crash"), st.booleans()),
        ),
        max_size=25,
    ),
    gaps=st.integers(0, 3),
)
def test_any_crash_schedule_archives_each_offset_once(tmp_path: Path, steps: list[tuple], gaps: int) -> None:
    """A consumer that commits durable() now and then and dies anywhere, against a log with gaps in its offsets."""
    root = tmp_path / f"run-{os.urandom(4).hex()}"
    log = [n * (gaps + 1) for n in range(1_000)]  # gaps stand for transaction markers or compaction
    committed: int | None = None
    sink = ArchiveSink(root, max_bytes=3000)
    position = _start(sink, committed, log)
    for step in steps:
        if step[0] == "write":
            offsets = [o for o in log if o >= position][: step[1]]
            _write(sink, offsets)
            position = offsets[-1] + 1
        elif step[0] == "flush":
            sink.flush()
        elif step[0] == "commit":
            committed = sink.durable().get(TP, committed)
        else:
            if step[1]:  # the commit of what is durable made it before the crash
                committed = sink.durable().get(TP, committed)
            _crash(sink)
            sink = ArchiveSink(root, max_bytes=3000)
            position = _start(sink, committed, log)
    _write(sink, [o for o in log if o >= position][:10])
    sink.close()
    archived = archive_offsets(root, TOPIC, 0)
    assert archived == [o for o in log if o <= max(archived, default=-1)]


def _start(sink: ArchiveSink, committed: int | None, log: list[int]) -> int:
    start = sink.start_offsets([TP], {TP: committed}).get(TP, committed)
    return log[0] if start is None else start  # no commit and an empty archive: auto.offset.reset=earliest


def test_settings_that_cannot_work_are_refused(root: Path) -> None:
    with pytest.raises(ConfigurationError, match="codec"):
        ArchiveSink(root, codec="lzma-9000")
    with pytest.raises(ConfigurationError):
        ArchiveSink(root, max_bytes=0)


def test_discard_forgets_a_lost_partition_without_archiving(root: Path) -> None:
    sink = _started(root)
    _write(sink, range(5))
    sink.discard([TP])
    assert sink.durable() == {}
    assert _names(root) == [_temp(0)]  # left for the next owner's start_offsets to delete
    assert ArchiveSink(root).start_offsets([TP], {TP: 0}) == {}
    assert _names(root) == []
