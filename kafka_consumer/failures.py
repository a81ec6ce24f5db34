"""What happens when a handler raises: retries with exponential backoff and jitter, then a verdict.

A handler error is taken as transient and retried (tenacity), up to ``attempts`` calls in all, with a wait of
``initial_backoff_s * 2**n`` (capped at ``max_backoff_s``) plus a random jitter of up to ``initial_backoff_s``.
A handler that knows retrying cannot help raises ``PermanentError`` (or a subclass): no retry, the record goes to the
dead-letter topic at once. So does a record the handler could not produce onward because it is too large
(``RecordTooLargeError``, or confluent-kafka's ``KafkaException`` with ``MSG_SIZE_TOO_LARGE``): the same bytes are
refused however often they are sent. The wait is an ``asyncio.sleep`` in the record's own task, so while one record
backs off, records of other keys (with key-ordered concurrency) and other partitions keep moving.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from hubstream.errors import ConfigurationError, HubstreamError
from kafka_producer.producer import RecordTooLargeError

log = logging.getLogger(__name__)


class PermanentError(HubstreamError):
    """Raise from a handler for a record that no retry will fix: it is dead-lettered after one attempt."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    initial_backoff_s: float
    max_backoff_s: float

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigurationError("retry policy needs attempts >= 1 and non-negative backoffs")


@dataclass(frozen=True)
class Failed:
    """A record's last error after every attempt it was allowed."""

    error: BaseException
    attempts: int


def _retryable(error: BaseException) -> bool:
    return isinstance(error, Exception) and not isinstance(error, PermanentError) and not too_large(error)


def too_large(error: BaseException) -> bool:
    """The error says a record is larger than a producer or broker takes (no retry can change that)."""
    if isinstance(error, RecordTooLargeError):
        return True
    cause = error.args[0] if isinstance(error, KafkaException) and error.args else None
    return isinstance(cause, KafkaError) and cause.code() == KafkaError.MSG_SIZE_TOO_LARGE


async def call_with_retries(
    call: Callable[[], Awaitable[None]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[BaseException, int], None],
) -> Failed | None:
    """Run `call` until it succeeds (None) or the policy gives up (Failed). Cancellation passes through."""
    try:
        await call()  # most calls succeed: no retry machinery for them (it costs more than a cheap handler)
        return None
    except Exception as exc:  # noqa: BLE001 - the retries below decide what it means
        first_failure: list[Exception] = [exc]

    async def again() -> None:
        if first_failure:  # tenacity's first attempt stands for the call that just failed
            raise first_failure.pop()
        await call()

    attempts = 0

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if error is not None:
            on_retry(error, state.attempt_number)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.initial_backoff_s, max=policy.max_backoff_s)
        + wait_random(0, policy.initial_backoff_s),
        # Exception only: a CancelledError (revocation, shutdown) must stop the record, never retry it
        retry=retry_if_exception(_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                await again()
    except Exception as exc:  # noqa: BLE001 - every handler error becomes a verdict; CancelledError is not caught
        return Failed(exc, attempts)
    return None
