"""Publishing events to their topics: natural JSON → validated Avro record → Azure wire format → Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind, StatusCode

from hubstream import tracing
from hubstream.errors import BrokerError, BrokerUnavailableError, EventValidationError
from kafka_producer.producer import AsyncProducer, Delivery
from schemas.contracts import Catalog, Contract, TopicBinding
from schemas.natural import NaturalJson
from schemas.serde import AvroSerde, EncodedValue

# librdkafka's message.timeout.ms bounds each delivery; this covers a callback that never comes
_DELIVERY_SLACK_S = 5.0


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    schema_id: str

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "schemaId": self.schema_id}


@dataclass(frozen=True)
class Prepared:
    key: bytes | None
    encoded: EncodedValue


class EventPublisher:
    def __init__(
        self, catalog: Catalog, serde: AvroSerde, producer: AsyncProducer, *, delivery_timeout_s: float
    ) -> None:
        self._catalog = catalog
        self._serde = serde
        self._producer = producer
        self._delivery_timeout_s = delivery_timeout_s + _DELIVERY_SLACK_S
        self._converters: dict[str, NaturalJson] = {}

    def binding(self, topic: str) -> TopicBinding:
        return self._catalog.binding(topic)

    def _converter(self, contract: Contract) -> NaturalJson:
        converter = self._converters.get(contract.name)
        if converter is None:
            converter = self._converters[contract.name] = NaturalJson(contract.schema)
        return converter

    def prepare(self, topic: str, event: Any, *, max_problems: int | None = None) -> Prepared:
        """Validate and encode one event; raises EventValidationError or UnknownTopicError, sends nothing."""
        binding = self._catalog.binding(topic)
        contract = self._catalog.contracts[binding.schema]
        record = self._converter(contract).from_json(event, max_problems=max_problems)
        key = None
        if binding.key_field is not None:
            key_value = record.get(binding.key_field)
            key = None if key_value is None else str(key_value).encode()
        return Prepared(key, self._serde.encode(record, contract))

    def prepare_batch(self, topic: str, events: Sequence[Any], *, max_problems: int = 100) -> list[Prepared]:
        """Validate and encode every event; EventValidationError names each problem's event (the first
        ``max_problems`` problems, and how many in all) if any is invalid."""
        prepared: list[Prepared] = []
        problems: list[tuple[str, str]] = []
        total = 0
        schema_name = self._catalog.binding(topic).schema
        for index, event in enumerate(events):
            try:
                prepared.append(self.prepare(topic, event, max_problems=max(1, max_problems - len(problems))))
            except EventValidationError as exc:
                total += exc.total
                room = max_problems - len(problems)
                problems.extend((f"events[{index}].{path}".rstrip("."), p) for path, p in exc.problems[:room])
        if problems:
            raise EventValidationError(schema_name, problems, total=total)
        return prepared

    async def publish(self, topic: str, event: Any) -> Published:
        return await self.send_prepared(topic, self.prepare(topic, event))

    async def publish_batch(self, topic: str, events: Sequence[Any]) -> list[Published | BrokerError]:
        """Validate every event first (nothing is sent if one is invalid), then send all in one round of acks."""
        return await self.send_batch(topic, self.prepare_batch(topic, events))

    async def send_prepared(self, topic: str, prepared: Prepared) -> Published:
        if not tracing.enabled():
            return await self._send(topic, prepared)
        with _send_span(topic) as span:  # its traceparent goes into the record's headers
            published = await self._send(topic, prepared, tracing.trace_headers())
            span.set_attribute(tracing.MESSAGING_PARTITION, str(published.partition))
            span.set_attribute(tracing.MESSAGING_OFFSET, published.offset)
            return published

    async def send_batch(self, topic: str, prepared: Sequence[Prepared]) -> list[Published | BrokerError]:
        """Send validated events in one round of acknowledgements; each outcome is a Published or its error."""
        if not tracing.enabled():
            return await self._send_all(topic, prepared, [])
        with _send_span(topic, count=len(prepared)) as span:  # one span; every record carries it
            outcomes = await self._send_all(topic, prepared, tracing.trace_headers())
            failed = sum(isinstance(o, BrokerError) for o in outcomes)
            if failed:
                span.set_status(StatusCode.ERROR, f"{failed} of {len(outcomes)} records not acknowledged")
            return outcomes

    async def _send_all(
        self, topic: str, prepared: Sequence[Prepared], trace_headers: list[tuple[str, bytes]]
    ) -> list[Published | BrokerError]:
        """One send_many for the batch: one future and one wait for all of its acknowledgements."""
        headers = [p.encoded.headers + trace_headers for p in prepared] if trace_headers else None
        future = self._producer.send_many(
            topic,
            [p.encoded.value for p in prepared],
            keys=[p.key for p in prepared],
            headers=headers or [p.encoded.headers for p in prepared],
        )
        try:
            outcomes = await asyncio.wait_for(future, self._delivery_timeout_s)
        except TimeoutError:
            late = BrokerUnavailableError(
                f"no acknowledgement from the broker for {topic!r} within {self._delivery_timeout_s:.0f} s"
            )
            return [late] * len(prepared)  # each event's outcome, as when the broker answers
        return [
            o if isinstance(o, BrokerError) else Published(o.topic, o.partition, o.offset, p.encoded.schema_id)
            for o, p in zip(outcomes, prepared, strict=True)
        ]

    async def _send(
        self, topic: str, prepared: Prepared, trace_headers: list[tuple[str, bytes]] | None = None
    ) -> Published:
        headers = prepared.encoded.headers + trace_headers if trace_headers else prepared.encoded.headers
        future = self._producer.send(topic, prepared.encoded.value, key=prepared.key, headers=headers)
        try:
            delivery: Delivery = await asyncio.wait_for(future, self._delivery_timeout_s)
        except TimeoutError:
            raise BrokerUnavailableError(
                f"no acknowledgement from the broker for {topic!r} within {self._delivery_timeout_s:.0f} s"
            ) from None
        return Published(delivery.topic, delivery.partition, delivery.offset, prepared.encoded.schema_id)


def _send_span(topic: str, *, count: int | None = None) -> AbstractContextManager[Span]:
    attributes: dict[str, str | int] = {
        tracing.MESSAGING_SYSTEM: "kafka",
        tracing.MESSAGING_DESTINATION: topic,
        tracing.MESSAGING_OPERATION_TYPE: "send",
        tracing.MESSAGING_OPERATION_NAME: "send",
    }
    if count is not None:
        attributes[tracing.MESSAGING_BATCH_COUNT] = count
    return tracing.tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes)
