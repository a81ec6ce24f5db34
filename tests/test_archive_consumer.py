"""The archive sink driven by a consumer group over the real broker: every offset archived exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from devstack.topics import ensure_topics
from hubstream.settings import Settings
from kafka_consumer.admin.group_offsets import apply_reset, plan_reset
from kafka_consumer.archive import ArchiveSink, archive_offsets, read_archive
from kafka_consumer.dead_letters import read_dead_letter
from kafka_consumer.records import record_of
from kafka_consumer.wiring import build_worker
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.readers import read_all
from tests.fixtures.services import CHAT, make_settings, produce_events, write_catalog
from tests.fixtures.waiting import wait_for


def produce_chat(settings: Settings, topic: str, count: int) -> None:
    produce_events(settings, topic, [chat_event(f"conv-{i % 5}", i) for i in range(count)])


def archive_until(broker: LocalKafka, settings: Settings, group: str, topic: str, root: Path, expected: int) -> None:
    """Run a worker with the archive sink until it owns both partitions and `expected` records are durable, then
    stop it (flush + commit)."""
    import threading
    import time

    worker = build_worker(settings, group=group, topics=[topic], sink=ArchiveSink(root, max_age_s=0.5))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 40
    while len(worker.assigned) < 2 or sum(len(archive_offsets(root, topic, p)) for p in range(2)) < expected:
        assert time.monotonic() < deadline, "archive did not fill up"
        time.sleep(0.2)
    ends = {p: max(archive_offsets(root, topic, p), default=-1) + 1 for p in range(2)}
    wait_for(
        lambda: all(broker.committed(group, topic, 2)[p] >= end for p, end in ends.items()),
        "the commit of what is archived",
    )
    worker.stop()
    thread.join(30)


@dataclass
class Archived:
    """40 records archived by a group that then stopped cleanly (files durable, offsets committed)."""

    settings: Settings
    topic: str
    group: str
    root: Path


@pytest.fixture
def archived(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> Archived:
    topic = kafka_broker.create_topic("archive", partitions=2)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    produce_chat(settings, topic, 40)
    group, root = unique("archive"), tmp_path / "archive"
    archive_until(kafka_broker, settings, group, topic, root, 40)
    return Archived(settings, topic, group, root)


def test_every_offset_is_archived_once_even_when_commits_were_lost(
    kafka_broker: LocalKafka, archived: Archived
) -> None:
    settings, topic, group, root = archived.settings, archived.topic, archived.group, archived.root
    per_partition = {p: archive_offsets(root, topic, p) for p in range(2)}
    assert sum(len(o) for o in per_partition.values()) == 40
    assert kafka_broker.committed(group, topic, 2) == {p: len(o) for p, o in per_partition.items()}

    # The process "died after the files were renamed but before the commit": rewind the group's offsets.
    apply_reset(kafka_broker.admin, group, plan_reset(kafka_broker.admin, group, topic, "earliest"))
    produce_chat(settings, topic, 10)
    archive_until(kafka_broker, settings, group, topic, root, 50)

    for p in range(2):
        offsets = archive_offsets(root, topic, p)
        assert offsets == sorted(set(offsets)), f"partition {p} archived an offset twice"
        assert offsets == list(range(len(offsets)))
    records = list(read_archive(root, topic))
    assert len(records) == 50
    assert {r.decode()["sequence"] for r in records} == set(range(40)) | set(range(10))


def test_a_member_resuming_past_the_commit_commits_its_start_even_when_nothing_follows(
    kafka_broker: LocalKafka, archived: Archived
) -> None:
    settings, topic, group, root = archived.settings, archived.topic, archived.group, archived.root
    before = kafka_broker.committed(group, topic, 2)
    # "died after the rename, before the commit", and no record arrives afterwards
    apply_reset(kafka_broker.admin, group, plan_reset(kafka_broker.admin, group, topic, "earliest"))
    archive_until(kafka_broker, settings, group, topic, root, 40)
    assert kafka_broker.committed(group, topic, 2) == before


def test_an_undecodable_record_is_dead_lettered_and_the_archive_moves_on(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("archive", partitions=2)
    ensure_topics(kafka_broker.admin, {topic + ".dlq": 2})
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(topic, b"\x07 not avro", key=b"conv-0", partition=0)
    assert producer.flush(15) == 0
    produce_chat(settings, topic, 20)
    group, root = unique("archive"), tmp_path / "archive"
    archive_until(kafka_broker, settings, group, topic, root, 20)

    [letter] = [read_dead_letter(record_of(m)) for m in read_all(kafka_broker, topic + ".dlq", partitions=2)]
    assert (letter.original_partition, letter.original_offset, letter.error_class) == (0, 0, "UndecodableRecordError")
    assert 0 not in archive_offsets(root, topic, 0)
    assert sum(len(archive_offsets(root, topic, p)) for p in range(2)) == 20
