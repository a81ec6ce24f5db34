"""Handlers: plain or async callables that take a ConsumedEvent. Loaded from ``module:function``."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from hubstream.errors import ConfigurationError
from hubstream.logs import printable
from kafka_consumer.events import ConsumedEvent

Handler = Callable[[ConsumedEvent], None] | Callable[[ConsumedEvent], Awaitable[None]]

log = logging.getLogger(__name__)


def log_event(event: ConsumedEvent) -> None:
    """The default handler: one INFO line per event, naming it without its content; the body only at DEBUG.

    Bodies may hold personal data, so the INFO line has only where the event is, its key, schema, eventId (if it
    has one) and size; keys and ids are escaped (``printable``) so they cannot forge log lines.
    """
    event_id = event.value.get("eventId")
    log.info(
        "%s[%d]@%d key=%s schema=%s%s (%d bytes)",
        event.topic,
        event.partition,
        event.offset,
        printable(event.key),
        event.schema_name,
        "" if event_id is None else f" eventId={printable(str(event_id))}",
        len(event.body),
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s[%d]@%d body %s", event.topic, event.partition, event.offset, _json_line(event.value))


def _json_line(value: object) -> str:
    """JSON on one line: non-ASCII text stays readable, but no character that moves or colours the terminal."""
    text = json.dumps(value, default=str, ensure_ascii=False)  # escapes newlines and other C0 controls
    if text.isprintable():
        return text
    # what json leaves as is but a terminal may act on: DEL, C1 controls (\x9b starts an escape), U+2028, ...
    return "".join(char if char.isprintable() else _json_escape(char) for char in text)


def _json_escape(char: str) -> str:
    units = char.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2]):04x}" for i in range(0, len(units), 2))


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
