"""A server span per producer API request, continuing the caller's W3C ``traceparent`` (installed only while
tracing is on: hubstream.tracing).

A plain ASGI wrapper, like RequestMetrics: the span is current while the route runs, so the producer span of
each send is its child and the records carry the trace on. Probes and /metrics are not traced.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubstream import tracing

_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestSpans:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        status = [500]  # what an exception that escapes the app becomes

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        method = scope["method"]
        span = tracing.tracer().start_span(
            method,
            context=tracing.context_from_http(scope["headers"]),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, recording)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(token)
            route: Any = scope.get("route")
            template = getattr(route, "path", None)
            if template:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", status[0])
            if status[0] >= 500:
                span.set_status(StatusCode.ERROR)
            span.end()
