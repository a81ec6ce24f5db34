"""`hubstream produce-api`: the producer HTTP API on its own, against any profile."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from devstack.discovery import with_local_stack
from hubstream import kafka_config
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
    uvicorn.run(
        create_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=settings.log_level.lower(),
    )
