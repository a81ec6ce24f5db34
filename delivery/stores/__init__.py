"""Where mailboxes live: one interface (MailboxStore), SQLite on one node, PostgreSQL across nodes.

``open_store("sqlite:PATH" | "postgresql://...")`` picks the implementation. Both pass the same contract tests
(tests/test_mailbox_store.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from delivery.mailbox import Cursor, Delivery, MailboxState, Page
from delivery.wakeups import Wakeups
from delivery.webhooks.model import WebhookStore
from hubstream.errors import ConfigurationError


@dataclass(frozen=True)
class Retention:
    max_messages: int  # per recipient; older messages go first
    ttl_s: float  # messages older than this go
    acked_grace_s: float  # acked messages stay readable this long after their ack


class MailboxStore(Protocol):
    """Every method may raise StoreUnavailableError (retry later) and MailboxError (the request is wrong)."""

    new_deliveries: asyncio.Event  # set when a write created webhook deliveries

    @property
    def webhooks(self) -> WebhookStore:
        """The webhook tables, in the same database."""
        ...

    @property
    def epoch(self) -> str: ...

    async def open(self) -> None:
        """Connect, create the tables when they do not exist, and learn the epoch."""
        ...

    async def close(self) -> None: ...

    async def write(self, deliveries: Sequence[Delivery]) -> int:
        """Store the deliveries in one transaction, in order; a (recipient, eventId) stored before is skipped.
        Durable when it returns; wakes the streams of the recipients that got a message. Returns how many were
        stored (the rest were there already)."""
        ...

    async def read(self, recipient: str, after: Cursor | None, limit: int, conversation: str | None = None) -> Page: ...

    async def ack(self, recipient: str, up_to: Cursor) -> MailboxState: ...

    async def state(self, recipient: str) -> MailboxState: ...

    async def prune(self) -> int:
        """Apply the retention: drop expired and long-acked messages. Returns how many went."""
        ...

    async def ping(self) -> None:
        """Raises StoreUnavailableError when the store cannot answer."""
        ...


def open_store(url: str, *, retention: Retention, wakeups: Wakeups, state_dir: Path) -> MailboxStore:
    """``sqlite:PATH`` (relative to the working directory; ``sqlite:`` alone: the state dir's delivery.db) or a
    ``postgresql://`` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        from delivery.stores.postgres import PostgresStore

        return PostgresStore(url, retention=retention, wakeups=wakeups)
    if url.startswith("sqlite:"):
        from delivery.stores.sqlite import SqliteStore

        path = url.removeprefix("sqlite:").removeprefix("//") or str(state_dir / "delivery.db")
        return SqliteStore(Path(path), retention=retention, wakeups=wakeups)
    raise ConfigurationError(
        f"mailbox store {url.split(':')[0]!r}: use sqlite:PATH or a postgresql:// URL "
        "(HUBSTREAM_DELIVERY__STORE or --store)"
    )
