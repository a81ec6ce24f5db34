"""When a failed webhook delivery is tried again, and what a response means.

A 2xx within the timeout succeeds. ``410 Gone`` disables the endpoint at once. ``429`` and ``503`` wait what
``Retry-After`` asks (seconds or an HTTP date, up to a cap). Anything else (another status, a redirect, a timeout, a
refused connection) is a failure: the next attempt comes after the schedule's next wait, spread by a jitter so
failed deliveries do not come back in one burst. When the schedule is used up the delivery has failed; ``recover``
sends failed deliveries again.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"  # the schedule is used up
    GONE = "gone"  # 410: the endpoint is disabled


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    next_attempt_at: float | None  # epoch seconds, for RETRY


def decide(
    attempts: int,
    status: int | None,
    retry_after: str | None,
    *,
    schedule: list[float],
    jitter: float,
    max_retry_after_s: float,
    now: float | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """``attempts`` made so far, including this one; ``status`` None when no response came."""
    now = time.time() if now is None else now
    if status is not None and 200 <= status < 300:
        return Outcome(Verdict.SUCCEEDED, None)
    if status == 410:
        return Outcome(Verdict.GONE, None)
    if attempts >= len(schedule):
        return Outcome(Verdict.FAILED, None)
    wait = schedule[attempts] * (1 + (rng or random).uniform(-jitter, jitter))
    if status in (429, 503) and retry_after:
        asked = _retry_after_s(retry_after, now)
        if asked is not None:
            wait = max(wait, min(asked, max_retry_after_s))
    return Outcome(Verdict.RETRY, now + wait)


def _retry_after_s(value: str, now: float) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
