"""Handlers stuck past the drain timeout: their threads are abandoned, and a worker whose every handler thread is
abandoned reports unhealthy until one returns."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import RetryPolicy
from kafka_consumer.health import HandlerWatch, Health
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.monitoring import MonitoringServer
from kafka_consumer.processing import Lane
from kafka_consumer.processors.dispatch import Dispatcher, Work
from kafka_consumer.records import Record
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, make_settings, produce_events, running_worker, write_catalog
from tests.fixtures.waiting import wait_for

TP = ("orders", 0)


def work(offset: int) -> Work:
    record = Record(TP[0], TP[1], offset, b"k", b"", [], -1)
    event = ConsumedEvent({}, TP[0], TP[1], offset, b"k", None, "0" * 32, "Order")
    return Work(record, event=event)


def test_a_handler_running_past_the_drain_holds_its_thread_until_it_returns() -> None:
    release = threading.Event()
    started = threading.Event()

    def handler(event: ConsumedEvent) -> None:
        started.set()
        release.wait(30)

    dispatcher = Dispatcher(
        group="g",
        handler=handler,
        retry=RetryPolicy(1, 0, 0),
        dead_letters=None,
        concurrency=1,
        threads=1,
        metrics=WorkerMetrics(),
    )
    dispatcher.start()
    try:
        dispatcher.open_lane(Lane(1, TP))
        dispatcher.submit([(1, work(7))])
        assert started.wait(5)
        assert dispatcher.close_lanes([1], 0.1) == [(TP, 7)]
        assert dispatcher.abandoned() == [(TP, 7)] and dispatcher.abandoned_threads == 1
        release.set()
        wait_for(lambda: dispatcher.abandoned_threads == 0, "the handler to return", 5)
    finally:
        release.set()
        dispatcher.stop()


def test_the_watch_reports_the_pool_stuck_only_while_every_thread_is_abandoned() -> None:
    health = Health("g", stall_after_s=30)
    health.joined = True
    watch = HandlerWatch(health, budget_s=1, stuck_after_s=300, drain_timeout_s=0.5)

    watch.check_pool([(TP, 7)], threads=2)
    assert health.status().healthy
    watch.check_pool([(TP, 7), (("orders", 1), 3)], threads=2)
    status = health.status()
    assert not status.healthy
    [problem] = status.problems
    assert problem.startswith("2 stuck handler(s) hold all 2 handler thread(s)")
    assert "orders[0]@7, orders[1]@3" in problem and "0.5 s drain timeout" in problem
    watch.check_pool([(TP, 7)], threads=2)
    assert health.status().healthy


def test_a_worker_whose_every_handler_thread_is_abandoned_is_unhealthy_until_one_returns(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("stuck", partitions=1)
    settings = make_settings(
        kafka_broker,
        registry_emulator,
        write_catalog(tmp_path, {topic: CHAT}),
        consumer={"handler_threads": 1, "drain_timeout_ms": 300},
    )
    produce_events(settings, topic, [chat_event("conv-1", 0)])
    release = threading.Event()
    blocked = threading.Event()
    handled: list[int] = []

    def stuck(event: ConsumedEvent) -> None:
        blocked.set()
        release.wait()  # until the test lets it go: a handler no drain can interrupt
        handled.append(event.offset)

    group = unique("stuck")
    try:
        with running_worker(settings, group, [topic], stuck) as worker, MonitoringServer(worker) as ops:
            assert blocked.wait(30), "the handler never started"
            assert httpx.get(f"{ops.url}/healthz", timeout=5).status_code == 200  # running long is not stuck yet
            # a second member joins: the (eager) rebalance revokes the partition, whose drain gives up after 0.3 s
            with running_worker(settings, group, [topic], lambda e: handled.append(e.offset)):
                wait_for(lambda: not worker.status().healthy, "the worker to report its pool stuck", 30)
                health = httpx.get(f"{ops.url}/healthz", timeout=5)
                assert health.status_code == 503
                [problem] = health.json()["problems"]
                assert problem.startswith("1 stuck handler(s) hold all 1 handler thread(s)")
                assert f"{topic}[0]@0" in problem
                release.set()
                wait_for(lambda: worker.status().healthy, "the worker to be healthy again", 30)
                assert httpx.get(f"{ops.url}/healthz", timeout=5).status_code == 200
                assert worker.processor.abandoned_threads == 0  # type: ignore[attr-defined]
                wait_for(lambda: handled.count(0) >= 2, "the record handled again by its next owner", 30)
    finally:
        release.set()  # never leave the handler's thread blocked
