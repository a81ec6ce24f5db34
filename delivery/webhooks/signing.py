"""Standard Webhooks signatures (v1: HMAC-SHA256), for sending and, with ``verify``, for receivers.

A request carries ``webhook-id`` (the event's id: the same on every retry, so receivers dedupe on it),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``: a space-separated list of
``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per secret in use, so a receiver keeps verifying while a
secret is rotated. Secrets are ``whsec_`` + base64 of 32 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

from hubstream.errors import HubstreamError

PREFIX = "whsec_"
TOLERANCE_S = 300  # what the reference libraries accept: five minutes either way


class WebhookVerificationError(HubstreamError):
    """A request that is not signed by this secret, or not recently."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a request."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets_in_use: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given."""
    at = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": " ".join(signature(s, msg_id, at, body) for s in secrets_in_use),
    }


def verify(request_headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None) -> None:
    """For receivers: raise WebhookVerificationError unless one of the signatures is this secret's and the
    timestamp is within five minutes. Pass the body exactly as received (before any JSON parsing)."""
    lowered = {k.lower(): v for k, v in request_headers.items()}
    msg_id, stamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - at) > TOLERANCE_S:
        raise WebhookVerificationError("webhook-timestamp is too old or too new (over five minutes away)")
    expected = signature(secret, msg_id, at, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise WebhookVerificationError("no signature matches this secret")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None
