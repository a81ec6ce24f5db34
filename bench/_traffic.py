"""Paced open-loop publishing through the producer API, and joining what the probes saw arrive.

The publisher schedules event i at ``start + i / rate`` whatever happened to the events before it (open loop: a
slow answer does not slow the offered rate down), and takes each event's send time just before its POST. Latency
is arrival (a probe's clock, the same machine's) minus that send time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._stack import chat_json


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
    api_url: str, topic: str, count: int, rate: float, recipient_of: Callable[[int], str], run: str
) -> Published:
    """POST ``count`` events, one per request, at ``rate`` per second."""
    result = Published()
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=30) as client:

        async def post(i: int) -> None:
            body = chat_json(i, recipient_of(i), run).encode()
            result.sent[f"{run}-{i}"] = started = time.time()
            try:
                response = await client.post(
                    f"/v1/topics/{topic}/events", content=body, headers={"content-type": "application/json"}
                )
                result.answered_ms.append((time.time() - started) * 1000)
                failed = None if response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                failed = f"{exc.__class__.__name__}: {exc}"
            if failed:
                result.errors += 1
                result.first_error = result.first_error or failed

        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
    times = result.sent.values()
    result.seconds = max(times) - min(times) if times else 0.0
    return result


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
