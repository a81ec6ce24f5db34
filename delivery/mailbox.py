"""The mailbox model: per-recipient ordered messages, opaque cursors, one ack, explicit gaps.

Every recipient has an ordered mailbox. A message's **cursor** is ``<epoch>-<seq>``: ``seq`` is allocated per
recipient when the message is stored, strictly increasing in commit order, and ``epoch`` names the store (a new
store, or a reset one, has a new epoch), so a cursor from an old store is never taken for a position in a new one.
Clients treat cursors as opaque strings and dedupe on ``eventId``, the one id every channel carries.

- Reading after a cursor returns the next messages in order. When retention already dropped messages right after
  that cursor (too old, over the per-recipient cap, or acked and past the grace period), the answer says so with
  ``gap``: it never skips silently. A cursor from another epoch is a gap too.
- Acking ``upTo`` a cursor marks everything up to it as read; it is idempotent and never moves backwards. Acked
  messages stay readable for a grace period, so another device of the same recipient can still catch up.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hubstream.errors import HubstreamError

_CURSOR = re.compile(r"^([0-9a-f]{8})-(0|[1-9][0-9]{0,18})$")


class MailboxError(HubstreamError):
    """A mailbox request that cannot be served as asked; ``status`` is its HTTP status."""

    status = 400
    code = "BadRequest"


class InvalidCursorError(MailboxError):
    code = "InvalidCursor"

    def __init__(self, text: str) -> None:
        super().__init__(
            f"{text[:80]!r} is not a cursor: pass back a cursor this service gave you "
            "(the `cursor` of a message, or `next` of a page), or omit it to start from the beginning"
        )


class AckAheadError(MailboxError):
    status = 409
    code = "AckAhead"

    def __init__(self, recipient: str, cursor: Cursor, last: Cursor | None) -> None:
        super().__init__(
            f"cannot ack {recipient}'s mailbox up to {cursor}: its last message is "
            f"{last or 'none yet'}. Ack only cursors you have received."
        )


class StoreUnavailableError(HubstreamError):
    """The mailbox store cannot be reached or refused the operation; retry later."""


@dataclass(frozen=True, order=True)
class Cursor:
    epoch: str
    seq: int

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.match(text)
        if match is None:
            raise InvalidCursorError(text)
        return cls(match.group(1), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"


@dataclass(frozen=True)
class Delivery:
    """What the delivery processor stores for one recipient of one event."""

    recipient: str
    event_id: str
    topic: str
    partition: int
    offset: int
    schema_name: str
    schema_id: str
    conversation: str | None
    event_json: str  # the event as natural JSON text
    trace: str | None = None  # W3C traceparent of its mailbox-write span, kept while tracing is on

    def stored_as(self, cursor: Cursor, arrived_at_ms: int) -> Message:
        """The message this delivery became in its recipient's mailbox."""
        return Message(
            self.recipient,
            cursor,
            self.event_id,
            self.topic,
            self.schema_name,
            self.schema_id,
            self.conversation,
            self.event_json,
            arrived_at_ms,
            self.trace,
        )


@dataclass(frozen=True)
class Message:
    recipient: str
    cursor: Cursor
    event_id: str
    topic: str
    schema_name: str
    schema_id: str
    conversation: str | None
    event_json: str
    arrived_at_ms: int
    trace: str | None = None  # the traceparent its stream send continues (not sent to clients)

    def as_json(self) -> dict[str, Any]:
        """The wire form; ``event`` is spliced in as raw JSON by ``wire_json`` to avoid parsing it again."""
        return {
            "cursor": str(self.cursor),
            "eventId": self.event_id,
            "topic": self.topic,
            "schema": self.schema_name,
            "schemaId": self.schema_id,
            "conversation": self.conversation,
            "arrivedAt": _iso(self.arrived_at_ms),
        }

    def wire_json(self) -> str:
        """The message as a JSON text, the stored event inserted as it is (it is JSON already)."""
        head = json.dumps(self.as_json(), ensure_ascii=False, separators=(",", ":"))
        return f'{head[:-1]},"event":{self.event_json}}}'


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    next: Cursor | None  # the cursor to read after next time (the last message's, or the one asked with)
    gap: bool  # messages right after the asked cursor are gone (retention, or another epoch)


@dataclass(frozen=True)
class MailboxState:
    recipient: str
    epoch: str
    count: int
    first: Cursor | None
    last: Cursor | None
    acked: Cursor | None

    def as_json(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "count": self.count,
            "first": _text(self.first),
            "last": _text(self.last),
            "acked": _text(self.acked),
        }


def _text(cursor: Cursor | None) -> str | None:
    return None if cursor is None else str(cursor)


@functools.lru_cache(maxsize=256)  # the messages of one write share their arrival time
def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
