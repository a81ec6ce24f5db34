import asyncio
import inspect
import itertools
import multiprocessing
import sqlite3
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from hubstream.errors import ConfigurationError
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.idempotency import ALREADY_PROCESSED, IdempotencyError, ProcessedIds, idempotent


def _event(event_id: str, offset: int = 0) -> ConsumedEvent:
    return ConsumedEvent(
        value={"eventId": event_id, "amount": 10},
        topic="payments",
        partition=0,
        offset=offset,
        key=None,
        timestamp_ms=None,
        schema_id="s1",
        schema_name="hubstream.Payment",
    )


def _create_effects(path: Path) -> None:
    # no unique constraint on purpose: a second effect for an id must show up as a second row
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, worker TEXT NOT NULL)")


def _effect_counts(path: Path) -> Counter[str]:
    with sqlite3.connect(path) as conn:
        return Counter(row[0] for row in conn.execute("SELECT event_id FROM effects"))


def _pay_once(store: ProcessedIds, event_id: str, worker: str) -> bool:
    with store.once(event_id) as tx:
        if tx is ALREADY_PROCESSED:
            return False
        tx.execute("INSERT INTO effects (event_id, worker) VALUES (?, ?)", (event_id, worker))
        return True


def _write_then_fail(store: ProcessedIds, event_id: str) -> None:
    """A handler that writes its effect, then raises inside once()."""
    with store.once(event_id) as tx:
        assert tx is not ALREADY_PROCESSED
        tx.execute("INSERT INTO effects (event_id, worker) VALUES (?, 'w')", (event_id,))
        raise RuntimeError("handler failed after writing")


def _commit_inside(store: ProcessedIds, event_id: str) -> None:
    """A handler that ends once()'s transaction itself."""
    with store.once(event_id) as tx:
        assert isinstance(tx, sqlite3.Connection)
        tx.execute("COMMIT")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "processed.sqlite"
    ProcessedIds(path).close()
    _create_effects(path)
    return path


def test_decorated_handler_runs_once_per_event_id(db: Path) -> None:
    calls: list[str] = []
    with ProcessedIds(db) as store:

        @idempotent(store)
        def pay(event: ConsumedEvent) -> None:
            calls.append(event.value["eventId"])

        for event in (_event("a", 0), _event("b", 1), _event("a", 2), _event("b", 3)):
            pay(event)
        assert calls == ["a", "b"]
        assert store.seen("a") and store.seen("b") and not store.seen("c")


def test_once_commits_effect_and_mark_together(db: Path) -> None:
    with ProcessedIds(db) as store:
        assert _pay_once(store, "p1", "w") is True
        assert _pay_once(store, "p1", "w") is False
        assert store.seen("p1")
    assert _effect_counts(db) == {"p1": 1}


def test_marks_survive_reopening_the_store(db: Path) -> None:
    with ProcessedIds(db) as store:
        _pay_once(store, "p1", "first run")
    with ProcessedIds(db) as store:
        assert store.seen("p1")
        assert _pay_once(store, "p1", "after restart") is False
    assert _effect_counts(db) == {"p1": 1}


def test_exception_in_body_rolls_back_effect_and_mark(db: Path) -> None:
    with ProcessedIds(db) as store:
        with pytest.raises(RuntimeError):
            _write_then_fail(store, "p1")
        assert not store.seen("p1")
        assert _effect_counts(db) == {}
        assert _pay_once(store, "p1", "retry") is True  # the redelivery does the work
    assert _effect_counts(db) == {"p1": 1}


def test_failing_decorated_handler_is_not_marked(db: Path) -> None:
    attempts: list[int] = []
    with ProcessedIds(db) as store:

        @idempotent(store)
        def flaky(event: ConsumedEvent) -> None:
            attempts.append(event.offset)
            if len(attempts) == 1:
                raise ConnectionError("downstream unavailable")

        with pytest.raises(ConnectionError):
            flaky(_event("a", 5))
        assert not store.seen("a")
        flaky(_event("a", 5))
        flaky(_event("a", 5))
        assert attempts == [5, 5]


def test_async_handler_decorator(db: Path) -> None:
    calls: list[str] = []
    with ProcessedIds(db) as store:

        @idempotent(store, key=lambda event: f"{event.topic}/{event.value['eventId']}")
        async def pay(event: ConsumedEvent) -> None:
            await asyncio.sleep(0)
            calls.append(event.value["eventId"])

        assert inspect.iscoroutinefunction(pay)  # the worker picks its event loop by this
        for event in (_event("a"), _event("a"), _event("b")):
            asyncio.run(pay(event))
        assert calls == ["a", "b"]
        assert store.seen("payments/a")


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's long write: holds SQLite's write lock until the returned connection rolls back."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_an_async_handlers_marks_wait_for_a_locked_database_off_the_event_loop(db: Path) -> None:
    ticks: list[float] = []

    async def run() -> None:
        with ProcessedIds(db, busy_timeout_s=1.5) as store:

            @idempotent(store)
            async def pay(event: ConsumedEvent) -> None:
                return None

            async def ticker() -> None:
                while True:
                    ticks.append(asyncio.get_running_loop().time())
                    await asyncio.sleep(0.05)

            holder = _hold_write_lock(db)
            tick = asyncio.create_task(ticker())
            try:
                started = asyncio.get_running_loop().time()
                await pay(_event("a"))  # the mark waits 1.5 s for the lock, then is kept in memory
                waited = asyncio.get_running_loop().time() - started
            finally:
                tick.cancel()
                holder.rollback()
            assert waited >= 1.4, waited
            assert store.seen("a") and store.pending == 1

    asyncio.run(run())
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) > 20 and max(gaps) < 0.5, f"the loop stalled: {len(ticks)} ticks, longest gap {max(gaps):.2f} s"


def test_a_mark_that_fails_never_runs_the_effect_again_and_is_written_later(db: Path) -> None:
    effects: list[str] = []
    with ProcessedIds(db, busy_timeout_s=0.2) as store:

        @idempotent(store)
        def pay(event: ConsumedEvent) -> None:
            effects.append(event.value["eventId"])

        holder = _hold_write_lock(db)
        pay(_event("a"))  # the effect runs; its mark cannot be written
        pay(_event("a"))  # a retry of the same event in this process: skipped
        assert effects == ["a"] and store.pending == 1
        holder.rollback()

        pay(_event("b"))  # the next mark writes the pending one too
        assert effects == ["a", "b"] and store.pending == 0
    with ProcessedIds(db) as reopened:
        assert reopened.seen("a") and reopened.seen("b")


def test_unwritten_marks_are_bounded(db: Path) -> None:
    with ProcessedIds(db, busy_timeout_s=0.05, max_pending=2) as store:
        holder = _hold_write_lock(db)
        try:
            for event_id in ("a", "b", "c"):
                assert store.mark_after_effect(event_id)
        finally:
            holder.rollback()
        assert store.pending == 2 and not store.seen("a") and store.seen("c")
    with pytest.raises(ConfigurationError, match="max_pending"):
        ProcessedIds(db, max_pending=0)


def test_event_without_event_id_is_a_clear_error(db: Path) -> None:
    with ProcessedIds(db) as store:
        handler = idempotent(store)(lambda event: None)
        event = ConsumedEvent({"id": 1}, "t", 0, 7, None, None, "s1", "hubstream.Other")
        with pytest.raises(IdempotencyError, match="no eventId"):
            handler(event)


def test_nested_once_and_ending_the_transaction_are_refused(db: Path) -> None:
    with ProcessedIds(db) as store:
        with pytest.raises(IdempotencyError, match="nested"), store.once("a"), store.once("b"):
            pass
        with pytest.raises(IdempotencyError, match="ended the transaction"):
            _commit_inside(store, "c")
        assert not store.seen("a") and not store.seen("b") and not store.seen("c")


def test_retention_forgets_old_ids(db: Path) -> None:
    now = [1_000_000.0]
    with ProcessedIds(db, retention=timedelta(days=7), clock=lambda: now[0]) as store:
        store.mark("old")
        now[0] += timedelta(days=6).total_seconds()
        store.mark("recent")
        now[0] += timedelta(days=2).total_seconds()
        assert store.prune() == 1
        assert not store.seen("old") and store.seen("recent")


def test_size_bound_prunes_oldest_in_batches(db: Path) -> None:
    with ProcessedIds(db, max_entries=10, prune_every=5) as store:
        for n in range(14):
            store.mark(f"id-{n}")
        assert store.count() == 14  # no prune per mark: the next batch is due at the 15th
        store.mark("id-14")
        assert store.count() == 10
        assert not any(store.seen(f"id-{n}") for n in range(5))
        assert all(store.seen(f"id-{n}") for n in range(5, 15))


def test_opening_prunes(db: Path) -> None:
    with ProcessedIds(db) as store:
        for n in range(20):
            store.mark(f"id-{n}")
    with ProcessedIds(db, max_entries=8) as store:
        assert store.count() == 8
        assert store.seen("id-19") and not store.seen("id-11")


def test_threads_sharing_a_store_apply_each_effect_once(db: Path) -> None:
    ids = [f"id-{n}" for n in range(200)]
    with ProcessedIds(db) as store:
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def work(name: str) -> None:
            start.wait()
            try:
                for event_id in ids:
                    _pay_once(store, event_id, name)
            except BaseException as exc:  # noqa: BLE001 - collected, and the test asserts there are none
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert _effect_counts(db) == Counter(dict.fromkeys(ids, 1))


def _race(path: str, ids: list[str], worker: str, start: threading.Barrier, done: "multiprocessing.Queue[int]") -> None:
    store = ProcessedIds(path)
    start.wait()
    done.put(sum(_pay_once(store, event_id, worker) for event_id in ids))
    store.close()


def test_processes_racing_on_the_same_ids_apply_each_effect_once(db: Path) -> None:
    ids = [f"id-{n}" for n in range(300)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    done: multiprocessing.Queue[int] = ctx.Queue()
    workers = [ctx.Process(target=_race, args=(str(db), ids, f"p{n}", start, done)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    applied = [done.get(timeout=5) for _ in workers]
    assert sum(applied) == len(ids)
    assert _effect_counts(db) == Counter(dict.fromkeys(ids, 1))
