"""The partitions a worker owns: their offsets, pause state and stops, and the backpressure that bounds them.

Backpressure: while a partition has ``max_pending`` records waiting or in flight, the poll loop stops fetching for
a moment (processing usually catches up at once); if it stays full for ``hold_before_pause_s``, the partition is
paused and the others are fetched again. Pausing costs more than holding: librdkafka drops what it prefetched for
the partition and fetches it again on resume. A paused partition resumes when it drains to half its bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from kafka_consumer.offsets import PartitionOffsets
from kafka_consumer.processing import NOTHING_DURABLE, Completed, Lane, Report
from kafka_consumer.records import Record

TP = tuple[str, int]


@dataclass
class Owned:
    lane: Lane
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    first_offset: int | None = None  # where consumption started: the committed offset at assignment
    asked_committed: bool = False  # the group's committed offset was looked up (for the lag of idle partitions)
    paused: bool = False
    stopped: str | None = None


class OwnedPartitions:
    def __init__(self) -> None:
        self._owned: dict[TP, Owned] = {}
        self._next_lane = 0

    def __iter__(self) -> Iterator[tuple[TP, Owned]]:
        return iter(list(self._owned.items()))

    def __len__(self) -> int:
        return len(self._owned)

    def get(self, tp: TP) -> Owned | None:
        return self._owned.get(tp)

    @property
    def tps(self) -> frozenset[TP]:
        return frozenset(self._owned)

    def lanes(self, tps: set[TP] | frozenset[TP] | None = None) -> list[Lane]:
        return [owned.lane for tp, owned in self._owned.items() if tps is None or tp in tps]

    def add(self, tp: TP) -> Lane | None:
        """Own a partition; None when it is owned already (a cooperative rebalance re-announcing it)."""
        if tp in self._owned:
            return None
        self._next_lane += 1
        owned = self._owned[tp] = Owned(Lane(self._next_lane, tp))
        return owned.lane

    def pause(self, consumer: Consumer, tps: Iterable[TP]) -> None:
        """Stop fetching these partitions (those owned and not paused already)."""
        todo = [tp for tp in tps if (owned := self._owned.get(tp)) is not None and not owned.paused]
        if todo:
            consumer.pause([TopicPartition(*tp) for tp in todo])
            for tp in todo:
                self._owned[tp].paused = True

    def resume(self, consumer: Consumer, tps: Iterable[TP]) -> None:
        """Fetch these partitions again (those owned and paused)."""
        todo = [tp for tp in tps if (owned := self._owned.get(tp)) is not None and owned.paused]
        if todo:
            consumer.resume([TopicPartition(*tp) for tp in todo])
            for tp in todo:
                self._owned[tp].paused = False

    def stop(self, consumer: Consumer | None, tp: TP, reason: str) -> bool:
        """A partition that cannot go on: take nothing more of it and pause it. False if it was stopped already."""
        owned = self._owned.get(tp)
        if owned is None or owned.stopped:
            return False
        owned.stopped = reason
        if consumer is not None:
            self.pause(consumer, [tp])
        return True

    def stopped(self) -> dict[TP, str]:
        return {tp: owned.stopped for tp, owned in self._owned.items() if owned.stopped}

    def start_at(
        self, consumer: Consumer, new: list[TopicPartition], starts: dict[TP, int], *, cooperative: bool
    ) -> None:
        """Start new partitions where the processor says (past output it holds durably) instead of at the commit."""
        for tp in new:
            start = starts.get((tp.topic, tp.partition))
            owned = self._owned.get((tp.topic, tp.partition))
            if start is not None and owned is not None:
                tp.offset = start
                owned.offsets.start_at(start)  # the skipped records count as committable even if nothing follows
        if cooperative:
            consumer.incremental_assign(new)
        else:
            consumer.assign(new)

    def remove(self, tps: set[TP]) -> None:
        for tp in tps:
            self._owned.pop(tp, None)

    def track(self, record: Record) -> Lane | None:
        """A fetched record: its lane, or None when it must be dropped (revoked, stopped, or dispatched already
        because it was fetched again after a quick revoke and re-assign)."""
        owned = self._owned.get(record.tp)
        if owned is None or owned.stopped:
            return None
        offset = record.offset
        if owned.offsets.seen(offset):
            return None
        if owned.first_offset is None:
            owned.first_offset = offset
        owned.offsets.started(offset)
        return owned.lane

    def apply(self, report: Report) -> Owned | None:
        """A processor's report; returns the partition when it belongs to a current lane."""
        owned = self._owned.get(report.tp)
        if owned is None or owned.lane.id != report.lane:
            return None  # from a lane of an earlier assignment
        if isinstance(report, Completed):
            owned.offsets.finished(report.offset)
        return owned

    def commit_points(self, limit: Callable[[TP], int | None], only: set[TP] | None = None) -> dict[TP, int]:
        """Per partition, the offset that may be committed now: below every unfinished record and the limit."""
        points = {}
        for tp, owned in self._owned.items():
            if only is not None and tp not in only:
                continue
            point = owned.offsets.committable
            bound = limit(tp)
            if point is None or bound == NOTHING_DURABLE:
                continue
            if bound is not None:
                point = min(point, bound)
            if point != owned.offsets.committed:
                points[tp] = point
        return points


class Backpressure:
    def __init__(
        self,
        partitions: OwnedPartitions,
        max_pending: int,
        *,
        hold_before_pause_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._partitions = partitions
        self.max_pending = max_pending
        self._hold_before_pause_s = hold_before_pause_s
        self._clock = clock
        self._full_since: float | None = None

    def check(self) -> tuple[bool, list[TP]]:
        """(hold fetching for a moment, partitions to pause now)."""
        full = [
            tp for tp, owned in self._partitions if not owned.paused and owned.offsets.in_flight >= self.max_pending
        ]
        if not full:
            self._full_since = None
            return False, []
        now = self._clock()
        if self._full_since is None:
            self._full_since = now
        if now - self._full_since < self._hold_before_pause_s:
            return True, []
        self._full_since = None
        return False, full

    def to_resume(self) -> list[TP]:
        """Paused partitions that drained to half their bound (and are not stopped)."""
        return [
            tp
            for tp, owned in self._partitions
            if owned.paused and not owned.stopped and owned.offsets.in_flight <= self.max_pending // 2
        ]
