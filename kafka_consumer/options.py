"""A worker's processing knobs: ConsumerSettings in the units the runtime uses (built only from the settings,
so the defaults live in one place: hubstream.settings.ConsumerSettings)."""

from __future__ import annotations

from dataclasses import dataclass

from hubstream.settings import Settings
from kafka_consumer.commits import CommitPolicy
from kafka_consumer.failures import RetryPolicy


@dataclass(frozen=True)
class WorkerOptions:
    """The processing knobs of ConsumerSettings, in the units the runtime uses."""

    key_concurrency: int
    handler_threads: int
    max_pending_per_partition: int
    handler_budget_s: float
    stuck_after_s: float
    drain_timeout_s: float
    commit: CommitPolicy
    retry: RetryPolicy
    dead_letter: bool
    dead_letter_suffix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerOptions:
        c = settings.consumer
        return cls(
            key_concurrency=c.key_concurrency,
            handler_threads=c.handler_threads,
            max_pending_per_partition=c.max_pending_per_partition,
            handler_budget_s=(c.handler_budget_ms or c.max_poll_interval_ms // 2) / 1000,
            stuck_after_s=c.max_poll_interval_ms / 1000,
            drain_timeout_s=c.drain_timeout_ms / 1000,
            commit=CommitPolicy(c.commit_interval_ms / 1000, c.commit_every_records, c.max_commits_per_second),
            retry=RetryPolicy(c.retry_attempts, c.retry_initial_backoff_ms / 1000, c.retry_max_backoff_ms / 1000),
            dead_letter=c.dead_letter,
            dead_letter_suffix=c.dead_letter_suffix,
        )
