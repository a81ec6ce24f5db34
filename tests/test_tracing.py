"""Traces across the pipeline: a caller's traceparent reaches the record, the handler and the mailbox write."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Message
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

from hubstream import tracing
from hubstream.errors import ConfigurationError
from kafka_consumer.events import ConsumedEvent
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.delivery import SseClient, auth, delivery_settings, running_node
from tests.fixtures.events import chat_event
from tests.fixtures.readers import read_all
from tests.fixtures.services import CHAT, make_settings, producer_api, register_contracts, running_worker, write_catalog
from tests.fixtures.waiting import wait_for

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, into memory; off again afterwards (the provider is not OTel's global one)."""
    exporter = InMemorySpanExporter()
    installed = tracing.configure_tracing("hubstream-test", exporter=exporter)
    assert installed is not None
    try:
        yield exporter
    finally:
        installed.close()
    assert not tracing.enabled()


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_an_exporter_in_the_environment_nothing_is_installed(no_otel_env: pytest.MonkeyPatch) -> None:
    assert tracing.configure_tracing("svc") is None
    assert not tracing.enabled()
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    no_otel_env.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure_tracing("svc") is None
    no_otel_env.delenv("OTEL_SDK_DISABLED")
    no_otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure_tracing("svc") is None
    assert not tracing.enabled()


def test_the_environment_chooses_the_exporter(no_otel_env: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    no_otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert isinstance(tracing._exporter_from_env(), OTLPSpanExporter)
    no_otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    assert isinstance(tracing._exporter_from_env(), ConsoleSpanExporter)
    no_otel_env.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigurationError, match="zipkin"):
        tracing._exporter_from_env()
    no_otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError, match="grpc"):
        tracing._exporter_from_env()


def test_record_headers_carry_the_w3c_context(spans: InMemorySpanExporter) -> None:
    parent = tracing.context_from_headers([("content-type", b"avro/binary+x"), ("traceparent", TRACEPARENT.encode())])
    assert parent is not None
    with tracing.tracer().start_as_current_span("s", context=parent) as span:
        headers = dict(tracing.trace_headers())
    assert headers["traceparent"] == f"00-{TRACE_ID}-{span.get_span_context().span_id:016x}-01".encode()
    carried = tracing.context_from_headers(list(headers.items()))
    assert carried is not None
    remote = trace.get_current_span(carried).get_span_context()
    assert (remote.trace_id, remote.span_id, remote.is_remote) == (
        int(TRACE_ID, 16),
        span.get_span_context().span_id,
        True,
    )
    state = tracing.context_from_headers([("traceparent", TRACEPARENT), ("tracestate", "vendor=1")])
    assert state is not None and trace.get_current_span(state).get_span_context().trace_state.get("vendor") == "1"
    assert tracing.context_from_headers([("traceparent", b"not-a-traceparent")]) is None
    assert tracing.context_from_headers([("tracestate", b"vendor=1")]) is None
    assert tracing.context_from_headers([]) is None
    with pytest.raises(RuntimeError, match="already configured"):
        tracing.configure_tracing("again", exporter=InMemorySpanExporter())


@pytest.fixture
def chat(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> tuple[Any, str]:
    topic = kafka_broker.create_topic("traced", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    register_contracts(settings)
    return delivery_settings(settings, f"sqlite:{tmp_path / 'mailboxes.db'}"), topic


class Handled:
    """A plain handler that keeps each event with the span current while it ran."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[ConsumedEvent, SpanContext]] = []

    def __call__(self, event: ConsumedEvent) -> None:
        with self.lock:
            self.seen.append((event, trace.get_current_span().get_span_context()))

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


def test_one_trace_spans_the_request_the_record_the_handler_and_the_mailbox_write(
    spans: InMemorySpanExporter, chat: tuple[Any, str], kafka_broker: LocalKafka
) -> None:
    settings, topic = chat
    handled = Handled()
    group = unique("traced")
    with (
        producer_api(settings) as api,
        running_worker(settings, group, [topic], handled),
        running_node(settings, [topic], group=unique("delivery")) as node,
    ):
        one = httpx.post(
            f"{api}/v1/topics/{topic}/events",
            json=chat_event(userId="u1"),
            headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
            timeout=30,
        )
        assert one.status_code == 200, one.text
        batch = httpx.post(
            f"{api}/v1/topics/{topic}/events:batch",
            json={"events": [chat_event(sequence=i, userId="u2") for i in range(3)]},
            headers={"traceparent": TRACEPARENT},
            timeout=30,
        )
        assert batch.status_code == 200, batch.text
        wait_for(lambda: handled.count() == 4, "the handler saw the four events")
        wait_for(lambda: len(_named(spans, f"deliver {topic}")) == 4, "four mailbox-write spans", timeout_s=60)
        # read back from the store: each message kept its mailbox-write span's traceparent
        assert len(SseClient(f"{node.url}/v1/mailboxes/u2/stream", headers=auth("u2")).read(3)) == 3
        wait_for(lambda: len(_named(spans, f"stream {topic}")) == 3, "three stream-send spans", timeout_s=30)

    by_id = {span.context.span_id: span for span in spans.get_finished_spans()}
    servers = sorted(_named(spans, "POST"), key=lambda s: s.start_time or 0)
    assert [s.name for s in servers] == ["POST /v1/topics/{topic}/events", "POST /v1/topics/{topic}/events:batch"]
    for server in servers:  # each request continues the caller's trace
        assert server.kind is SpanKind.SERVER and server.context.trace_id == int(TRACE_ID, 16)
        assert server.parent is not None and server.parent.span_id == int(CALLER_SPAN, 16)
        assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    sends = _named(spans, f"send {topic}")
    assert len(sends) == 2 and {s.parent.span_id for s in sends if s.parent} == {s.context.span_id for s in servers}
    single = next(s for s in sends if s.parent and s.parent.span_id == servers[0].context.span_id)
    batched = next(s for s in sends if s is not single)
    assert single.kind is SpanKind.PRODUCER and batched.attributes is not None
    assert batched.attributes["messaging.batch.message_count"] == 3
    assert single.context.trace_state.get("vendor") == "1"

    records = read_all(kafka_broker, topic)
    assert len(records) == 4
    carried = [_header(r, "traceparent") for r in records]
    assert carried[0] == f"00-{TRACE_ID}-{single.context.span_id:016x}-01"
    assert carried[1:] == [f"00-{TRACE_ID}-{batched.context.span_id:016x}-01"] * 3  # the batch's one span

    processes = sorted(_named(spans, f"process {topic}"), key=lambda s: _offset(s))
    assert [_offset(s) for s in processes] == [0, 1, 2, 3]
    for process in processes:
        assert process.kind is SpanKind.CONSUMER and process.context.trace_id == int(TRACE_ID, 16)
        send = single if _offset(process) == 0 else batched
        assert process.parent is not None and process.parent.span_id == send.context.span_id
        assert process.attributes is not None
        assert process.attributes["messaging.system"] == "kafka"
        assert process.attributes["messaging.destination.name"] == topic
        assert process.attributes["messaging.destination.partition.id"] == "0"
        assert process.attributes["messaging.consumer.group.name"] == group
    # the plain handler ran (on a pool thread) inside its record's process span
    assert {ctx.span_id for _, ctx in handled.seen} == {s.context.span_id for s in processes}

    for write in _named(spans, f"deliver {topic}"):
        assert write.kind is SpanKind.CONSUMER and write.context.trace_id == int(TRACE_ID, 16)
        assert write.parent is not None and by_id[write.parent.span_id] in (single, batched)
        assert write.attributes is not None and write.attributes["hubstream.delivery.recipients"] == 1
        assert write.status.is_ok
    writes = {w.context.span_id: w for w in _named(spans, f"deliver {topic}")}
    streamed = _named(spans, f"stream {topic}")
    for send in streamed:  # the stream send continues its message's mailbox write
        assert send.kind is SpanKind.PRODUCER and send.context.trace_id == int(TRACE_ID, 16)
        assert send.parent is not None and send.parent.span_id in writes
        assert send.attributes is not None and send.attributes["hubstream.delivery.recipient"] == "u2"
        assert send.attributes["hubstream.delivery.stream"] == "sse"
    assert sorted(_offset(writes[s.parent.span_id]) for s in streamed if s.parent) == [1, 2, 3]


def test_without_tracing_no_record_gets_a_traceparent(chat: tuple[Any, str], kafka_broker: LocalKafka) -> None:
    settings, topic = chat
    assert not tracing.enabled()
    with producer_api(settings) as api:
        response = httpx.post(
            f"{api}/v1/topics/{topic}/events", json=chat_event(), headers={"traceparent": TRACEPARENT}, timeout=30
        )
        assert response.status_code == 200, response.text
    records = read_all(kafka_broker, topic)
    assert len(records) == 1
    assert _header(records[0], "content-type") and _header(records[0], "traceparent") is None


def _header(record: Message, name: str) -> str | None:
    headers = record.headers()
    values = [v for n, v in (headers.items() if isinstance(headers, dict) else headers or []) if n == name]
    value = values[0] if values else None
    return value.decode() if isinstance(value, bytes) else value


def _named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


def _offset(span: ReadableSpan) -> int:
    assert span.attributes is not None
    offset = span.attributes["messaging.kafka.offset"]
    assert isinstance(offset, int)
    return offset
