"""`hubstream produce-api`: the producer HTTP API on its own, against any profile."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import uvicorn

from devstack.discovery import with_local_stack
from hubstream import kafka_config
from hubstream.heap import freeze_startup_objects
from hubstream.settings import Settings
from hubstream.tracing import configure_tracing
from hubstream_cli.common import StateDirOption, load_settings, setup_logging
from kafka_producer.api import create_app


def produce_api(
    state_dir: StateDirOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: settings api.host]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: settings api.port]")] = None,
) -> None:
    """Serve the producer HTTP API (POST /v1/topics/{topic}/events)."""
    settings = with_local_stack(load_settings(state_dir))
    kafka_config.producer_config(settings)  # fail at start on bad settings, e.g. a broken connection string
    setup_logging(settings)
    configure_tracing("hubstream-producer-api")  # only when OTEL_* configures an exporter
    api = settings.api.model_copy(update={"host": host or settings.api.host, "port": port or settings.api.port})
    settings = settings.model_copy(update={"api": api})  # the Host check follows the address actually bound
    app = create_app(settings)
    freeze_startup_objects()  # no full-collection pauses over the imported modules while serving
    uvicorn.run(app, log_level=settings.log_level.lower(), **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's bounds: connections over the limit get 503 at once; idle and closing connections time out."""
    api = settings.api
    return {
        "host": api.host,
        "port": api.port,
        "limit_concurrency": api.limit_concurrency,
        "timeout_keep_alive": api.timeout_keep_alive_s,
        "timeout_graceful_shutdown": api.timeout_graceful_shutdown_s,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line and headers
    }
