"""`hubstream consume`: one consumer-group worker."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from devstack.discovery import with_local_stack
from hubstream.errors import ConfigurationError
from hubstream.heap import freeze_startup_objects
from hubstream.settings import Settings, with_overrides
from hubstream.tracing import configure_tracing
from hubstream_cli.common import StateDirOption, load_settings, setup_logging
from kafka_consumer.admin.group_registry import GroupRegistry
from kafka_consumer.archive import ArchiveSink
from kafka_consumer.handlers import load_handler, log_event
from kafka_consumer.monitoring import MonitoringServer
from kafka_consumer.processors.handler import HandlerProcessor
from kafka_consumer.runtime import ConsumerWorker
from kafka_consumer.wiring import build_worker
from schemas.contracts import Contract

log = logging.getLogger(__name__)


def consume(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group id")],
    topic: Annotated[list[str], typer.Option("--topic", "-t", help="Topic to consume (repeatable)")],
    handler: Annotated[
        str | None, typer.Option(help="module:function called with each event [default: log one line per event]")
    ] = None,
    sink: Annotated[
        str | None,
        typer.Option(help="archive:DIR writes events as Avro container files per topic/partition instead of a handler"),
    ] = None,
    reader: Annotated[
        list[str] | None,
        typer.Option(
            help="TOPIC=FILE.avsc: decode TOPIC into this reader schema, whatever version wrote it (repeatable)"
        ),
    ] = None,
    key_concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="Handlers in flight per partition, never two of one key [default: 1, partition order]"
        ),
    ] = None,
    ops_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port of /metrics, /healthz, /readyz; 0 picks one [default: 8081, or a free one when taken]",
        ),
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Consume topics in a consumer group; offsets are committed only after the handler returned.

    Failing handlers are retried with backoff; records that keep failing or cannot be decoded go to TOPIC.dlq.

    SIGTERM or Ctrl-C finishes the records in flight, commits and leaves the group.
    """
    # installed first, so a signal that arrives while the worker is being set up still stops it cleanly
    stopping = threading.Event()
    worker: ConsumerWorker | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if worker is not None:
            worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settings = with_local_stack(load_settings(state_dir))
    overrides = {k: v for k, v in (("key_concurrency", key_concurrency), ("ops_port", ops_port)) if v is not None}
    settings = with_overrides(settings, "consumer", **overrides)
    setup_logging(settings)
    configure_tracing("hubstream-consumer")  # only when OTEL_* configures an exporter
    if sink and handler:
        raise ConfigurationError("choose either --handler or --sink, not both")
    worker = build_worker(
        settings,
        group=group,
        topics=topic,
        handler=None if sink else (load_handler(handler) if handler else log_event),
        sink=_sink(sink, settings) if sink else None,
        readers=_readers(reader or []),
    )
    GroupRegistry.for_settings(settings).remember(group, topic)  # `hubstream groups list` shows it even when idle
    if stopping.is_set():
        worker.stop()
    with MonitoringServer(worker, settings.consumer.ops_host, settings.consumer.ops_port) as ops:
        log.info(
            "group %s: ops endpoint on %s (/metrics, /healthz, /readyz)",
            group,
            ops.url,
            extra={"event": "ops_endpoint", "group": group, "url": ops.url},
        )
        freeze_startup_objects()  # no full-collection pauses over the imported modules while consuming
        worker.run()
    abandoned = worker.processor.abandoned_threads if isinstance(worker.processor, HandlerProcessor) else 0
    if abandoned:
        # their threads cannot be interrupted, and the interpreter would wait for them at exit
        log.error(
            "exiting with %d handler(s) still running; their records were not committed and go to the "
            "partitions' next owners",
            abandoned,
        )
        logging.shutdown()
        os._exit(0)


def _readers(specs: list[str]) -> dict[str, Contract]:
    readers = {}
    for spec in specs:
        topic, sep, path = spec.partition("=")
        if not sep or not topic or not path:
            raise ConfigurationError(f"--reader {spec!r} must look like TOPIC=path/to/schema.avsc")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"--reader {spec!r}: cannot read {path}: {exc.strerror}") from exc
        readers[topic] = Contract.from_text(text, Path(path))
    return readers


def _sink(spec: str, settings: Settings) -> ArchiveSink:
    kind, sep, target = spec.partition(":")
    if kind != "archive" or not sep or not target:
        raise ConfigurationError(f"--sink {spec!r}: the only sink is archive:DIR")
    return ArchiveSink(
        Path(target), max_bytes=settings.consumer.archive_roll_bytes, max_age_s=settings.consumer.archive_roll_seconds
    )
