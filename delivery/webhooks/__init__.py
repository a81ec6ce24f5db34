"""Signed webhooks from the mailboxes: one more way a recipient's messages leave the store.

Endpoints and their delivery rows live in the mailbox store (written in the mailbox write's transaction); the
dispatcher claims due deliveries with a lease and POSTs them with Standard Webhooks signatures. For receivers:
``from delivery.webhooks import verify``.
"""

from delivery.webhooks.signing import WebhookVerificationError, verify

__all__ = ["WebhookVerificationError", "verify"]
