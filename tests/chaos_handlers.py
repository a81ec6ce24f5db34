"""Handlers for the chaos tests' worker processes (`hubstream consume --handler tests.chaos_handlers:NAME`).

Configured through HS_TEST_* variables (not HUBSTREAM_*: the settings object rejects unknown keys there):

    HS_TEST_STORE        SQLite file holding the processed ids (ProcessedIds) and the ``effects`` table
    HS_TEST_INVOCATIONS  log of handler calls: ``<pid> <partition> <offset> <eventId> call|skip``
    HS_TEST_MAX_DELAY_S  each call sleeps a random 0..this many seconds first (default 0)

Every call appends a ``call`` line before it touches the store, and a ``skip`` line when the store says the
event was processed already; each line is one write to an O_APPEND file, so processes never interleave and a
kill -9 never leaves half a line.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from contextlib import closing

from kafka_consumer.events import ConsumedEvent
from kafka_consumer.idempotency import ALREADY_PROCESSED, ProcessedIds

EFFECTS_TABLE = "CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, pid INTEGER NOT NULL)"

_store: ProcessedIds | None = None
_opening = threading.Lock()


def effect_once(event: ConsumedEvent) -> None:
    """Insert one ``effects`` row per eventId, in the same transaction as its processed mark."""
    event_id = str(event.value["eventId"])
    _log(event, event_id, "call")
    max_delay = float(os.environ.get("HS_TEST_MAX_DELAY_S", "0"))
    if max_delay:
        time.sleep(random.uniform(0, max_delay))  # outside the transaction: it holds the file's write lock
    with _processed_ids().once(event_id) as tx:
        if tx is ALREADY_PROCESSED:
            _log(event, event_id, "skip")
        else:
            tx.execute("INSERT INTO effects (event_id, pid) VALUES (?, ?)", (event_id, os.getpid()))


def _processed_ids() -> ProcessedIds:
    """The process's store, opened on the first call (a connection must not cross the fork into a worker)."""
    global _store
    with _opening:
        if _store is None:
            path = os.environ["HS_TEST_STORE"]
            store = ProcessedIds(path)  # creates the file in WAL mode
            with closing(sqlite3.connect(path, timeout=30)) as conn, conn:
                conn.execute(EFFECTS_TABLE)
            _store = store
        return _store


def _log(event: ConsumedEvent, event_id: str, what: str) -> None:
    line = f"{os.getpid()} {event.partition} {event.offset} {event_id} {what}\n"
    fd = os.open(os.environ["HS_TEST_INVOCATIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
