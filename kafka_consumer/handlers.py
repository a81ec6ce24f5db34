"""Handlers: plain or async callables that take a ConsumedEvent. Loaded from ``module:function``."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from hubstream.errors import ConfigurationError
from kafka_consumer.events import ConsumedEvent

Handler = Callable[[ConsumedEvent], None] | Callable[[ConsumedEvent], Awaitable[None]]

log = logging.getLogger(__name__)


def log_event(event: ConsumedEvent) -> None:
    """The default handler: one log line per event."""
    log.info(
        "%s[%d]@%d key=%s schema=%s %s",
        event.topic,
        event.partition,
        event.offset,
        event.key_text,
        event.schema_name,
        json.dumps(event.value, default=str, ensure_ascii=False),
    )


def load_handler(spec: str) -> Handler:
    """Import ``package.module:function``; the message says how to fix a wrong spec."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"handler {spec!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import handler module {module_name!r}: {exc}") from exc
    handler: object = getattr(module, attr, None)
    if not callable(handler):
        raise ConfigurationError(f"{module_name!r} has no callable {attr!r}")
    return cast(Handler, handler)  # imported by name: only its call can show that it takes a ConsumedEvent
