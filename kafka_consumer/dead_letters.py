"""Dead-letter topics: records that could not be processed, kept byte for byte with why and where from.

A dead letter is the original record (same key, same value bytes, same headers, so the Azure ``content-type``
header still names its schema) plus these headers, all UTF-8 text:

    hubstream.dlq.original-topic       topic the record was consumed from
    hubstream.dlq.original-partition   its partition
    hubstream.dlq.original-offset      its offset
    hubstream.dlq.original-timestamp   its timestamp, epoch milliseconds (empty when the record had none)
    hubstream.dlq.consumer-group       the group that gave up on it
    hubstream.dlq.error-class          e.g. UndecodableRecordError, UnknownSchemaIdError, ValueError
    hubstream.dlq.error-message        the error's message
    hubstream.dlq.attempts             how many times the handler ran (0: it could not be decoded)
    hubstream.dlq.failed-at            when it was dead-lettered, ISO-8601 UTC

Each of these values is at most 4 KiB (a longer one is cut, with `` … [truncated, N bytes]`` at its end).

It goes to ``<topic><suffix>`` (``.dlq`` by default) with the original key, so dead letters of one key stay in
order. ``hubstream dlq replay`` re-publishes them; a replayed record carries ``hubstream.dlq.replayed-from``
(``<dlq topic>/<partition>/<offset>``) and none of the headers above.

Size. A dead letter is its record plus the headers above (at most ~37 KiB), so the dead-letter producer may
send ``message.max.bytes`` + 64 KiB (``producer_config``), and a dead-letter topic should take as much: create
it with ``topic_config`` (Kafka's default ``max.message.bytes``, 1,048,588, already takes a 1,000,000-byte record
with its headers). Event Hubs takes 1 MB per record on the Standard and Premium tiers whatever the client asks,
so there a record near 1 MB has no headroom. A dead letter the producer or the broker still refuses as too large
(``MSG_SIZE_TOO_LARGE``, never retried) is written with an empty value instead (empty, not null: a null value
is a tombstone on a compacted topic), and two more headers:

    hubstream.dlq.value-omitted        the original value's length in bytes
    hubstream.dlq.value-sha256         its SHA-256, hex

so the partition moves on rather than stopping for good on a record no retry can write. The value is left
out rather than cut to fit: a cut Avro body decodes to nothing and cannot be replayed, the whole record is
still at original-topic/partition/offset until that topic's retention removes it (the hash tells it is the
same one), and a letter of headers alone fits for sure where a cut one would have to guess the broker's limit.
Only when even that letter is refused (its original headers alone too large) does the partition stop.

Outages. Any other refusal (brokers down, the dead-letter topic missing or not writable) is tried again, each try
bounded by the producer's delivery timeout and spaced by a capped doubling backoff, for as long as it takes: the
worker reports "degraded" meanwhile and goes on by itself once the letter is taken. Only that record's partition
(or key, with key concurrency) waits; nothing after it is committed before it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hubstream import kafka_config
from hubstream.errors import BrokerError, HubstreamError
from hubstream.settings import Settings
from kafka_consumer.outages import Outage
from kafka_consumer.records import Record
from kafka_producer.producer import AsyncProducer, Delivery, RecordTooLargeError

log = logging.getLogger(__name__)

PREFIX = "hubstream.dlq."
ORIGINAL_TOPIC = PREFIX + "original-topic"
ORIGINAL_PARTITION = PREFIX + "original-partition"
ORIGINAL_OFFSET = PREFIX + "original-offset"
ORIGINAL_TIMESTAMP = PREFIX + "original-timestamp"
CONSUMER_GROUP = PREFIX + "consumer-group"
ERROR_CLASS = PREFIX + "error-class"
ERROR_MESSAGE = PREFIX + "error-message"
ATTEMPTS = PREFIX + "attempts"
FAILED_AT = PREFIX + "failed-at"
REPLAYED_FROM = PREFIX + "replayed-from"
VALUE_OMITTED = PREFIX + "value-omitted"
VALUE_SHA256 = PREFIX + "value-sha256"

MAX_HEADER_BYTES = 4096  # each hubstream.dlq.* value
HEADROOM_BYTES = 64 * 1024  # over the producer's message.max.bytes: 9 capped headers and their names fit in it

Headers = list[tuple[str, bytes]]


class DeadLetterError(BrokerError):
    """A record could not be written to its dead-letter topic; its partition stops rather than lose it."""

    def __init__(
        self, dlq_topic: str, record: str, cause: BaseException, hint: str | None = None, *, retrying: bool = False
    ) -> None:
        hint = hint or f"check that topic {dlq_topic!r} exists and the broker accepts writes"
        if retrying:
            super().__init__(f"could not dead-letter {record} to {dlq_topic!r}: {cause}; {hint}")
            return
        super().__init__(
            f"could not dead-letter {record} to {dlq_topic!r}: {cause}. The partition is stopped and the worker "
            f"reports unhealthy; {hint}, then restart the worker (the record is delivered again)"
        )


class NotADeadLetterError(HubstreamError):
    pass


def original_headers(headers: Iterable[tuple[str, bytes | str | None]]) -> Headers:
    """A record's headers without dead-letter headers, values as bytes."""
    out: Headers = []
    for name, value in headers:
        if name.startswith(PREFIX):
            continue
        out.append((name, value.encode() if isinstance(value, str) else (value or b"")))
    return out


def capped(text: str, limit: int = MAX_HEADER_BYTES) -> bytes:
    """UTF-8 of `text`, at most `limit` bytes: a longer text is cut at a character and ends with a marker."""
    raw = text.encode(errors="replace")  # "replace": an error message may hold a lone surrogate
    if len(raw) <= limit:
        return raw
    marker = f" … [truncated, {len(raw)} bytes]".encode()
    return raw[: limit - len(marker)].decode(errors="ignore").encode() + marker


def dead_letter_headers(record: Record, error: BaseException, attempts: int, group: str) -> Headers:
    timestamp = record.timestamp_ms
    text = str(error) or error.__class__.__name__
    details = {
        ORIGINAL_TOPIC: record.topic,
        ORIGINAL_PARTITION: str(record.partition),
        ORIGINAL_OFFSET: str(record.offset),
        ORIGINAL_TIMESTAMP: "" if timestamp < 0 else str(timestamp),
        CONSUMER_GROUP: group,
        ERROR_CLASS: error.__class__.__name__,
        ERROR_MESSAGE: text,
        ATTEMPTS: str(attempts),
        FAILED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    return original_headers(record.headers) + [(k, capped(v)) for k, v in details.items()]


def value_omitted_headers(value: bytes | None) -> Headers:
    """The headers of a dead letter written without its value: how long it was, and its hash."""
    body = value or b""
    return [(VALUE_OMITTED, str(len(body)).encode()), (VALUE_SHA256, hashlib.sha256(body).hexdigest().encode())]


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka config of the dead-letter producer: the producer's, with room for the dead-letter headers
    (none on Event Hubs, which takes 1 MB per record at most on the Standard and Premium tiers)."""
    config = kafka_config.producer_config(settings)
    if settings.profile != "eventhubs":
        config["message.max.bytes"] = int(config["message.max.bytes"]) + HEADROOM_BYTES
    return config


def topic_config(settings: Settings) -> dict[str, str]:
    """Topic configs for a dead-letter topic hubstream creates: it takes what the dead-letter producer sends."""
    return {"max.message.bytes": str(settings.producer.max_message_bytes + HEADROOM_BYTES)}


class DeadLetterWriter:
    """Produces dead letters and waits for the broker's acknowledgement, through outages of any length; one too
    large for the dead-letter topic is written again without its value (see the module docstring)."""

    def __init__(
        self, producer: AsyncProducer, *, group: str, suffix: str = ".dlq", outage: Outage | None = None
    ) -> None:
        self._producer = producer
        self.group = group
        self.suffix = suffix
        self._outage = outage or Outage("the dead-letter topics", lambda: None)

    def topic_for(self, topic: str) -> str:
        return topic + self.suffix

    async def write(self, record: Record, error: BaseException, attempts: int) -> Delivery:
        """Dead-letter one record, waiting out outages; raises DeadLetterError when no retry can write it."""
        dlq_topic = self.topic_for(record.topic)
        headers = dead_letter_headers(record, error, attempts, self.group)
        omitted: RecordTooLargeError | None = None
        try:
            delivery = await self._send(dlq_topic, record, record.value, headers)
        except RecordTooLargeError as too_large:
            omitted = too_large
            try:
                delivery = await self._send(dlq_topic, record, b"", headers + value_omitted_headers(record.value))
            except RecordTooLargeError as exc:
                hint = (
                    "even without its value the dead letter is too large (the record's own headers): raise the "
                    f"max.message.bytes of topic {dlq_topic!r}"
                )
                raise DeadLetterError(dlq_topic, record.where, exc, hint) from exc
        self._log(record, delivery, error, attempts, omitted)
        return delivery

    async def _send(self, dlq_topic: str, record: Record, value: bytes | None, headers: Headers) -> Delivery:
        outage = self._outage
        while True:
            await asyncio.sleep(outage.wait_s())  # several partitions may wait on one outage: one backoff for all
            try:
                delivery = await self._producer.send(dlq_topic, value, key=record.key, headers=headers)
            except RecordTooLargeError:
                raise  # permanent: the same bytes are refused again however often they are sent
            except BrokerError as exc:
                outage.failed(DeadLetterError(dlq_topic, record.where, exc, retrying=True))
                continue
            outage.recovered()
            return delivery

    def _log(
        self, record: Record, delivery: Delivery, error: BaseException, attempts: int, omitted: BaseException | None
    ) -> None:
        without = ""
        if omitted is not None:
            without = (
                f"; the letter was written WITHOUT the record's value ({len(record.value or b'')} bytes), refused as "
                f"too large ({omitted}): the whole record stays at {record.where} until that topic's retention "
                "removes it"
            )
        log.log(
            logging.ERROR if omitted is not None else logging.WARNING,
            "dead-lettered %s to %s[%d]@%d after %d attempt(s): %s: %s%s",
            record.where,
            delivery.topic,
            delivery.partition,
            delivery.offset,
            attempts,
            error.__class__.__name__,
            str(error)[:200],
            without,
            extra={
                "event": "dead_lettered",
                "group": self.group,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "dlq_topic": delivery.topic,
                "error_class": error.__class__.__name__,
                "attempts": attempts,
                "value_omitted": omitted is not None,
            },
        )

    async def close(self) -> None:
        await self._producer.close()


WriterFactory = Callable[[Outage], DeadLetterWriter]  # a processor's dead-letter writer, reporting to its outage


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as read back from its topic (for replay and inspection)."""

    original_topic: str
    original_partition: int
    original_offset: int
    consumer_group: str
    error_class: str
    error_message: str
    attempts: int
    failed_at: str
    key: bytes | None
    value: bytes | None
    headers: Headers  # the original record's headers
    value_omitted: int | None = None  # the letter was too large: its value (this many bytes) was left out

    @property
    def fields(self) -> dict[str, str]:
        """What ``dlq replay --filter NAME=VALUE`` can match on."""
        return {
            "original-topic": self.original_topic,
            "original-partition": str(self.original_partition),
            "original-offset": str(self.original_offset),
            "consumer-group": self.consumer_group,
            "error-class": self.error_class,
            "key": "" if self.key is None else self.key.decode(errors="replace"),
        }


def read_dead_letter(record: Record) -> DeadLetter:
    found = {name: (value or b"").decode(errors="replace") for name, value in record.headers if name.startswith(PREFIX)}
    missing = [name for name in (ORIGINAL_TOPIC, ORIGINAL_PARTITION, ORIGINAL_OFFSET) if name not in found]
    if missing:
        raise NotADeadLetterError(f"{record.where} is not a hubstream dead letter: no {', '.join(missing)} header")
    try:
        partition, offset = int(found[ORIGINAL_PARTITION]), int(found[ORIGINAL_OFFSET])
        attempts = int(found.get(ATTEMPTS) or 0)
        omitted = int(found[VALUE_OMITTED]) if VALUE_OMITTED in found else None
    except ValueError:
        raise NotADeadLetterError(
            f"{record.where} has dead-letter headers that are not numbers where they must "
            "be (original-partition, original-offset, attempts, value-omitted)"
        ) from None
    return DeadLetter(
        original_topic=found[ORIGINAL_TOPIC],
        original_partition=partition,
        original_offset=offset,
        consumer_group=found.get(CONSUMER_GROUP, ""),
        error_class=found.get(ERROR_CLASS, ""),
        error_message=found.get(ERROR_MESSAGE, ""),
        attempts=attempts,
        failed_at=found.get(FAILED_AT, ""),
        key=record.key,
        value=record.value,
        headers=original_headers(record.headers),
        value_omitted=omitted,
    )
