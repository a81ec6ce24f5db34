"""Webhook endpoints, their deliveries and attempts, and the store that keeps them durable.

A webhook is one more way a recipient's messages leave the mailbox. When a message is stored, every enabled
endpoint whose recipients (``"*"`` for all) and topics match gets a delivery row in the same transaction, so a
crash can neither lose it nor create it twice. A delivery is pending until an attempt succeeds, or until its retry
schedule is used up (failed). The dispatcher claims due deliveries with a lease (a claimed row is not due again
until the lease runs out), so a node that dies mid-send leaves its rows to be tried again, by any node, on time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from hubstream.errors import HubstreamError

Status = Literal["enabled", "disabled"]


class WebhookNotFoundError(HubstreamError):
    status = 404

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"no webhook endpoint {endpoint_id!r}; `hubstream webhooks list` shows them")


@dataclass(frozen=True)
class SigningSecret:
    secret: str
    expires_at: float | None = None  # an old secret after a rotation signs until then


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    recipients: tuple[str, ...] | None  # None: every recipient
    topics: tuple[str, ...] | None  # None: every topic
    ordered: bool
    description: str
    secrets: tuple[SigningSecret, ...]
    status: Status = "enabled"
    disabled_reason: str | None = None  # gone (410), failing, manual
    failing_since: float | None = None  # the first failure since the last success
    created_at: float = field(default_factory=time.time)

    def matches(self, recipient: str, topic: str) -> bool:
        return (self.recipients is None or recipient in self.recipients) and (
            self.topics is None or topic in self.topics
        )

    def signing_secrets(self, now: float | None = None) -> list[str]:
        at = time.time() if now is None else now
        return [s.secret for s in self.secrets if s.expires_at is None or s.expires_at > at]

    def after(self, results: Sequence[Result], disable_after_s: float) -> Endpoint:
        """The endpoint after a batch of its outcomes: a success clears the failing clock, a failure starts it and
        disables the endpoint once it ran ``disable_after_s``, a 410 disables it at once."""
        updated = self
        for r in sorted(results, key=lambda r: r.attempt.at):
            if r.verdict == "succeeded":
                updated = replace(updated, failing_since=None)
            elif r.verdict == "gone":
                updated = replace(updated, status="disabled", disabled_reason="gone")
            else:
                since = updated.failing_since or r.attempt.at
                updated = replace(updated, failing_since=since)
                if r.attempt.at - since >= disable_after_s and updated.status == "enabled":
                    updated = replace(updated, status="disabled", disabled_reason="failing")
        return updated

    def as_json(self) -> dict[str, Any]:
        """Everything but the secrets, which are shown once, when made."""
        return {
            "id": self.id,
            "url": self.url,
            "recipients": "*" if self.recipients is None else list(self.recipients),
            "topics": None if self.topics is None else list(self.topics),
            "ordered": self.ordered,
            "description": self.description,
            "status": self.status,
            "disabledReason": self.disabled_reason,
            "failingSince": self.failing_since,
            "createdAt": self.created_at,
        }


@dataclass(frozen=True)
class Claimed:
    """A due delivery, leased to one dispatcher, with what it sends."""

    endpoint_id: str
    recipient: str
    seq: int
    event_id: str
    attempts: int  # made before this one
    message_json: str | None  # None: retention removed the message before it could be delivered


@dataclass(frozen=True)
class Attempt:
    endpoint_id: str
    event_id: str
    recipient: str
    seq: int
    attempt: int
    at: float
    status: int | None
    latency_ms: float
    response: str  # the first bytes of the response body
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "recipient": self.recipient,
            "attempt": self.attempt,
            "at": self.at,
            "status": self.status,
            "latencyMs": round(self.latency_ms, 1),
            "response": self.response,
            "error": self.error,
        }


@dataclass(frozen=True)
class Result:
    """What became of a claimed delivery."""

    claimed: Claimed
    attempt: Attempt
    verdict: str  # succeeded, retry, failed, gone
    next_attempt_at: float | None


class WebhookStore(Protocol):
    async def add_endpoint(self, endpoint: Endpoint) -> None: ...

    async def endpoint(self, endpoint_id: str) -> Endpoint:
        """Raises WebhookNotFoundError."""
        ...

    async def endpoints(self) -> list[Endpoint]: ...

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        """Replace an endpoint's settings (status, secrets, filters)."""
        ...

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """The endpoint and its deliveries and attempts go."""
        ...

    async def claim(self, now: float, capacity: Mapping[str, int], lease_s: float) -> list[Claimed]:
        """Due deliveries of the endpoints in ``capacity`` (if still enabled), at most that many each, oldest due
        first; for an ordered endpoint only each recipient's oldest pending one. Not due again for lease_s."""
        ...

    async def record(self, results: Sequence[Result], disable_after_s: float) -> list[str]:
        """Apply outcomes and keep the attempts; returns the ids of endpoints that got disabled."""
        ...

    async def recover(self, endpoint_id: str, since: float) -> int:
        """Make the deliveries that failed since ``since`` pending again, due now. Returns how many."""
        ...

    async def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        """The newest attempts first."""
        ...

    async def backlog(self) -> dict[str, int]:
        """Pending deliveries per endpoint."""
        ...

    async def log_attempt(self, attempt: Attempt) -> None:
        """Keep an attempt that belongs to no delivery (a test send)."""
        ...

    async def prune_attempts(self, before: float) -> int: ...
