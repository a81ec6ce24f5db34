"""Handlers for worker processes started by tests (`hubstream consume --handler tests.worker_handlers:NAME`).

Configured through HS_TEST_* variables (not HUBSTREAM_*: the settings object rejects unknown keys there).
"""

from __future__ import annotations

import os
import time

from kafka_consumer.events import ConsumedEvent


def record(event: ConsumedEvent) -> None:
    """Append one line per handled record to $HS_TEST_RECORD_FILE, after sleeping $HS_TEST_DELAY_S.

    Line: ``<pid> <partition> <offset> <conversationId> <sequence> <time.time() at the end>``; each line is a
    single write to an O_APPEND file, so lines of concurrent processes do not interleave.
    """
    delay = float(os.environ.get("HS_TEST_DELAY_S", "0"))
    if delay:
        time.sleep(delay)
    line = (
        f"{os.getpid()} {event.partition} {event.offset} {event.value.get('conversationId')} "
        f"{event.value.get('sequence')} {time.time():.6f}\n"
    )
    fd = os.open(os.environ["HS_TEST_RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
