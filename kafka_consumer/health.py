"""A worker's health, as /healthz and /readyz report it.

healthy   the poll loop is turning, no partition is stopped, no handler is stuck, the handler pool has a thread
          that is not held by an abandoned handler, no fatal client error, and no dependency the processing
          retries is failing ("degraded", e.g. an unreachable mailbox store)
ready     healthy, and the member has joined its group: it owns partitions ("owner") or none ("standby", ready
          to take over when an owner dies)

The poll thread writes this state and the ops server's thread reads it; each field is replaced whole, so a
reader sees either the old or the new value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import TopicPartition

log = logging.getLogger(__name__)

State = Literal["starting", "owner", "standby", "stopping", "stopped"]
TP = tuple[str, int]
_SHOWN = 5  # stuck handlers named in a problem


@dataclass(frozen=True)
class WorkerStatus:
    group: str
    member_id: str | None
    state: State
    healthy: bool
    ready: bool
    partitions: list[str]
    problems: list[str]

    def as_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "memberId": self.member_id,
            "state": self.state,
            "healthy": self.healthy,
            "ready": self.ready,
            "partitions": self.partitions,
            "problems": self.problems,
        }


@dataclass
class Health:
    group: str
    stall_after_s: float
    clock: Callable[[], float] = time.monotonic
    member_id: str | None = None
    joined: bool = False
    stopping: bool = False
    stopped: bool = False
    fatal: str | None = None
    last_poll: float | None = None
    assigned: frozenset[TP] = frozenset()
    stopped_partitions: dict[TP, str] = field(default_factory=dict)
    stuck_handlers: dict[tuple[TP, int], str] = field(default_factory=dict)
    stuck_pool: str | None = None  # every handler thread is held by a handler abandoned past the drain timeout
    degraded: dict[str, str] = field(default_factory=dict)  # a dependency is failing; the worker retries it

    def polled(self) -> None:
        self.last_poll = self.clock()

    def status(self) -> WorkerStatus:
        problems = [
            f"{topic}[{partition}] stopped: {reason}"
            for (topic, partition), reason in dict(self.stopped_partitions).items()
        ]
        problems += list(dict(self.stuck_handlers).values())
        if self.stuck_pool:
            problems.append(self.stuck_pool)
        problems += [f"degraded: {reason}" for reason in dict(self.degraded).values()]
        if self.fatal:
            problems.append(self.fatal)
        last = self.last_poll
        if not self.stopped and last is not None and self.clock() - last > self.stall_after_s:
            problems.append(f"the poll loop has not turned for {self.clock() - last:.0f} s")
        state: State
        if self.stopped:
            state = "stopped"
        elif self.stopping:
            state = "stopping"
        elif not self.joined:
            state = "starting"
        else:
            state = "owner" if self.assigned else "standby"
        healthy = not problems and not self.stopped
        return WorkerStatus(
            group=self.group,
            member_id=self.member_id,
            state=state,
            healthy=healthy,
            ready=healthy and state in ("owner", "standby"),
            partitions=[f"{topic}[{partition}]" for topic, partition in sorted(self.assigned)],
            problems=problems,
        )


class HandlerWatch:
    """Logs a handler once when it runs past its budget, and reports it to Health while it runs past the
    stuck limit (``max.poll.interval.ms``: the point where a poll-blocking client would have left the group)."""

    def __init__(self, health: Health, budget_s: float, stuck_after_s: float, drain_timeout_s: float) -> None:
        self._health = health
        self._budget_s = budget_s
        self._stuck_after_s = stuck_after_s
        self._drain_timeout_s = drain_timeout_s
        self._warned: set[tuple[TP, int]] = set()

    def check(self, running: list[tuple[TP, int, float]]) -> None:
        """`running`: (partition, offset, monotonic start) of every record being handled."""
        now = self._health.clock()
        group = self._health.group
        stuck: dict[tuple[TP, int], str] = {}
        for tp, offset, started in running:
            elapsed = now - started
            if elapsed > self._budget_s and (tp, offset) not in self._warned:
                self._warned.add((tp, offset))
                log.warning(
                    "group %s: the handler for %s[%d]@%d has run %.3g s, over its %.3g s budget; a rebalance waits "
                    "only %.3g s for it, then its record goes to the next owner",
                    group,
                    *tp,
                    offset,
                    elapsed,
                    self._budget_s,
                    self._drain_timeout_s,
                    extra={
                        "event": "slow_handler",
                        "group": group,
                        "topic": tp[0],
                        "partition": tp[1],
                        "offset": offset,
                        "seconds": round(elapsed, 1),
                    },
                )
            if elapsed > self._stuck_after_s:
                stuck[(tp, offset)] = f"handler for {tp[0]}[{tp[1]}]@{offset} stuck for {elapsed:.0f} s"
        self._warned &= {(tp, offset) for tp, offset, _ in running}
        self._health.stuck_handlers = stuck

    def check_pool(self, abandoned: list[tuple[TP, int]], threads: int) -> None:
        """`abandoned`: (partition, offset) of the plain handlers still running after their partition was let go,
        each holding one of the pool's `threads`. All of them held: no plain handler can run, so unhealthy."""
        health, group = self._health, self._health.group
        was = health.stuck_pool
        if not abandoned or len(abandoned) < threads:
            health.stuck_pool = None
            if was is not None:
                log.info(
                    "group %s: an abandoned handler returned; %d of %d handler threads are free",
                    group,
                    threads - len(abandoned),
                    threads,
                    extra={"event": "handler_pool_recovered", "group": group},
                )
            return
        shown = ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(abandoned)[:_SHOWN])
        more = f" and {len(abandoned) - _SHOWN} more" if len(abandoned) > _SHOWN else ""
        health.stuck_pool = (
            f"{len(abandoned)} stuck handler(s) hold all {threads} handler thread(s): abandoned after the "
            f"{self._drain_timeout_s:g} s drain timeout and still running ({shown}{more}); no handler can run "
            "until one returns"
        )
        if was is None:
            log.error(
                "group %s: %s",
                group,
                health.stuck_pool,
                extra={"event": "handler_pool_stuck", "group": group, "abandoned": len(abandoned)},
            )


def log_rebalance(
    group: str, what: str, member: str | None, partitions: list[TopicPartition], owned: frozenset[TP], empty: str
) -> None:
    """One line per assign, revoke or loss, naming the member and what it owns afterwards."""
    names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
    owns = [f"{t}[{p}]" for t, p in sorted(owned)]
    level = logging.WARNING if what == "lost" else logging.INFO
    log.log(
        level,
        "group %s: member %s %s %s; owns %s",
        group,
        member,
        what,
        names or empty,
        ", ".join(owns) or "nothing",
        extra={
            "event": f"partitions_{what}",
            "group": group,
            "member_id": member,
            "partitions": names.split(", ") if names else [],
            "owned": owns,
        },
    )
