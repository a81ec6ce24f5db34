"""When to commit a partition: coalesced by time and count, and never above a rate cap per partition.

Event Hubs throttles offset commits at 4 per second per partition, and every commit is a round trip, so a
partition's completed offsets are committed together:

- when ``interval_s`` has passed since its last commit, or ``every_records`` records completed since then;
- but never sooner than ``1 / max_per_second`` after its last commit, even on revocation or shutdown
  (those wait out the rest of the gap, at most one gap, instead of breaking the cap).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hubstream.errors import ConfigurationError
from kafka_consumer.metrics import WorkerMetrics

if TYPE_CHECKING:
    from kafka_consumer.partitions import OwnedPartitions

log = logging.getLogger(__name__)

TP = tuple[str, int]


@dataclass(frozen=True)
class CommitPolicy:
    interval_s: float
    every_records: int
    max_per_second: float

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.every_records < 1 or self.max_per_second <= 0:
            raise ConfigurationError("commit policy needs a positive interval, record count and rate")

    @property
    def min_gap_s(self) -> float:
        return 1.0 / self.max_per_second


@dataclass
class CommitSchedule:
    """Per partition: when it was last committed and how many records completed since."""

    policy: CommitPolicy
    clock: Callable[[], float]
    _last: dict[TP, float] = field(default_factory=dict)
    _completed: dict[TP, int] = field(default_factory=dict)

    def completed(self, tp: TP, count: int = 1) -> None:
        self._completed[tp] = self._completed.get(tp, 0) + count

    def due(self, tp: TP) -> bool:
        """Whether a partition with something to commit should be committed now."""
        since = self.clock() - self._last.get(tp, float("-inf"))
        if since < self.policy.min_gap_s:
            return False
        return since >= self.policy.interval_s or self._completed.get(tp, 0) >= self.policy.every_records

    def wait_before_forced(self, tps: list[TP]) -> float:
        """Seconds to wait before committing these partitions now without breaking the rate cap."""
        now = self.clock()
        gaps = [self.policy.min_gap_s - (now - self._last[tp]) for tp in tps if tp in self._last]
        return max([0.0, *gaps])

    def sent(self, tp: TP) -> None:
        """A commit of this partition is being sent (successful or not, it counts against the cap)."""
        self._last[tp] = self.clock()
        self._completed[tp] = 0

    def forget(self, tp: TP) -> None:
        # the rate history stays: a partition revoked and assigned back must still respect the cap
        self._completed.pop(tp, None)


class Committer:
    """Sends a consumer's commits under a CommitSchedule, counting and timing them."""

    def __init__(
        self, group: str, policy: CommitPolicy, metrics: WorkerMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.group = group
        self.schedule = CommitSchedule(policy, clock)
        self._metrics = metrics

    def commit_owned(
        self,
        consumer: Consumer,
        owned: OwnedPartitions,
        limit: Callable[[TP], int | None],
        *,
        force: bool,
        only: set[TP] | None = None,
    ) -> None:
        """Commit what the owned partitions may commit now (``only`` some of them) and remember what was taken."""
        points = owned.commit_points(limit, only)
        for tp, offset in self.commit(consumer, points, force=force).items():
            state = owned.get(tp)
            if state is not None:
                state.offsets.mark_committed(offset)

    def commit(self, consumer: Consumer, points: dict[TP, int], *, force: bool) -> dict[TP, int]:
        """Commit the partitions that are due (all of `points` when forced, once the cap allows); returns the
        offsets the broker took. A failed commit is logged and counted; its offsets are tried again later."""
        if not force:
            points = {tp: point for tp, point in points.items() if self.schedule.due(tp)}
        if not points:
            return {}
        if force:
            time.sleep(self.schedule.wait_before_forced(list(points)))  # at most one gap of the rate cap
        for tp in points:
            self.schedule.sent(tp)
        started = time.monotonic()
        try:
            results = (
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in points.items()], asynchronous=False)
                or []
            )
        except KafkaException as exc:
            # e.g. a rebalance in progress: the offsets stay pending and a later commit retries them
            self._metrics.commit_failures.labels(self.group).inc()
            log.log(
                logging.ERROR if force else logging.WARNING,
                "group %s: commit failed: %s",
                self.group,
                exc.args[0].str(),
                extra={"event": "commit_failed", "group": self.group},
            )
            return {}
        self._metrics.commit_latency.labels(self.group).observe(time.monotonic() - started)
        committed: dict[TP, int] = {}
        for result in results:
            if result.error is None:
                committed[(result.topic, result.partition)] = result.offset
                self._metrics.commits.labels(self.group, result.topic, str(result.partition)).inc()
                continue
            self._metrics.commit_failures.labels(self.group).inc()
            log.warning(
                "group %s: commit of %s[%d] failed: %s",
                self.group,
                result.topic,
                result.partition,
                result.error,
                extra={
                    "event": "commit_failed",
                    "group": self.group,
                    "topic": result.topic,
                    "partition": result.partition,
                },
            )
        return committed
