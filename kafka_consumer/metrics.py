"""Prometheus metrics of one consumer worker, in a registry of its own (served at the worker's /metrics).

Lag is the high watermark the last fetch reported minus the group's committed offset ("checkpoint lag"), and
minus the worker's position for ``processing`` lag. Fetch responses carry the watermark on every broker, so no
extra query is made (queries are also answered wrongly by some Kafka-compatible brokers).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_TOPIC = ("group", "topic")
_PARTITION = ("group", "topic", "partition")


@dataclass(frozen=True)
class TopicMetrics:
    """The per-record series of one group and topic, looked up once (labels() costs on every record)."""

    consumed: Any
    processed: Any
    failed: Any
    retried: Any
    dead_lettered: Any
    handler_seconds: Any


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._topics: dict[tuple[str, str], TopicMetrics] = {}
        r = self.registry
        self.consumed = Counter("hubstream_consumer_records_consumed", "Records fetched", _TOPIC, registry=r)
        self.processed = Counter(
            "hubstream_consumer_records_processed", "Records whose handler succeeded", _TOPIC, registry=r
        )
        self.failed = Counter(
            "hubstream_consumer_records_failed",
            "Records that failed every attempt or could not be decoded",
            _TOPIC,
            registry=r,
        )
        self.retried = Counter("hubstream_consumer_retries", "Handler calls retried after an error", _TOPIC, registry=r)
        self.dead_lettered = Counter(
            "hubstream_consumer_records_dead_lettered", "Records written to a dead-letter topic", _TOPIC, registry=r
        )
        self.commits = Counter("hubstream_consumer_commits", "Offsets committed, per partition", _PARTITION, registry=r)
        self.commit_failures = Counter(
            "hubstream_consumer_commit_failures", "Commit requests that failed", ("group",), registry=r
        )
        self.commit_latency = Histogram(
            "hubstream_consumer_commit_latency_seconds",
            "Commit round-trip time",
            ("group",),
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag = Gauge("hubstream_consumer_lag", "High watermark minus committed offset", _PARTITION, registry=r)
        self.processing_lag = Gauge(
            "hubstream_consumer_processing_lag", "High watermark minus the next offset to fetch", _PARTITION, registry=r
        )
        self.pending = Gauge(
            "hubstream_consumer_pending_records", "Records waiting or in flight", _PARTITION, registry=r
        )
        self.assigned = Gauge(
            "hubstream_consumer_assigned_partitions", "Partitions this member owns", ("group",), registry=r
        )
        self.paused = Gauge(
            "hubstream_consumer_paused_partitions",
            "Partitions paused for backpressure or stopped",
            ("group",),
            registry=r,
        )
        self.rebalances = Counter(
            "hubstream_consumer_rebalances",
            "Rebalance callbacks by kind (assign/revoke/lost)",
            ("group", "kind"),
            registry=r,
        )
        self.handler_seconds = Histogram(
            "hubstream_consumer_handler_seconds", "Handler run time (all attempts)", _TOPIC, registry=r
        )

    def for_topic(self, group: str, topic: str) -> TopicMetrics:
        found = self._topics.get((group, topic))
        if found is None:
            found = self._topics[(group, topic)] = TopicMetrics(
                *(
                    metric.labels(group, topic)
                    for metric in (
                        self.consumed,
                        self.processed,
                        self.failed,
                        self.retried,
                        self.dead_lettered,
                        self.handler_seconds,
                    )
                )
            )
        return found

    def remove_partition(self, group: str, topic: str, partition: int) -> None:
        for gauge in (self.lag, self.processing_lag, self.pending):
            with suppress(KeyError):  # no value was ever set for this partition
                gauge.remove(group, topic, str(partition))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
