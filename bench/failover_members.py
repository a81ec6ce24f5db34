"""Group members for the failover measurements (bench/failover.py) and tests (tests/test_failover.py).

- ``record``: the handler of a ``hubstream consume --handler bench.failover_members:record`` worker.
- ``python -m bench.failover_members --group G --topic T``: a bare confluent-kafka consumer with exactly the
  consumer config hubstream builds from the same HUBSTREAM_* settings (kafka_config.consumer_config). It
  processes nothing; it stores each record's offset, commits every second and on SIGTERM, and close()s.

Both append to $HS_FAILOVER_FILE one line when a record starts and one when it is done:
``start|done <pid> <partition> <offset> <time.time()>``. A line is a single write to an O_APPEND file, so the
lines of several processes never interleave. $HS_FAILOVER_DELAY_S makes the handler sleep between the two.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple, TypeVar

from confluent_kafka import Consumer, KafkaException

from hubstream import kafka_config
from hubstream.settings import Settings
from kafka_consumer.events import ConsumedEvent

FILE_ENV = "HS_FAILOVER_FILE"
DELAY_ENV = "HS_FAILOVER_DELAY_S"
_COMMIT_EVERY_S = 1.0  # as the worker's default commit_interval_ms

T = TypeVar("T")


class Line(NamedTuple):
    what: str  # start | done
    pid: int
    partition: int
    offset: int
    at: float  # time.time()


def read_lines(path: Path) -> list[Line]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().split("\n")[:-1]:  # the part after the last newline may be a line being written
        what, pid, partition, offset, at = text.split()
        lines.append(Line(what, int(pid), int(partition), int(offset), float(at)))
    return lines


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy; TimeoutError names what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def _write(what: str, partition: int, offset: int) -> None:
    line = f"{what} {os.getpid()} {partition} {offset} {time.time():.6f}\n"
    fd = os.open(os.environ[FILE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record(event: ConsumedEvent) -> None:
    _write("start", event.partition, event.offset)
    delay = float(os.environ.get(DELAY_ENV, "0"))
    if delay:
        time.sleep(delay)
    _write("done", event.partition, event.offset)


def bare(group: str, topics: list[str]) -> int:
    """A plain Consumer with hubstream's config: poll, store, commit each second; SIGTERM commits and closes."""
    consumer = Consumer(kafka_config.consumer_config(Settings(), group))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    consumer.subscribe(topics)
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                _write("start", message.partition(), message.offset())
                _write("done", message.partition(), message.offset())
                consumer.store_offsets(message)
            if time.monotonic() - last_commit >= _COMMIT_EVERY_S:
                last_commit = time.monotonic()
                _commit(consumer, asynchronous=True)
        _commit(consumer, asynchronous=False)
    finally:
        consumer.close()  # LeaveGroup
    return 0


def _commit(consumer: Consumer, *, asynchronous: bool) -> None:
    with suppress(KafkaException):  # nothing stored since the last commit (_NO_OFFSET), or a rebalance in progress
        consumer.commit(asynchronous=asynchronous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", action="append", required=True)
    args = parser.parse_args()
    return bare(args.group, args.topic)


if __name__ == "__main__":
    sys.exit(main())
