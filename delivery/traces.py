"""Spans of the delivery processor's mailbox writes (only while tracing is on: hubstream.tracing).

One consumer span per record, a child of the trace its ``traceparent`` header carries, from the moment its batch
was taken until the batch's store transaction committed: its events are in their recipients' mailboxes then.

The stream send is not a child of it: a stored message does not keep its trace context (that would need a
column in both mailbox stores), so a stream cannot tell which trace a message belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import SpanKind, StatusCode

from hubstream import tracing
from kafka_consumer.records import Record

RECIPIENTS = "hubstream.delivery.recipients"


def mailbox_write_spans(
    written: Sequence[tuple[Record, int, BaseException | None]], *, group: str, started_ns: int
) -> None:
    """One span per (record, how many mailboxes it went to, why it could not be delivered) of a written batch."""
    tracer = tracing.tracer()
    batch = len(written)
    for record, recipients, poison in written:
        span = tracer.start_span(
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
                tracing.MESSAGING_BATCH_COUNT: batch,
                RECIPIENTS: recipients,
            },
        )
        if poison is not None:
            span.set_status(StatusCode.ERROR, f"not deliverable, dead-lettered: {poison}")
        span.end()
