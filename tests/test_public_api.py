"""What each package exports is its public API: adding or removing a name is a decision, made here."""

from __future__ import annotations

import delivery.webhooks
import kafka_consumer


def test_kafka_consumer_exports_what_a_handler_author_needs() -> None:
    assert sorted(kafka_consumer.__all__) == [
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
    for name in kafka_consumer.__all__:
        assert getattr(kafka_consumer, name) is not None, name


def test_delivery_webhooks_exports_the_receiver_helper() -> None:
    assert sorted(delivery.webhooks.__all__) == ["WebhookVerificationError", "verify"]
