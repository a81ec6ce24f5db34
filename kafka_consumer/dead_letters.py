"""Dead-letter topics: records that could not be processed, kept byte for byte with why and where from.

A dead letter is the original record (same key, same value bytes, same headers, so the Azure ``content-type``
header still names its schema) plus these headers, all UTF-8 text:

    hubstream.dlq.original-topic       topic the record was consumed from
    hubstream.dlq.original-partition   its partition
    hubstream.dlq.original-offset      its offset
    hubstream.dlq.original-timestamp   its timestamp, epoch milliseconds (empty when the record had none)
    hubstream.dlq.consumer-group       the group that gave up on it
    hubstream.dlq.error-class          e.g. UndecodableRecordError, UnknownSchemaIdError, ValueError
    hubstream.dlq.error-message        the error's message (at most 1000 characters)
    hubstream.dlq.attempts             how many times the handler ran (0: it could not be decoded)
    hubstream.dlq.failed-at            when it was dead-lettered, ISO-8601 UTC

It goes to ``<topic><suffix>`` (``.dlq`` by default) with the original key, so dead letters of one key stay in
order. ``hubstream dlq replay`` re-publishes them; a replayed record carries ``hubstream.dlq.replayed-from``
(``<dlq topic>/<partition>/<offset>``) and none of the headers above.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from hubstream.errors import BrokerError, HubstreamError
from kafka_consumer.records import Record
from kafka_producer.producer import AsyncProducer, Delivery

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

_MAX_MESSAGE_CHARS = 1000
_WRITE_ATTEMPTS = 3

Headers = list[tuple[str, bytes]]


class DeadLetterError(BrokerError):
    """A record could not be written to its dead-letter topic; its partition stops rather than lose it."""

    def __init__(self, dlq_topic: str, record: str, cause: BaseException) -> None:
        super().__init__(
            f"could not dead-letter {record} to {dlq_topic!r}: {cause}. The partition is stopped and the worker "
            f"reports unhealthy; check that topic {dlq_topic!r} exists and the broker accepts writes, then restart "
            "the worker (the record is delivered again)"
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
        ERROR_MESSAGE: text[:_MAX_MESSAGE_CHARS],
        ATTEMPTS: str(attempts),
        FAILED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    return original_headers(record.headers) + [(k, v.encode()) for k, v in details.items()]


class DeadLetterWriter:
    """Produces dead letters and waits for the broker's acknowledgement (retried a few times)."""

    def __init__(self, producer: AsyncProducer, *, group: str, suffix: str = ".dlq") -> None:
        self._producer = producer
        self.group = group
        self.suffix = suffix

    def topic_for(self, topic: str) -> str:
        return topic + self.suffix

    async def write(self, record: Record, error: BaseException, attempts: int) -> Delivery:
        """Dead-letter one record; raises DeadLetterError when the broker does not take it."""
        dlq_topic = self.topic_for(record.topic)
        headers = dead_letter_headers(record, error, attempts, self.group)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(_WRITE_ATTEMPTS),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(BrokerError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    delivery = await self._producer.send(dlq_topic, record.value, key=record.key, headers=headers)
        except BrokerError as exc:
            raise DeadLetterError(dlq_topic, record.where, exc) from exc
        log.warning(
            "dead-lettered %s to %s[%d]@%d after %d attempt(s): %s: %s",
            record.where,
            delivery.topic,
            delivery.partition,
            delivery.offset,
            attempts,
            error.__class__.__name__,
            str(error)[:200],
            extra={
                "event": "dead_lettered",
                "group": self.group,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "dlq_topic": dlq_topic,
                "error_class": error.__class__.__name__,
                "attempts": attempts,
            },
        )
        return delivery

    async def close(self) -> None:
        await self._producer.close()


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
    except ValueError:
        raise NotADeadLetterError(
            f"{record.where} has dead-letter headers that are not numbers where they must "
            "be (original-partition, original-offset, attempts)"
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
    )
