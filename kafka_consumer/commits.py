"""When to commit a partition: coalesced by time and count, and never above a rate cap per partition.

Event Hubs throttles offset commits at 4 per second per partition, and every commit is a round trip, so a
partition's completed offsets are committed together:

- when ``interval_s`` has passed since its last commit, or ``every_records`` records completed since then;
- but never sooner than ``1 / max_per_second`` after its last commit, even on revocation or shutdown
  (those wait out the rest of the gap, at most one gap, instead of breaking the cap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hubstream.errors import ConfigurationError

TP = tuple[str, int]


@dataclass(frozen=True)
class CommitPolicy:
    interval_s: float = 1.0
    every_records: int = 1_000
    max_per_second: float = 2.0

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
