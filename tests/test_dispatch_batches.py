"""Plain handlers get their records in batches on a pool thread: order, retries, awaitables and halts hold as
with one record per thread hop (no broker: the dispatcher alone)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable

from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import PermanentError, RetryPolicy
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.processing import Completed, Halted, Lane, Report
from kafka_consumer.processors.dispatch import Dispatcher, Work
from kafka_consumer.records import Record
from tests.fixtures.waiting import wait_for

TP = ("orders", 0)


def work(offset: int, key: bytes = b"k") -> Work:
    record = Record(TP[0], TP[1], offset, key, b"", [], -1)
    return Work(record, event=ConsumedEvent({}, TP[0], TP[1], offset, key, None, "0" * 32, "Order"))


def dispatcher(handler: object, attempts: int = 3, concurrency: int = 1) -> Dispatcher:
    return Dispatcher(
        group="g",
        handler=handler,  # type: ignore[arg-type]
        retry=RetryPolicy(attempts, 0, 0),
        dead_letters=None,
        concurrency=concurrency,
        threads=2,
        metrics=WorkerMetrics(),
    )


def reports_until(d: Dispatcher, count: int) -> list[Report]:
    got: list[Report] = []

    def enough() -> bool:
        while not d.reports.empty():
            got.append(d.reports.get_nowait())
        return len(got) >= count

    wait_for(enough, f"{count} reports", 10)
    return got


def test_records_run_in_order_with_retries_and_awaitables_in_between() -> None:
    seen: list[int] = []
    failures = {3: 2, 150: 1}  # offset: attempts that fail before one succeeds
    lock = threading.Lock()

    async def later(offset: int) -> None:
        await asyncio.sleep(0.01)
        seen.append(offset)

    def handler(event: ConsumedEvent) -> Awaitable[None] | None:
        with lock:
            if failures.get(event.offset, 0) > 0:
                failures[event.offset] -= 1
                raise ConnectionError("try again")
        if event.offset == 70:
            return later(event.offset)
        seen.append(event.offset)
        return None

    d = dispatcher(handler)
    d.start()
    try:
        d.open_lane(Lane(1, TP))
        d.submit([(1, work(offset)) for offset in range(200)])
        reports = reports_until(d, 200)
        assert [r.offset for r in reports] == list(range(200))
        assert all(isinstance(r, Completed) for r in reports)
        assert seen == list(range(200))
        counted = d._metrics.for_topic("g", TP[0])
        wait_for(lambda: counted.processed._value.get() == 200, "every record counted", 5)
        assert counted.retried._value.get() == 3
    finally:
        d.stop()


def test_a_record_that_cannot_be_finished_halts_the_lane_and_nothing_after_it_runs() -> None:
    seen: list[int] = []

    def handler(event: ConsumedEvent) -> None:
        if event.offset == 5:
            raise PermanentError("bad record")
        seen.append(event.offset)

    d = dispatcher(handler)  # dead letters off: a record that fails stops its partition
    d.start()
    try:
        d.open_lane(Lane(1, TP))
        d.submit([(1, work(offset)) for offset in range(20)])
        reports = reports_until(d, 6)
        assert [r.offset for r in reports[:5]] == [0, 1, 2, 3, 4]
        assert isinstance(reports[5], Halted) and reports[5].offset == 5
        assert seen == [0, 1, 2, 3, 4]
    finally:
        d.stop()


def test_with_key_concurrency_each_key_keeps_its_order() -> None:
    seen: list[tuple[bytes, int]] = []
    lock = threading.Lock()

    def handler(event: ConsumedEvent) -> None:
        assert event.key is not None
        with lock:
            seen.append((event.key, event.offset))

    d = dispatcher(handler, concurrency=4)
    d.start()
    try:
        d.open_lane(Lane(1, TP))
        d.submit([(1, work(offset, key=b"k%d" % (offset % 5))) for offset in range(300)])
        reports_until(d, 300)
        for key in {k for k, _ in seen}:
            offsets = [o for k, o in seen if k == key]
            assert offsets == sorted(offsets) and len(offsets) == 60
    finally:
        d.stop()
