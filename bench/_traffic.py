"""Paced open-loop publishing through the producer API, and joining what the probes saw arrive.

The publisher schedules event i at ``start + i / rate`` whatever happened to the events before it (open loop: a
slow answer does not slow the offered rate down), and takes each event's send time when it is due, just before it
is handed to a connection for its POST. Latency
is arrival (a probe's clock, the same machine's) minus that send time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench._stack import chat_json

_CONNECTIONS = 64


@dataclass
class Published:
    sent: dict[str, float] = field(default_factory=dict)  # eventId -> time just before its POST
    answered_ms: list[float] = field(default_factory=list)  # each POST's round trip
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0  # from the first send to the last

    @property
    def rate(self) -> float:
        return len(self.sent) / self.seconds if self.seconds else 0.0


async def publish(
    api_url: str,
    topic: str,
    count: int,
    rate: float,
    recipient_of: Callable[[int], str],
    run: str,
    per_post: int = 1,
) -> Published:
    """POST ``count`` events at ``rate`` per second, ``per_post`` per request (more than one: the batch route), over
    ``_CONNECTIONS`` keep-alive connections.

    Raw HTTP/1.1 on asyncio streams, not httpx: on two busy cores httpx spends milliseconds of CPU per request and
    could not offer 1,000/s. An event's send time is taken when it is due and queued for the next free
    connection, so a saturated API shows up as latency, not as a lower offered rate."""
    result = Published()
    parts = urlsplit(api_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"/v1/topics/{topic}/events" + (":batch" if per_post > 1 else "")
    due: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await due.get()) is not None:
                key, body = item
                head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
                writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
                status, answer = await _response(reader)
                result.answered_ms.append((time.time() - result.sent[key]) * 1000)
                if status >= 300:
                    result.errors += 1
                    result.first_error = result.first_error or f"HTTP {status}: {answer[:200]!r}"
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(_CONNECTIONS)]
    start = time.perf_counter() + 0.05
    for first in range(0, count, per_post):
        delay = start + first / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        batch = range(first, min(count, first + per_post))
        now = time.time()
        for i in batch:
            result.sent[f"{run}-{i}"] = now
        events = [chat_json(i, recipient_of(i), run) for i in batch]
        body = events[0] if per_post == 1 else '{"events":[' + ",".join(events) + "]}"
        due.put_nowait((f"{run}-{first}", body.encode()))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    times = result.sent.values()
    result.seconds = max(times) - min(times) if times else 0.0
    return result


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def read_arrivals(paths: Sequence[Path], prefix: str) -> dict[str, float]:
    """eventId (or key) -> first arrival, for the ids of one run."""
    arrivals: dict[str, float] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            key, _, at = line.partition("\t")
            if key.startswith(prefix) and at:
                arrivals.setdefault(key, float(at))
    return arrivals


def wait_arrivals(paths: Sequence[Path], ids: set[str], prefix: str, timeout_s: float) -> dict[str, float]:
    """Wait until every id arrived (or the timeout), then return the arrivals."""
    deadline = time.monotonic() + timeout_s
    while True:
        arrivals = read_arrivals(paths, prefix)
        if ids <= arrivals.keys() or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.3)


def latencies_ms(sent: dict[str, float], arrivals: dict[str, float], skip: int = 0) -> tuple[list[float], int]:
    """Per event (in send order, the first ``skip`` left out as warm-up): arrival - send in ms; and how many of
    the measured events never arrived."""
    measured = sorted(sent, key=sent.__getitem__)[skip:]
    values = [(arrivals[k] - sent[k]) * 1000 for k in measured if k in arrivals]
    return values, len(measured) - len(values)


def read_status(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}
