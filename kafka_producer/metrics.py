"""Prometheus metrics of the producer API, served at its /metrics.

Requests are counted by route template (``/v1/topics/{topic}/events``, never the raw path, so a scanner cannot grow
the label set) and status; publishing by topic: validation failures, the broker's acknowledgements by outcome, and
how long each took from send to acknowledgement.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ProducerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "hubstream_api_requests", "HTTP requests by route and status", ("route", "status"), registry=r
        )
        self.request_seconds = Histogram(
            "hubstream_api_request_seconds",
            "HTTP request time by route",
            ("route",),
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.in_flight = Gauge("hubstream_api_requests_in_flight", "HTTP requests being answered", registry=r)
        self.validation_failures = Counter(
            "hubstream_api_validation_failures",
            "Events refused by their topic's contract (422)",
            ("topic",),
            registry=r,
        )
        self.acks = Counter(
            "hubstream_api_broker_acks", "Events sent to the broker, by outcome", ("topic", "outcome"), registry=r
        )
        self.publish_seconds = Histogram(
            "hubstream_api_publish_seconds",
            "From send to the broker's acknowledgement, per request",
            ("topic",),
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )

    def published(self, topic: str, started: float, ok: int, failed: int) -> None:
        self.publish_seconds.labels(topic).observe(time.monotonic() - started)
        if ok:
            self.acks.labels(topic, "ok").inc(ok)
        if failed:
            self.acks.labels(topic, "failed").inc(failed)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting every HTTP request by its route template and status (a plain ASGI wrapper: no
    per-request task or body copy, unlike a ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: ProducerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]  # what an exception that escapes the app becomes

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.monotonic()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording)
        finally:
            self.metrics.in_flight.dec()
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, str(status[0])).inc()
            self.metrics.request_seconds.labels(template).observe(time.monotonic() - started)
