import asyncio
from itertools import pairwise

import pytest

from kafka_consumer.failures import Failed, PermanentError, RetryPolicy, call_with_retries

NO_WAIT = RetryPolicy(attempts=3, initial_backoff_s=0, max_backoff_s=0)


def run(call, policy: RetryPolicy = NO_WAIT) -> tuple[Failed | None, list[int]]:
    retries: list[int] = []
    result = asyncio.run(call_with_retries(call, policy, on_retry=lambda error, n: retries.append(n)))
    return result, retries


def test_a_transient_error_is_retried_up_to_the_attempts_then_reported() -> None:
    calls = []

    async def call() -> None:
        calls.append(1)
        raise ConnectionError("down")

    failed, retries = run(call)
    assert isinstance(failed, Failed) and isinstance(failed.error, ConnectionError) and failed.attempts == 3
    assert len(calls) == 3 and retries == [1, 2]


def test_success_after_failures_is_success() -> None:
    calls = []

    async def call() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError

    assert run(call) == (None, [1, 2])


def test_a_permanent_error_is_not_retried() -> None:
    async def call() -> None:
        raise PermanentError("no such account")

    failed, retries = run(call)
    assert failed is not None and failed.attempts == 1 and retries == []


def test_cancellation_stops_the_record_instead_of_retrying_it() -> None:
    calls = []

    async def call() -> None:
        calls.append(1)
        await asyncio.sleep(10)

    async def cancel_midway() -> None:
        task = asyncio.create_task(call_with_retries(call, NO_WAIT, on_retry=lambda e, n: None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert len(calls) == 1


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=4, initial_backoff_s=0.05, max_backoff_s=0.1)
    loop = asyncio.new_event_loop()
    stamps: list[float] = []

    async def call() -> None:
        stamps.append(loop.time())
        raise ValueError

    loop.run_until_complete(call_with_retries(call, policy, on_retry=lambda e, n: None))
    loop.close()
    gaps = [b - a for a, b in pairwise(stamps)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and all(g <= 0.1 + 0.05 + 0.05 for g in gaps)  # cap + jitter + slack
