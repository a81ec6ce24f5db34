"""Spans of the delivery processor's mailbox writes, and of the stream sends that continue them (only while
tracing is on: hubstream.tracing).

One consumer span per record, a child of the trace its ``traceparent`` header carries, from the moment its batch
was taken until the batch's store transaction committed: its events are in their recipients' mailboxes then. Each
stored message keeps that span's ``traceparent`` (a column of both stores), so the stream that later sends it to
its client, on this node or another, after a reconnect too, adds a child span: POST → Kafka → mailbox → client.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.trace import Span, SpanKind, StatusCode, set_span_in_context

from hubstream import tracing
from kafka_consumer.records import Record

RECIPIENTS = "hubstream.delivery.recipients"
RECIPIENT = "hubstream.delivery.recipient"
CURSOR = "hubstream.delivery.cursor"
STREAM = "hubstream.delivery.stream"


def start_write_spans(records: Sequence[Record], *, group: str, started_ns: int) -> list[Span]:
    """One started span per record of a batch being written."""
    tracer = tracing.tracer()
    return [
        tracer.start_span(
            f"deliver {record.topic}",
            context=tracing.context_from_headers(record.headers),
            kind=SpanKind.CONSUMER,
            start_time=started_ns,
            attributes={
                tracing.MESSAGING_SYSTEM: "kafka",
                tracing.MESSAGING_DESTINATION: record.topic,
                tracing.MESSAGING_PARTITION: str(record.partition),
                tracing.MESSAGING_OFFSET: record.offset,
                tracing.MESSAGING_GROUP: group,
                tracing.MESSAGING_OPERATION_TYPE: "process",
                tracing.MESSAGING_OPERATION_NAME: "deliver",
                tracing.MESSAGING_BATCH_COUNT: len(records),
            },
        )
        for record in records
    ]


def traceparent(span: Span) -> str | None:
    """The W3C traceparent a stored message keeps, so its stream send continues this span."""
    headers = dict(tracing.trace_headers(set_span_in_context(span)))
    value = headers.get("traceparent")
    return value.decode() if value is not None else None


def end_write_spans(spans: Sequence[Span], outcomes: Sequence[tuple[int, BaseException | None]]) -> None:
    """End each record's span once the batch is durable: (how many mailboxes it went to, why it could not be
    delivered) per record."""
    for span, (recipients, poison) in zip(spans, outcomes, strict=True):
        span.set_attribute(RECIPIENTS, recipients)
        if poison is not None:
            span.set_status(StatusCode.ERROR, f"not deliverable, dead-lettered: {poison}")
        span.end()


@contextmanager
def stream_send_span(trace: str | None, *, topic: str, recipient: str, cursor: str, stream: str) -> Iterator[None]:
    """Around sending one stored message to a client (a child of its mailbox write); nothing when tracing is off
    or the message kept no trace."""
    if trace is None or not tracing.enabled():
        yield
        return
    span = tracing.tracer().start_span(  # not made current: the send may end in another task (client gone)
        f"stream {topic}",
        context=tracing.context_from_headers([("traceparent", trace)]),
        kind=SpanKind.PRODUCER,
        attributes={
            tracing.MESSAGING_OPERATION_TYPE: "send",
            tracing.MESSAGING_OPERATION_NAME: "stream",
            RECIPIENT: recipient,
            CURSOR: cursor,
            STREAM: stream,
        },
    )
    try:
        yield
    except BaseException as exc:
        span.set_status(StatusCode.ERROR, f"not sent: {exc.__class__.__name__}")
        raise
    finally:
        span.end()
