"""Traces across the pipeline (OpenTelemetry): off, at no cost, unless the standard ``OTEL_*`` variables ask for
an exporter.

A trace follows one event: the producer API's request (continued from the caller's W3C ``traceparent``), its
Kafka send, and, through the ``traceparent``/``tracestate`` record headers, the handler that processes it and
the delivery node's mailbox write. Services call ``configure_tracing`` once at start-up. Until they do, or when
no exporter is configured, ``enabled()`` is False and the hot paths do nothing else: no SDK is loaded, no span
is made and no header is added.

Spans use OpenTelemetry's messaging conventions (``MESSAGING_*`` below). Tests install a provider around their
own exporter (``configure_tracing(name, exporter=...)``); it is not made OTel's global provider, so
``Tracing.close()`` removes it again without a trace of it left in the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hubstream.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# OpenTelemetry semantic conventions for messaging spans (attribute names as of semconv 1.27+)
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_PARTITION = "messaging.destination.partition.id"
MESSAGING_OFFSET = "messaging.kafka.offset"
MESSAGING_GROUP = "messaging.consumer.group.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_BATCH_COUNT = "messaging.batch.message_count"

TRACE_HEADERS = ("traceparent", "tracestate")
_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None


@dataclass(frozen=True)
class Tracing:
    """The installed provider; ``close()`` flushes what is still buffered and turns tracing off again."""

    provider: TracerProvider

    def close(self) -> None:
        global _tracer
        _tracer = None
        self.provider.shutdown()


def configure_tracing(service_name: str, *, exporter: SpanExporter | None = None) -> Tracing | None:
    """Trace this process when ``exporter`` is given or the environment configures one; None (and nothing
    installed) otherwise.

    From the environment: ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``; ``none`` turns tracing off) or an
    OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) switch it on;
    ``OTEL_SDK_DISABLED=true`` keeps it off. OTLP goes over HTTP/protobuf. ``OTEL_SERVICE_NAME`` overrides
    ``service_name``; the SDK reads the rest itself (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
    ``OTEL_BSP_*``, the exporter's ``OTEL_EXPORTER_OTLP_*``). A provider from the environment also becomes
    OTel's global one, so a handler's own spans (``trace.get_tracer(...)``) join the same traces.
    """
    global _tracer
    if _tracer is not None:
        raise RuntimeError("tracing is already configured in this process (close the first one)")
    from_env = exporter is None
    if from_env:
        exporter = _exporter_from_env()
        if exporter is None:
            return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    assert exporter is not None
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if from_env else SimpleSpanProcessor(exporter))
    if from_env:
        trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("hubstream")
    return Tracing(provider)


def _exporter_from_env() -> SpanExporter | None:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    choice = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not choice:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        choice = "otlp" if endpoint else "none"
    if choice == "none":
        return None
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if choice != "otlp":
        raise ConfigurationError(f"OTEL_TRACES_EXPORTER={choice!r}: hubstream exports traces with 'otlp' or 'console'")
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol != "http/protobuf":
        raise ConfigurationError(f"OTLP protocol {protocol!r}: hubstream sends traces over 'http/protobuf' only")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def enabled() -> bool:
    """Whether this process traces; the one check the hot paths make."""
    return _tracer is not None


def tracer() -> trace.Tracer:
    """The project's tracer (only while ``enabled()``)."""
    if _tracer is None:
        raise RuntimeError("tracing is not configured")
    return _tracer


def trace_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """``traceparent`` (and ``tracestate``) of the current span, or of ``context``, as Kafka record headers."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context)
    return [(name, value.encode()) for name, value in carrier.items()]


def context_from_headers(headers: Iterable[tuple[str, bytes | str | None]]) -> Context | None:
    """The trace context a record's headers carry; None when they carry none (or an invalid one)."""
    carrier = {
        name: value.decode(errors="replace") if isinstance(value, bytes) else value
        for name, value in headers
        if name in TRACE_HEADERS and value is not None
    }
    if "traceparent" not in carrier:
        return None
    context = _propagator.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def context_from_http(headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
    """The trace context of an HTTP request's raw (ASGI) headers; None when it has none."""
    return context_from_headers((name.decode("latin-1").lower(), value) for name, value in headers)
