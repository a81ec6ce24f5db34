"""`hubstream produce-api`: the producer HTTP API on its own, against any profile.

With ``--workers N`` uvicorn runs N processes on the one listening socket. Each builds its app from the same
settings: the command line's choices (state dir, host, port) go to the workers as ``HUBSTREAM_*`` variables, and
``app_from_environment`` loads the one Settings object from them as this process does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import uvicorn
from fastapi import FastAPI

from devstack.discovery import with_local_stack
from hubstream import kafka_config
from hubstream.heap import freeze_startup_objects
from hubstream.settings import Settings
from hubstream.tracing import configure_tracing
from hubstream_cli.common import StateDirOption, load_settings, setup_logging
from hubstream_cli.http_head import MAX_HEAD_BYTES
from kafka_producer.api import create_app

Loop = Literal["uvloop", "asyncio"]
Http = Literal["httptools", "h11"]


def produce_api(
    state_dir: StateDirOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: settings api.host]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: settings api.port]")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes sharing the port")] = 1,
    loop: Annotated[Loop, typer.Option(help="Event loop (uvloop: measured faster, see README)")] = "uvloop",
    http: Annotated[Http, typer.Option(help="HTTP/1.1 parser (httptools: measured faster, see README)")] = "httptools",
) -> None:
    """Serve the producer HTTP API (POST /v1/topics/{topic}/events)."""
    if state_dir is not None:
        os.environ["HUBSTREAM_STATE_DIR"] = str(Path(state_dir).resolve())
    if host:
        os.environ["HUBSTREAM_API__HOST"] = host
    if port:
        os.environ["HUBSTREAM_API__PORT"] = str(port)
    settings = api_settings()
    kafka_config.producer_config(settings)  # fail at start on bad settings, e.g. a broken connection string
    setup_logging(settings)
    uvicorn.run(
        "hubstream_cli.produce_api:app_from_environment",
        factory=True,
        workers=workers,
        log_level=settings.log_level.lower(),
        **server_options(settings, loop=loop, http=http),
    )


def api_settings() -> Settings:
    """The settings every server process uses: env/.env (with the command line's choices), then the local stack."""
    return with_local_stack(load_settings())


def app_from_environment() -> FastAPI:
    """The app of one server process (uvicorn calls it in each worker, after the imports)."""
    settings = api_settings()
    setup_logging(settings)
    configure_tracing("hubstream-producer-api")  # only when OTEL_* configures an exporter; per process
    app = create_app(settings)
    freeze_startup_objects()  # no full-collection pauses over the imported modules while serving
    return app


def server_options(settings: Settings, *, loop: Loop = "uvloop", http: Http = "httptools") -> dict[str, Any]:
    """uvicorn's bounds: connections over the limit get 503 at once; idle and closing connections time out."""
    api = settings.api
    return {
        "host": api.host,
        "port": api.port,
        "loop": loop,
        "http": _HTTP_PROTOCOLS[http],
        "limit_concurrency": api.limit_concurrency,
        "timeout_keep_alive": api.timeout_keep_alive_s,
        "timeout_graceful_shutdown": api.timeout_graceful_shutdown_s,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,  # request line and headers (with httptools: http_head)
    }


_HTTP_PROTOCOLS = {"httptools": "hubstream_cli.http_head:BoundedHttpToolsProtocol", "h11": "h11"}
