"""Prometheus metrics of a delivery node (served at its /metrics beside its consumer worker's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class DeliveryMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.mailbox_writes = Counter(
            "hubstream_delivery_mailbox_writes", "Messages stored in mailboxes", ("topic",), registry=r
        )
        self.duplicates = Counter(
            "hubstream_delivery_duplicates", "Deliveries skipped: the mailbox had the event", registry=r
        )
        self.unroutable = Counter(
            "hubstream_delivery_unroutable", "Events that named no recipient", ("topic",), registry=r
        )
        self.write_seconds = Histogram(
            "hubstream_delivery_write_seconds", "One mailbox write transaction", registry=r, buckets=_LATENCY_BUCKETS
        )
        self.store_errors = Counter(
            "hubstream_delivery_store_errors", "Mailbox store operations that failed", ("operation",), registry=r
        )
        self.streams = Gauge("hubstream_delivery_streams_open", "Open client streams", ("kind",), registry=r)
        self.sends = Counter("hubstream_delivery_sends", "Messages sent to clients", ("kind",), registry=r)
        self.stream_ends = Counter(
            "hubstream_delivery_stream_ends", "Client streams that ended, by why", ("kind", "reason"), registry=r
        )
        self.requests = Counter(
            "hubstream_delivery_requests", "HTTP requests by route and status", ("route", "status"), registry=r
        )
        self.webhooks = WebhookMetrics(r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class WebhookMetrics:
    """Per endpoint: attempts by outcome, their latency, the pending backlog, and whether it is disabled."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "hubstream_webhook_attempts",
            "Webhook requests by outcome (ok: a 2xx)",
            ("endpoint", "outcome"),
            registry=registry,
        )
        self.latency = Histogram(
            "hubstream_webhook_latency_seconds",
            "Webhook request time",
            ("endpoint",),
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.backlog = Gauge(
            "hubstream_webhook_backlog", "Deliveries not yet succeeded or given up", ("endpoint",), registry=registry
        )
        self.disabled = Gauge(
            "hubstream_webhook_disabled", "1 while the endpoint is disabled", ("endpoint",), registry=registry
        )
