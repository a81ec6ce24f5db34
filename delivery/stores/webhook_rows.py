"""Webhook rows as both stores keep them: an endpoint as one JSON column, a claimed delivery with its message."""

from __future__ import annotations

import json
from typing import Any

from delivery.mailbox import Cursor, Message
from delivery.webhooks.model import Claimed, Endpoint, SigningSecret


def endpoint_json(endpoint: Endpoint) -> str:
    body = endpoint.as_json()
    body["secrets"] = [[s.secret, s.expires_at] for s in endpoint.secrets]
    return json.dumps(body)


def endpoint_from_json(text: str) -> Endpoint:
    body = json.loads(text)
    recipients = body["recipients"]
    return Endpoint(
        id=body["id"],
        url=body["url"],
        recipients=None if recipients == "*" else tuple(recipients),
        topics=None if body["topics"] is None else tuple(body["topics"]),
        ordered=body["ordered"],
        description=body["description"],
        secrets=tuple(SigningSecret(s, at) for s, at in body["secrets"]),
        status=body["status"],
        disabled_reason=body["disabledReason"],
        failing_since=body["failingSince"],
        created_at=body["createdAt"],
    )


def claimed_from_row(row: tuple[Any, ...], epoch: str) -> Claimed:
    endpoint_id, recipient, seq, event_id, attempts, topic, schema_name, schema_id, conversation, event_json, at = row
    message = None
    if event_json is not None:
        message = Message(
            recipient, Cursor(epoch, seq), event_id, topic, schema_name, schema_id, conversation, event_json, at
        ).wire_json()
    return Claimed(endpoint_id, recipient, seq, event_id, attempts, message)
