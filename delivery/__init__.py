"""Delivery to end clients: per-recipient mailboxes fed by a consumer group, read by pull, ack and streams.

    Kafka → DeliveryProcessor (consumer worker) → MailboxStore (SQLite | PostgreSQL) → API: pull / SSE / WebSocket

Guarantees: at least once from Kafka (offsets committed only after the mailbox write is durable), exactly once
in the mailbox (writes are idempotent per recipient and eventId), at least once to clients, which dedupe on
``eventId`` and resume from their cursor on any node.
"""
