"""Chaos: three `hubstream consume` processes share a 3-partition topic while 20k events stream in and a
supervisor kill -9's a random worker every few seconds and starts a replacement. The proof is read from the
output alone, after the last worker stopped:

- archive sink: every offset of every partition is in the archive exactly once, and each conversation's
  sequence numbers come out complete and in order;
- handler with ProcessedIds.once(): each eventId's effect row exists exactly once, although the invocation log
  shows that records were handled again after kills.

Run with `make test-chaos` (`pytest -m chaos`); the normal suite deselects them. HS_TEST_CHAOS_SEED replays a
run's choice of victims and gaps (timing still differs).
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubstream.settings import Settings
from kafka_consumer.archive import archive_offsets, read_archive
from kafka_consumer.archive.layout import final_files, partition_dir
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.chaos import Feed, run_chaos
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, make_settings, write_catalog
from tests.fixtures.workers import WorkerPool

pytestmark = pytest.mark.chaos

EVENTS = 20_000
CONVERSATIONS = 50
PARTITIONS = 3
# Files roll every 0.5 s (the default 60 s would hold back durable progress, and so commits, for a minute) but
# commits come only every 3 s: most kills then land where final files are ahead of the committed offset (the
# case the archive's start_offsets() is for), and where handled records are not committed yet (redeliveries).
CONSUMER = {"archive_roll_seconds": 0.5, "commit_interval_ms": 3000}


def chaos_events() -> list[dict[str, Any]]:
    """EVENTS chat events over CONVERSATIONS keys, each conversation's sequence counting up from 0."""
    return [chat_event(f"conv-{i % CONVERSATIONS:02d}", i // CONVERSATIONS) for i in range(EVENTS)]


@pytest.fixture
def chaos_settings(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> tuple[Settings, str]:
    topic = kafka_broker.create_topic("chaos", partitions=PARTITIONS)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), consumer=CONSUMER)
    return settings, topic


# --- variant 1: the archive sink ----------------------------------------------------------------------------


def archived_count(root: Path, topic: str) -> int:
    """Records in final files, from their names (cheap enough to poll; the proof reads the records)."""
    return sum(f.last - f.first + 1 for p in range(PARTITIONS) for f in final_files(partition_dir(root, topic, p)))


def logged(pool: WorkerPool, text: str) -> int:
    return sum(w.log().count(text) for w in pool.workers)


def test_every_offset_is_archived_exactly_once_while_workers_are_killed(
    kafka_broker: LocalKafka, chaos_settings: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, topic = chaos_settings
    group, root = unique("chaos-archive"), tmp_path / "archive"
    pool = WorkerPool(settings, tmp_path)
    args = ["--group", group, "--topic", topic, "--sink", f"archive:{root}"]
    feed = Feed(settings, topic, chaos_events())

    run = run_chaos(
        pool,
        args,
        feed,
        lambda: archived_count(root, topic) >= EVENTS,
        lambda: f"{archived_count(root, topic)} of {EVENTS} archived",
    )

    per_partition = {p: archive_offsets(root, topic, p) for p in range(PARTITIONS)}
    for p, offsets in per_partition.items():
        repeated = [o for o, n in Counter(offsets).items() if n > 1]
        assert not repeated, f"partition {p} archived offsets twice: {repeated[:10]}"
        assert offsets == list(range(len(offsets))), f"partition {p} has gaps or is out of order"
    assert sum(len(o) for o in per_partition.values()) == EVENTS
    # after the final SIGTERM every member committed what its files hold, even one that resumed past final files
    # ahead of the committed offset and saw no record after that
    assert kafka_broker.committed(group, topic, PARTITIONS) == {p: len(o) for p, o in per_partition.items()}

    sequences: dict[str, list[int]] = defaultdict(list)
    homes: dict[str, set[int]] = defaultdict(set)
    for record in read_archive(root, topic):  # partition by partition, in offset order
        event = record.decode()
        assert record.key == event["conversationId"].encode()
        sequences[event["conversationId"]].append(event["sequence"])
        homes[event["conversationId"]].add(record.partition)
    assert len(sequences) == CONVERSATIONS
    for conversation, seen in sequences.items():
        assert seen == list(range(EVENTS // CONVERSATIONS)), f"{conversation} out of order or incomplete"
        assert len(homes[conversation]) == 1, f"{conversation} is in partitions {homes[conversation]}"

    files = sum(len(final_files(partition_dir(root, topic, p))) for p in range(PARTITIONS))
    print(
        f"\nchaos archive: {EVENTS} records in {files} files, per partition "
        f"{[len(o) for o in per_partition.values()]}, after kills a new owner deleted "
        f"{logged(pool, 'never committed and will be read again')} temp files and "
        f"{logged(pool, 'resuming from the sink')} times started past final files ahead of the commit; "
        f"{run.summary()}"
    )


# --- variant 2: effects through ProcessedIds.once() ---------------------------------------------------------


def effect_rows(store: Path) -> list[tuple[str, int]]:
    if not store.exists():
        return []
    with closing(sqlite3.connect(store, timeout=30)) as conn:
        try:
            return conn.execute("SELECT event_id, pid FROM effects").fetchall()
        except sqlite3.OperationalError:  # no handler has created the table yet
            return []


@dataclass(frozen=True)
class Invocations:
    calls: list[tuple[int, int, str]]  # (partition, offset, eventId) per handler call
    skips: int  # calls that found the eventId processed already

    @classmethod
    def read(cls, path: Path) -> Invocations:
        calls, skips = [], 0
        for line in path.read_text().splitlines():
            _, partition, offset, event_id, what = line.split()
            if what == "call":
                calls.append((int(partition), int(offset), event_id))
            else:
                skips += 1
        return cls(calls, skips)

    @property
    def redelivered(self) -> int:
        return len(self.calls) - len({event_id for _, _, event_id in self.calls})

    def ends(self) -> dict[int, int]:
        """Per partition, one past the highest offset handled."""
        ends: dict[int, int] = {}
        for partition, offset, _ in self.calls:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return ends


def test_each_event_has_its_effect_exactly_once_while_workers_are_killed(
    kafka_broker: LocalKafka, chaos_settings: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, topic = chaos_settings
    group, store, log = unique("chaos-effects"), tmp_path / "effects.sqlite", tmp_path / "invocations.log"
    pool = WorkerPool(
        settings,
        tmp_path,
        extra_env={"HS_TEST_STORE": str(store), "HS_TEST_INVOCATIONS": str(log), "HS_TEST_MAX_DELAY_S": "0.002"},
    )
    args = ["--group", group, "--topic", topic, "--handler", "tests.chaos_handlers:effect_once"]
    events = chaos_events()
    feed = Feed(settings, topic, events)

    run = run_chaos(
        pool,
        args,
        feed,
        lambda: len(effect_rows(store)) >= EVENTS,
        lambda: f"{len(effect_rows(store))} of {EVENTS} effects",
    )

    rows = effect_rows(store)
    ids = Counter(event_id for event_id, _ in rows)
    assert [i for i, n in ids.items() if n > 1] == [], "an effect happened twice"
    assert len(rows) == EVENTS
    assert set(ids) == {e["eventId"] for e in events}

    invocations = Invocations.read(log)
    assert run.owner_kills > 0, f"no kill hit a partition owner: {run.kills}"
    assert len(invocations.calls) > EVENTS, "no record was handled twice: the kills did not cause redeliveries"
    assert invocations.redelivered == len(invocations.calls) - EVENTS
    ends = invocations.ends()
    assert sum(ends.values()) == EVENTS
    assert kafka_broker.committed(group, topic, PARTITIONS) == ends

    cut_short = invocations.redelivered - invocations.skips  # calls killed before their transaction committed
    by_pid = Counter(pid for _, pid in rows)
    print(
        f"\nchaos effects: {len(rows)} effects from {len(by_pid)} processes; {len(invocations.calls)} handler calls, "
        f"{invocations.redelivered} of them redeliveries: {invocations.skips} deduped by the store, {cut_short} "
        f"calls cut short by a kill; {run.summary()}"
    )
