"""The seam between the worker's poll loop and what it does with records: the Processor protocol.

The loop (kafka_consumer.runtime) owns the Kafka consumer, group membership, offsets, backpressure and
commits. A processor does the work: the handler processor calls a function per event (retries, dead letters),
the sink processor writes an archive, the delivery processor fills mailboxes. Every call comes from the poll
thread, so a processor that runs work elsewhere (an asyncio loop, a thread pool) hands results back through
``reports()``.

The loop commits an offset only when every record before it was reported Completed, and never past
``commit_limit()`` (a sink's durable point). A Halted partition takes no more records until it is revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from hubstream.errors import HubstreamError
from kafka_consumer.health import Health
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.options import WorkerOptions
from kafka_consumer.records import Record

TP = tuple[str, int]
NOTHING_DURABLE = -1  # a commit limit: nothing of the partition may be committed yet


class Lane(NamedTuple):
    """A partition as one assignment holds it: assigned again, it gets a new lane id, and reports from the old
    lane are ignored."""

    id: int
    tp: TP


@dataclass(frozen=True)
class Completed:
    lane: int
    tp: TP
    offset: int


@dataclass(frozen=True)
class Halted:
    lane: int
    tp: TP
    offset: int
    reason: str


Report = Completed | Halted


@dataclass(frozen=True)
class WorkerContext:
    """What a processor gets from its worker when it starts."""

    group: str
    options: WorkerOptions
    metrics: WorkerMetrics
    health: Health


class ProcessingStoppedError(HubstreamError):
    """The worker stopped on a record it could not process; that record was not committed."""

    def __init__(self, record: Record, reason: BaseException) -> None:
        self.topic, self.partition, self.offset = record.topic, record.partition, record.offset
        super().__init__(
            f"stopped at {self.topic}[{self.partition}]@{self.offset} without committing it: {reason}. "
            "Fix the cause and restart; the record will be delivered again."
        )


class Processor(Protocol):
    def start(self, context: WorkerContext) -> None:
        """Before the first poll."""
        ...

    def assigned(self, lanes: list[Lane], committed: Callable[[], dict[TP, int | None]]) -> dict[TP, int]:
        """Partitions this member now owns. Returns, per partition, an offset to start from when it differs from
        the committed one (``committed()`` asks the broker), e.g. past what a sink already holds durably."""
        ...

    def accept(self, records: list[tuple[Lane, Record]]) -> None:
        """Fetched records of owned partitions, in offset order within each partition."""
        ...

    def reports(self) -> list[Report]:
        """What finished, or could not, since the last call."""
        ...

    def commit_limit(self, tp: TP) -> int | None:
        """The highest offset this partition may be committed to: None for "whatever completed", NOTHING_DURABLE
        while nothing may be committed."""
        ...

    def drain(self, lanes: list[Lane], timeout_s: float) -> None:
        """Revocation or shutdown: start nothing more of these lanes, finish what is in flight (bounded) and make
        the finished work durable. Records still running when the time is up are not reported Completed, so the
        partition's next owner handles them again."""
        ...

    def release(self, lanes: list[Lane], *, lost: bool) -> None:
        """Forget these partitions: after their last commit, or at once when they were lost (another member may
        own them already)."""
        ...

    def tick(self) -> None:
        """Called about once a second from the poll loop (roll files, watch slow handlers)."""
        ...

    def close(self) -> None:
        """The worker stops; release what the processor holds."""
        ...
