"""Consumer-group workers: handlers per event, an archive sink, or a processor of your own.

from kafka_consumer import ConsumedEvent, PermanentError, build_worker

def handle(event: ConsumedEvent) -> None:
    if "userId" not in event.value:
        raise PermanentError("no recipient")   # dead-lettered at once, never retried
    ...

worker = build_worker(load_settings(), group="delivery", topics=["chat.responses"], handler=handle)
worker.run()   # until worker.stop(); commits only what the handler finished
"""

from kafka_consumer.archive import ArchivedRecord, ArchiveSink, read_archive
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import PermanentError
from kafka_consumer.handlers import Handler, load_handler, log_event
from kafka_consumer.health import WorkerStatus
from kafka_consumer.idempotency import ProcessedIds, Skip, idempotent
from kafka_consumer.monitoring import MonitoringServer
from kafka_consumer.processing import (
    Completed,
    Halted,
    Lane,
    ProcessingStoppedError,
    Processor,
    Report,
    WorkerContext,
)
from kafka_consumer.records import Record
from kafka_consumer.runtime import ConsumerWorker
from kafka_consumer.wiring import build_worker

__all__ = [
    "ArchiveSink",
    "ArchivedRecord",
    "Completed",
    "ConsumedEvent",
    "ConsumerWorker",
    "Halted",
    "Handler",
    "Lane",
    "MonitoringServer",
    "PermanentError",
    "ProcessedIds",
    "ProcessingStoppedError",
    "Processor",
    "Record",
    "Report",
    "Skip",
    "WorkerContext",
    "WorkerStatus",
    "build_worker",
    "idempotent",
    "load_handler",
    "log_event",
    "read_archive",
]
