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

import os
import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hubstream.settings import Settings
from kafka_consumer.archive import archive_offsets, read_archive
from kafka_consumer.archive.layout import final_files, partition_dir
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.services import CHAT, make_settings, produce_events, write_catalog
from tests.fixtures.workers import WorkerPool
from tests.test_end_to_end import chat_event

pytestmark = pytest.mark.chaos

EVENTS = 20_000
CONVERSATIONS = 50
PARTITIONS = 3
WORKERS = 3
PRODUCE_S = 25.0  # production is spread over this long, in batches
BATCH = 200
KILLS = 7
KILL_GAP_S = (3.0, 6.0)
SETTLE_TIMEOUT_S = 120.0  # after the last kill, for the output to be complete
# Files roll every 0.5 s (the default 60 s would hold back durable progress, and so commits, for a minute) but
# commits come only every 3 s: most kills then land where final files are ahead of the committed offset (the
# case the archive's start_offsets() is for), and where handled records are not committed yet (redeliveries).
CONSUMER = {"archive_roll_seconds": 0.5, "commit_interval_ms": 3000}


# --- the load ---------------------------------------------------------------------------------------------


def chaos_events() -> list[dict[str, Any]]:
    """EVENTS chat events over CONVERSATIONS keys, each conversation's sequence counting up from 0."""
    return [chat_event(f"conv-{i % CONVERSATIONS:02d}", i // CONVERSATIONS) for i in range(EVENTS)]


class Feed(threading.Thread):
    """Produces the events in batches spread over PRODUCE_S; each batch is flushed before the next, so every
    conversation's records reach the broker in sequence order."""

    def __init__(self, settings: Settings, topic: str, events: list[dict[str, Any]]) -> None:
        super().__init__(name="chaos-feed", daemon=True)
        self.settings, self.topic, self.events = settings, topic, events
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.produced = 0
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        batches = range(0, len(self.events), BATCH)
        pace = PRODUCE_S / len(batches)
        try:
            for n, first in enumerate(batches):
                if self.stop.wait(max(0.0, started + n * pace - time.monotonic())):
                    return
                produce_events(self.settings, self.topic, self.events[first : first + BATCH])
                self.produced = min(first + BATCH, len(self.events))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
        finally:
            self.seconds = time.monotonic() - started

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"production did not end within {timeout} s ({self.produced} produced)"
        if self.error is not None:
            raise self.error
        assert self.produced == len(self.events)


# --- the chaos ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    at_s: float  # since the feed started
    victim: str
    owned: tuple[str, ...]  # its partitions according to /readyz just before the kill


@dataclass
class ChaosRun:
    seed: int
    kills: list[Kill] = field(default_factory=list)
    produce_s: float = 0.0
    settle_s: float = 0.0  # from the last kill to complete output
    total_s: float = 0.0

    @property
    def owner_kills(self) -> int:
        return sum(1 for k in self.kills if k.owned)

    def summary(self) -> str:
        return (
            f"seed {self.seed}; {len(self.kills)} kills ({self.owner_kills} of partition owners); produced in "
            f"{self.produce_s:.1f} s; complete {self.settle_s:.1f} s after the last kill; {self.total_s:.1f} s"
        )


def chaos_seed() -> int:
    return int(os.environ.get("HS_TEST_CHAOS_SEED") or random.randrange(2**32))


def kill_and_replace(pool: WorkerPool, args: list[str], rng: random.Random, started: float) -> Iterator[Kill]:
    """Every KILL_GAP_S, SIGKILL a random live worker that owns partitions (any live one while a rebalance leaves
    none owning) and start a replacement, KILLS times."""
    for n in range(KILLS):
        time.sleep(rng.uniform(*KILL_GAP_S))
        live = sorted((w for w in pool.workers if w.alive()), key=lambda w: w.log_file.name)
        owners = [w for w in live if w.partitions()]
        victim = rng.choice(owners or live)
        owned = tuple(victim.partitions())
        victim.kill()
        pool.start(f"r{n}", *args)
        yield Kill(round(time.monotonic() - started, 1), victim.log_file.stem, owned)


def wait_until(done: Callable[[], bool], progress: Callable[[], str], pool: WorkerPool) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.log_file.name}\n{w.log()[-1500:]}" for w in pool.workers if w.alive())
            raise AssertionError(f"not complete {SETTLE_TIMEOUT_S:.0f} s after the last kill: {progress()}\n{logs}")
        time.sleep(0.5)


def run_chaos(
    pool: WorkerPool, args: list[str], feed: Feed, done: Callable[[], bool], progress: Callable[[], str]
) -> ChaosRun:
    """WORKERS workers run `args` through the feed and the kills until done(); then all are stopped (SIGTERM),
    as on any failure."""
    run = ChaosRun(chaos_seed())
    rng = random.Random(run.seed)
    started = time.monotonic()
    try:
        pool.wait_ready([pool.start(f"w{i}", *args) for i in range(WORKERS)])
        feed_started = time.monotonic()
        feed.start()
        run.kills = list(kill_and_replace(pool, args, rng, feed_started))
        last_kill = time.monotonic()
        feed.finish(SETTLE_TIMEOUT_S)
        run.produce_s = feed.seconds
        # the last replacements must be up before the SIGTERM: one still importing would just die of it
        pool.wait_ready([w for w in pool.workers if w.alive()], SETTLE_TIMEOUT_S)
        wait_until(done, progress, pool)
        run.settle_s = time.monotonic() - last_kill
    finally:
        feed.stop.set()
        pool.stop_all()
    run.total_s = time.monotonic() - started
    assert not any(w.alive() for w in pool.workers), "a worker outlived the test"
    survivors = [w for w in pool.workers if w.killed_at is None]
    assert [w.process.returncode for w in survivors] == [0] * WORKERS, "\n".join(
        f"--- {w.log_file.name} exited {w.process.returncode}\n{w.log()[-2000:]}" for w in survivors
    )
    return run


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
