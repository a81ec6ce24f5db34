"""The consumer runtime over the real broker: key-ordered concurrency, commit safety and rate, backpressure,
revocation, and the ops endpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubstream.settings import Settings
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.monitoring import MonitoringServer
from kafka_consumer.options import WorkerOptions
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.services import (
    CHAT,
    commit_spy,
    make_settings,
    produce_events,
    running_worker,
    write_catalog,
)
from tests.fixtures.waiting import wait_for


def topic_settings(
    broker: LocalKafka, emulator: Any, tmp_path: Path, partitions: int, **consumer: Any
) -> tuple[str, Settings]:
    topic = broker.create_topic("run", partitions=partitions)
    settings = make_settings(broker, emulator, write_catalog(tmp_path, {topic: CHAT}), consumer=consumer)
    return topic, settings


def test_key_ordered_concurrency_keeps_per_key_order_and_commits_never_pass_an_unfinished_record(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(
        kafka_broker,
        registry_emulator,
        tmp_path,
        3,
        key_concurrency=4,
        commit_interval_ms=100,
        max_commits_per_second=10,
    )
    keys, per_key = 20, 15
    produce_events(settings, topic, [chat_event(f"conv-{k}", seq) for seq in range(per_key) for k in range(keys)])

    lock = threading.Lock()
    running: set[bytes | None] = set()
    finished: dict[int, set[int]] = defaultdict(set)
    in_flight: dict[int, int] = defaultdict(int)
    most_in_flight: dict[int, int] = defaultdict(int)
    order: dict[str, list[int]] = defaultdict(list)
    same_key_overlaps: list[str] = []
    unsafe_commits: list[str] = []

    async def handler(event: ConsumedEvent) -> None:
        with lock:
            if event.key in running:
                same_key_overlaps.append(f"{event.key!r}@{event.offset}")
            running.add(event.key)
            in_flight[event.partition] += 1
            most_in_flight[event.partition] = max(most_in_flight[event.partition], in_flight[event.partition])
        await asyncio.sleep(random.uniform(0, 0.02))
        with lock:
            running.discard(event.key)
            in_flight[event.partition] -= 1
            order[event.value["conversationId"]].append(event.value["sequence"])
            finished[event.partition].add(event.offset)

    def check_commit(offsets: dict[tuple[str, int], int]) -> None:
        with lock:
            for (_, partition), point in offsets.items():
                unfinished = set(range(point)) - finished[partition]
                if unfinished:
                    unsafe_commits.append(f"[{partition}] committed {point} before {sorted(unfinished)[:5]} finished")

    factory, commits = commit_spy(check_commit)
    group = unique("ordered")
    with running_worker(settings, group, [topic], handler, consumer_factory=factory):
        wait_for(lambda: sum(len(o) for o in order.values()) >= keys * per_key, "every event", 60)

    assert not same_key_overlaps, "two records of one key ran at once"
    assert not unsafe_commits
    assert all(order[f"conv-{k}"] == list(range(per_key)) for k in range(keys)), dict(order)
    assert max(most_in_flight.values()) > 1, "records never ran concurrently"
    assert len(commits) >= 2
    final = kafka_broker.committed(group, topic, 3)
    assert final == {p: len(finished[p]) for p in range(3)}


def test_commits_stay_under_the_rate_cap_during_a_burst(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(
        kafka_broker,
        registry_emulator,
        tmp_path,
        3,
        commit_interval_ms=1000,
        commit_every_records=200,
        max_commits_per_second=2,
    )
    total = 20_000
    produce_events(settings, topic, [chat_event(f"conv-{i % 50}", i) for i in range(total)])
    handled = [0]
    lock = threading.Lock()

    def handler(event: ConsumedEvent) -> None:
        with lock:
            handled[0] += 1

    factory, commits = commit_spy()
    group = unique("burst")
    with running_worker(settings, group, [topic], handler, consumer_factory=factory):
        wait_for(lambda: handled[0] >= total, "the burst to be handled", 120)

    times: dict[int, list[float]] = defaultdict(list)
    for at, offsets in commits:
        for _, partition in offsets:
            times[partition].append(at)
    gaps = [b - a for series in times.values() for a, b in pairwise(series)]
    assert gaps, "no partition was committed twice"
    assert min(gaps) >= 0.5 - 0.02, f"a partition was committed {min(gaps):.3f} s after its previous commit"
    assert sum(kafka_broker.committed(group, topic, 3).values()) == total
    print(
        f"\n{total} records, {len(commits)} commit requests, per partition "
        f"{ {p: len(t) for p, t in sorted(times.items())} }, shortest gap {min(gaps):.3f} s"
    )


def test_a_slow_handler_pauses_its_partition_and_nothing_is_lost_on_resume(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(kafka_broker, registry_emulator, tmp_path, 1, max_pending_per_partition=20)
    total = 300
    produce_events(settings, topic, [chat_event("conv-1", i) for i in range(total)])
    gate = threading.Event()
    seen: list[int] = []

    def handler(event: ConsumedEvent) -> None:
        gate.wait(30)
        seen.append(event.value["sequence"])

    with running_worker(settings, unique("slow"), [topic], handler) as worker:
        pending = worker.metrics.pending.labels(worker.group, topic, "0")
        paused = worker.metrics.paused.labels(worker.group)
        wait_for(lambda: paused._value.get() == 1, "the partition to be paused", 30)
        most = 0.0
        for _ in range(20):  # held at the bound while the handler is blocked
            most = max(most, pending._value.get())
            time.sleep(0.05)
        gate.set()
        wait_for(lambda: len(seen) >= total, "every record after resuming", 60)
    assert most <= 2 * 20, f"{most} records buffered for a bound of 20"
    assert seen == list(range(total))


def test_revocation_waits_for_records_in_flight_and_commits_before_letting_go(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(kafka_broker, registry_emulator, tmp_path, 1)
    total = 40
    produce_events(settings, topic, [chat_event("conv-1", i) for i in range(total)])
    handled: list[tuple[str, int]] = []
    lock = threading.Lock()

    def handler_for(name: str) -> Any:
        def handle(event: ConsumedEvent) -> None:
            time.sleep(0.1)
            with lock:
                handled.append((name, event.offset))

        return handle

    group = unique("handover")
    with running_worker(settings, group, [topic], handler_for("a")):
        wait_for(lambda: len(handled) >= 5, "the first member to start", 30)
        with running_worker(settings, group, [topic], handler_for("b")):
            wait_for(lambda: len({o for _, o in handled}) >= total, "every record", 60)
    offsets = [o for _, o in handled]
    assert sorted(offsets) == list(range(total)), "a record was handled twice or never"
    assert {name for name, _ in handled} <= {"a", "b"}


def test_ops_endpoint_reports_owner_standby_and_metrics(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(kafka_broker, registry_emulator, tmp_path, 1)
    produce_events(settings, topic, [chat_event("conv-1", i) for i in range(10)])
    seen: list[int] = []
    group = unique("ops")
    with (
        running_worker(settings, group, [topic], lambda e: seen.append(e.offset)) as owner,
        MonitoringServer(owner) as ops,
    ):
        wait_for(lambda: len(seen) == 10, "the records", 30)
        with (
            running_worker(settings, group, [topic], lambda e: seen.append(e.offset)) as second,
            MonitoringServer(second) as second_ops,
        ):

            def states() -> set[str]:
                return {httpx.get(f"{url}/readyz", timeout=5).json()["state"] for url in (ops.url, second_ops.url)}

            wait_for(lambda: states() == {"owner", "standby"}, "one owner and one standby", 30)
            ready = [httpx.get(f"{url}/readyz", timeout=5) for url in (ops.url, second_ops.url)]
            assert [r.status_code for r in ready] == [200, 200]
            owner_status = next(r.json() for r in ready if r.json()["state"] == "owner")
            assert owner_status["partitions"] == [f"{topic}[0]"] and owner_status["memberId"]
            assert httpx.get(f"{ops.url}/healthz", timeout=5).status_code == 200
            lag = f'hubstream_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 0.0'

            def metrics_text() -> str:
                return httpx.get(f"{ops.url}/metrics", timeout=5).text + httpx.get(f"{second_ops.url}/metrics").text

            wait_for(lambda: lag in metrics_text(), "a commit and a lag observation", 30)
            metrics = metrics_text()
    labels = f'group="{group}",topic="{topic}"'
    assert f"hubstream_consumer_records_processed_total{{{labels}}} 10.0" in metrics
    assert f'hubstream_consumer_rebalances_total{{group="{group}",kind="assign"}}' in metrics
    assert "hubstream_consumer_commit_latency_seconds_count" in metrics
    assert f'hubstream_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 0.0' in metrics
    assert f'hubstream_consumer_assigned_partitions{{group="{group}"}} 1.0' in metrics


@pytest.mark.parametrize("concurrency", [1, 3])
def test_sync_and_async_handlers_get_events_with_their_metadata(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path, concurrency: int
) -> None:
    topic, settings = topic_settings(kafka_broker, registry_emulator, tmp_path, 1, key_concurrency=concurrency)
    produce_events(settings, topic, [chat_event("conv-9", 0)])
    got: list[ConsumedEvent] = []

    async def handler(event: ConsumedEvent) -> None:
        got.append(event)

    with running_worker(settings, unique("meta"), [topic], handler):
        wait_for(lambda: got, "the event", 30)
    [event] = got
    assert (event.topic, event.partition, event.offset, event.key) == (topic, 0, 0, b"conv-9")
    assert event.schema_name == CHAT and len(event.schema_id) == 32 and event.timestamp_ms
    assert any(name == "content-type" for name, _ in event.headers)


def test_a_handler_over_its_budget_is_logged_and_one_stuck_past_the_limit_makes_the_worker_unhealthy(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic, settings = topic_settings(kafka_broker, registry_emulator, tmp_path, 1)
    produce_events(settings, topic, [chat_event("conv-1", 0)])
    release = threading.Event()
    options = dataclasses.replace(WorkerOptions.from_settings(settings), handler_budget_s=0.5, stuck_after_s=2.0)
    with (
        caplog.at_level("WARNING", logger="kafka_consumer"),
        running_worker(settings, unique("stuck"), [topic], lambda e: release.wait(30), options=options) as worker,
    ):
        wait_for(lambda: not worker.status().healthy, "the stuck handler to be reported", 30)
        [problem] = worker.status().problems
        assert f"handler for {topic}[0]@0 stuck" in problem
        release.set()
        wait_for(lambda: worker.status().healthy, "the worker to recover", 10)
    assert any("over its 0.5 s budget" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]


def test_a_handler_that_raises_systemexit_stops_its_partition_instead_of_the_worker_loop(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(kafka_broker, registry_emulator, tmp_path, 1)
    produce_events(settings, topic, [chat_event("conv-1", i) for i in range(3)])
    handled: list[int] = []

    def handler(event: ConsumedEvent) -> None:
        if event.offset == 1:
            raise SystemExit("a library called sys.exit()")
        handled.append(event.offset)

    group = unique("exit")
    with running_worker(settings, group, [topic], handler) as worker:
        wait_for(lambda: not worker.status().healthy, "the stop to be reported", 30)
        [problem] = worker.status().problems
        wait_for(lambda: kafka_broker.committed(group, topic, 1) == {0: 1}, "the commit of the finished prefix", 30)
    assert "unexpected SystemExit" in problem and f"{topic}[0]@1" in problem
    assert handled == [0]
    assert kafka_broker.committed(group, topic, 1) == {0: 1}


def test_a_record_backing_off_between_retries_does_not_hold_up_other_keys(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic, settings = topic_settings(
        kafka_broker,
        registry_emulator,
        tmp_path,
        1,
        key_concurrency=2,
        retry_attempts=3,
        retry_initial_backoff_ms=1000,
        retry_max_backoff_ms=1000,
    )
    produce_events(settings, topic, [chat_event("slow", 0)] + [chat_event("fast", i) for i in range(1, 11)])
    lock = threading.Lock()
    done: dict[str, float] = {}
    attempts: list[float] = []

    def handler(event: ConsumedEvent) -> None:
        key = event.value["conversationId"]
        with lock:
            if key == "slow" and len(attempts) < 2:
                attempts.append(time.monotonic())
                raise ConnectionError("flaky downstream")  # backs off 1-2 s before each retry
            done[f"{key}-{event.value['sequence']}"] = time.monotonic()

    with running_worker(settings, unique("backoff"), [topic], handler):
        wait_for(lambda: "slow-0" in done, "the retried record", 30)
    fast = [done[f"fast-{i}"] for i in range(1, 11)]
    assert len(attempts) == 2 and max(fast) < done["slow-0"], "the other key waited for the retries"
    assert max(fast) < attempts[1], "the other key waited for the first backoff"
