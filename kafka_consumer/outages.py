"""A dependency that is down (the schema registry, a store): when to try it again, and the worker's degraded state.

Processing waits for it instead of halting: tries are spaced by a doubling backoff, capped, so an outage of any
length heals by itself once the dependency answers again, and /healthz reports "degraded" meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka_consumer.health import Health

log = logging.getLogger(__name__)


class Outage:
    def __init__(
        self,
        what: str,
        health: Callable[[], Health | None],
        *,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._health = health
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._backoff_s = first_backoff_s
        self._since: float | None = None
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    def due(self) -> bool:
        """Whether it is time to try the dependency again (always, when it is not down)."""
        return self._clock() >= self._retry_at

    def wait_s(self) -> float:
        """Seconds until the next try is due (0 when it is not down)."""
        return max(0.0, self._retry_at - self._clock())

    def failed(self, error: BaseException) -> None:
        now = self._clock()
        if self._since is not None and now < self._retry_at:
            return  # another try of this window failed already (several partitions wait on one dependency)
        if self._since is None:
            self._since = now
        self._retry_at = now + self._backoff_s
        reason = f"{self.what} is failing ({error}); trying again in {self._backoff_s:.1f} s"
        log.warning("%s", reason, extra={"event": "dependency_down", "dependency": self.what})
        self._set_degraded(reason)
        self._backoff_s = min(self._max_backoff_s, self._backoff_s * 2)

    def recovered(self) -> None:
        if self._since is None:
            return
        log.info("%s works again after %.1f s", self.what, self._clock() - self._since)
        self._since, self._retry_at, self._backoff_s = None, 0.0, self._first_backoff_s
        self._set_degraded(None)

    def _set_degraded(self, reason: str | None) -> None:
        health = self._health()
        if health is None:
            return
        degraded = dict(health.degraded)  # replaced whole: the ops thread reads it
        if reason is None:
            degraded.pop(self.what, None)
        else:
            degraded[self.what] = reason
        health.degraded = degraded
