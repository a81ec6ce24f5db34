"""Failover between real `hubstream consume` processes: a standby takes over a killed owner's partition, and a
SIGTERMed member finishes its work, commits and leaves the group so the handover does not wait for a timeout.

Ownership is read from each worker's /readyz (the local broker's describe_consumer_groups has no members);
what was handled, by whom and when, from the lines bench.failover_members:record appends to one file.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.failover_members import DELAY_ENV, FILE_ENV, Line, read_lines, wait_for
from hubstream.settings import Settings
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.registry import RegistryEmulator
from tests.fixtures.services import CHAT, make_settings, produce_events, write_catalog
from tests.fixtures.workers import WorkerPool, WorkerProcess

HANDLER = "bench.failover_members:record"


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    return tmp_path / "handled.txt"


def _settings(
    kafka_broker: LocalKafka, registry_emulator: RegistryEmulator, tmp_path: Path, topic: str, **consumer: Any
) -> Settings:
    return make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), consumer=consumer)


def _start(pool: WorkerPool, names: list[str], group: str, topic: str) -> list[WorkerProcess]:
    return [pool.start(name, "--group", group, "--topic", topic, "--handler", HANDLER) for name in names]


def _ownership(workers: list[WorkerProcess]) -> dict[str, tuple[str, list[str]]]:
    """name -> (state, partitions) of every worker answering /readyz."""
    statuses = {w.name: w.status() for w in workers}
    return {name: (s["state"], s["partitions"]) for name, s in statuses.items() if s is not None}


def _one_partition_each(workers: list[WorkerProcess]) -> bool:
    seen = _ownership(workers)
    return len(seen) == len(workers) and all(len(parts) == 1 for _, parts in seen.values())


def _index(partition: str) -> int:
    """ "topic[2]" -> 2"""
    return int(partition.rsplit("[", 1)[1].rstrip("]"))


def _session_s(settings: Settings) -> float:
    assert settings.consumer.session_timeout_ms is not None
    return settings.consumer.session_timeout_ms / 1000


def test_killed_owner_hands_its_partition_to_a_standby_while_the_other_owners_keep_theirs(
    kafka_broker: LocalKafka, registry_emulator: RegistryEmulator, tmp_path: Path, record_file: Path
) -> None:
    """5 members on 3 partitions: 3 owners and 2 standbys; kill -9 an owner and a standby takes its partition.

    Cooperative-sticky (the production default) keeps every owner's partition through the rebalance; the five
    start together so they settle in one generation (on the local broker a member joining later costs 2-3 join
    windows with this assignor).
    """
    topic = kafka_broker.create_topic("standby", partitions=3)
    settings = _settings(kafka_broker, registry_emulator, tmp_path, topic, assignor="cooperative-sticky")
    pool = WorkerPool(settings, tmp_path, extra_env={FILE_ENV: str(record_file)})
    try:
        workers = _start(pool, [f"m{i}" for i in range(5)], unique("standby"), topic)
        pool.wait_ready(workers)

        def settled() -> dict[str, tuple[str, list[str]]] | None:
            seen = _ownership(workers)
            owners = [parts for state, parts in seen.values() if state == "owner"]
            standbys = [name for name, (state, parts) in seen.items() if state == "standby" and not parts]
            ok = len(owners) == 3 and all(len(p) == 1 for p in owners) and len(standbys) == 2
            return seen if ok else None

        before = wait_for(settled, 20, "3 owners with one partition each and 2 standbys")
        for worker in workers:  # standbys are ready too
            assert httpx.get(f"{worker.ops_url}/readyz", timeout=2).status_code == 200
        victim = next(w for w in workers if before[w.name][0] == "owner")
        [orphan] = before[victim.name][1]
        survivors = [w for w in workers if w is not victim]
        kept = {name: parts for name, (state, parts) in before.items() if state == "owner" and name != victim.name}

        victim.kill()
        produce_events(settings, topic, [chat_event(f"conv-{i}", i) for i in range(30)])
        samples: list[dict[str, tuple[str, list[str]]]] = []

        def taken_over() -> str | None:
            seen = _ownership(survivors)
            samples.append(seen)
            return next((name for name, (_, parts) in seen.items() if orphan in parts), None)

        heir = wait_for(taken_over, 3 * _session_s(settings) + 10, f"{orphan} owned again")
        failover_s = time.monotonic() - (victim.killed_at or 0)
        after = _ownership(survivors)
        assert before[heir][0] == "standby", f"{orphan} went to {heir}, which was not a standby: {before}"
        assert after[heir] == ("owner", [orphan])
        for name, parts in kept.items():
            assert after[name] == ("owner", parts)
            assert all(seen[name][1] == parts for seen in samples if name in seen), f"{name} lost its partition"
        owned = [p for _, parts in after.values() for p in parts]
        assert sorted(owned) == sorted(set(owned)) and len(owned) == 3, after

        # every record produced after the kill is handled once, by its partition's owner now: the orphan's by the heir
        pids = {w.name: w.process.pid for w in survivors}
        owner_pid = {_index(parts[0]): pids[name] for name, (_, parts) in after.items() if parts}
        done = wait_for(lambda: _complete(record_file, 30), 20, "30 records handled")
        assert {line.partition for line in done} == {0, 1, 2}
        assert all(line.pid == owner_pid[line.partition] for line in done), (owner_pid, done)
        print(f"\nkill -9 of {victim.name}: {orphan} owned by standby {heir} after {failover_s:.2f} s")
    finally:
        pool.stop_all()


def _complete(record_file: Path, count: int) -> list[Line] | None:
    """The done lines once `count` distinct records are done; each record done exactly once."""
    done = [line for line in read_lines(record_file) if line.what == "done"]
    handled = Counter((line.partition, line.offset) for line in done)
    if len(handled) < count:
        return None
    assert max(handled.values()) == 1, f"handled twice: {[r for r, n in handled.items() if n > 1]}"
    return done


def test_sigterm_finishes_the_record_in_flight_commits_and_leaves_the_group(
    kafka_broker: LocalKafka, registry_emulator: RegistryEmulator, tmp_path: Path, record_file: Path
) -> None:
    """SIGTERM a member while a slow handler runs: the record finishes, its offset is committed, the member
    leaves the group and exits 0; the other member carries on from exactly the next record.

    The session timeout (10 s) is far above a LeaveGroup handover (heartbeat + session/2 = 6 s on the local
    broker), and a takeover after a timeout would need the session plus a join window (15 s): a handover
    under the session timeout proves the group was left.
    """
    topic = kafka_broker.create_topic("graceful", partitions=2)
    settings = _settings(
        kafka_broker,
        registry_emulator,
        tmp_path,
        topic,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        assignor="range",
    )
    pool = WorkerPool(settings, tmp_path, extra_env={FILE_ENV: str(record_file), DELAY_ENV: "0.25"})
    try:
        a, b = _start(pool, ["a", "b"], unique("graceful"), topic)
        pool.wait_ready([a, b])
        wait_for(lambda: _one_partition_each([a, b]), 20, "one partition each")
        produce_events(settings, topic, [chat_event(f"conv-{i}", i) for i in range(40)])

        def a_in_flight() -> Line | None:
            mine = [line for line in read_lines(record_file) if line.pid == a.process.pid]
            last = mine[-1] if mine else None
            started_now = last is not None and last.what == "start" and time.time() - last.at < 0.1
            return last if started_now and sum(line.what == "done" for line in mine) >= 3 else None

        in_flight = wait_for(a_in_flight, 20, "a record in flight on a after 3 done")
        terminated_at = time.time()
        assert a.terminate() == 0, a.log()[-3000:]

        done = wait_for(lambda: _complete(record_file, 40), 30, "40 records handled")
        lines = read_lines(record_file)
        by_a = [line for line in lines if line.pid == a.process.pid]
        finished = [
            line
            for line in by_a
            if line.what == "done" and line.offset == in_flight.offset and line.partition == in_flight.partition
        ]
        assert finished and finished[0].at > terminated_at, "the record in flight at SIGTERM did not finish"
        started, ended = (
            {(line.partition, line.offset) for line in by_a if line.what == what} for what in ("start", "done")
        )
        assert started == ended, "a abandoned a handler"
        for partition, offsets in _offsets_by_partition(done).items():
            assert offsets == list(range(len(offsets))), f"partition {partition}: records missing"

        taken = [
            line
            for line in lines
            if line.pid == b.process.pid
            and line.what == "start"
            and line.partition == in_flight.partition
            and line.at > terminated_at
        ]
        assert taken, f"b never took over partition {in_flight.partition}"
        assert len(b.partitions()) == 2  # b owns both now
        last_by_a = max(offset for partition, offset in ended if partition == in_flight.partition)
        assert taken[0].offset == last_by_a + 1  # a committed everything it finished, nothing more
        handover_s = taken[0].at - terminated_at
        print(
            f"\nSIGTERM handover of partition {in_flight.partition}: {handover_s:.2f} s "
            f"(session timeout {_session_s(settings):.0f} s)"
        )
        assert handover_s < _session_s(settings), "the handover waited for the session timeout: no LeaveGroup"
    finally:
        pool.stop_all()


def _offsets_by_partition(lines: list[Line]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for line in lines:
        offsets.setdefault(line.partition, []).append(line.offset)
    return {partition: sorted(found) for partition, found in offsets.items()}
