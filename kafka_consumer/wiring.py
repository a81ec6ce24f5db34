"""One place that builds a worker from settings, for the command line, the tests and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from confluent_kafka import Consumer

from hubstream.errors import ConfigurationError
from hubstream.settings import Settings
from kafka_consumer.dead_letters import DeadLetterWriter, WriterFactory
from kafka_consumer.dead_letters import producer_config as dead_letter_producer_config
from kafka_consumer.handlers import Handler
from kafka_consumer.options import WorkerOptions
from kafka_consumer.outages import Outage
from kafka_consumer.processing import Processor
from kafka_consumer.processors.handler import HandlerProcessor
from kafka_consumer.processors.sink import Sink, SinkProcessor
from kafka_consumer.runtime import ConsumerFactory, ConsumerWorker
from kafka_producer.producer import AsyncProducer
from schemas.contracts import Contract
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde

DeadLetters = WriterFactory
ProcessorFactory = Callable[[AvroSerde, DeadLetters], Processor]


def build_worker(
    settings: Settings,
    *,
    group: str,
    topics: Sequence[str],
    handler: Handler | None = None,
    sink: Sink | None = None,
    processor: ProcessorFactory | None = None,
    readers: dict[str, Contract] | None = None,
    options: WorkerOptions | None = None,
    consumer_factory: ConsumerFactory = Consumer,
    **processor_options: Any,
) -> ConsumerWorker:
    """A worker that calls ``handler`` per event, writes to ``sink``, or runs ``processor(serde, dead_letters)``.

    The worker owns the schema registry client it is given and closes it when it stops.
    """
    if sum(x is not None for x in (handler, sink, processor)) != 1:
        raise ConfigurationError("a consumer worker needs exactly one of a handler, a sink or a processor")
    options = options or WorkerOptions.from_settings(settings)
    resources = ExitStack()
    try:
        serde = AvroSerde(resources.enter_context(SchemaRegistry.from_settings(settings)))

        def dead_letters(outage: Outage) -> DeadLetterWriter:
            producer = AsyncProducer(dead_letter_producer_config(settings))  # with room for the headers
            return DeadLetterWriter(producer, group=group, suffix=options.dead_letter_suffix, outage=outage)

        made: Processor
        if handler is not None:
            made = HandlerProcessor(handler, serde, readers=readers, dead_letters=dead_letters, **processor_options)
        elif sink is not None:
            made = SinkProcessor(sink, serde, readers=readers, dead_letters=dead_letters, **processor_options)
        else:
            assert processor is not None
            made = processor(serde, dead_letters)
        return ConsumerWorker(
            settings,
            group=group,
            topics=topics,
            processor=made,
            options=options,
            consumer_factory=consumer_factory,
            resources=resources,
        )
    except BaseException:
        resources.close()
        raise
