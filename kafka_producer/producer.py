"""An asyncio producer over librdkafka: every send returns a future resolved by the delivery callback.

``send`` is one record, one future. ``send_many`` is many records, one future for all of their outcomes (a
Delivery or the record's own error, in the order given): per record only librdkafka's produce call and a small
callback, which is what brings a batch close to raw librdkafka speed.

A background thread serves librdkafka's callbacks (``poll``); nothing calls ``flush()`` per message, so
sends from many requests share batches. Sends are idempotent with ``acks=all`` (see kafka_config).
The outcomes one ``poll`` brings are handed to the event loop together, with one wake-up of the loop per poll
rather than one per record (a wake-up is a write to the loop's self-pipe and a turn of the loop).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hubstream.errors import BrokerError, BrokerUnavailableError, ConfigurationError

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes | str]]

# librdkafka errors that mean "the broker could not be reached in time", as opposed to a rejected record
_UNAVAILABLE = {
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}
_QUEUE_FULL_RETRY_S = 0.01


class Delivery(NamedTuple):  # a tuple: a third of a frozen dataclass's cost to build, once per record
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


class ProducerQueueFullError(BrokerUnavailableError):
    """The producer's local queue is full (the broker is not draining it); retry after a pause."""


class RecordTooLargeError(BrokerError):
    """The encoded record is larger than the producer's or the broker's message size limit; no retry helps."""


def delivery_error(error: KafkaError, topic: str) -> BrokerError:
    if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return RecordTooLargeError(
            f"the record for {topic!r} is larger than the message size limit ({error.str()}); "
            "send a smaller event (HUBSTREAM_PRODUCER__MAX_MESSAGE_BYTES sets the producer's limit)"
        )
    if error.code() in _UNAVAILABLE:
        return BrokerUnavailableError(
            f"the broker did not acknowledge the record for {topic!r} in time ({error.str()}); "
            "check that Kafka is reachable and retry"
        )
    return BrokerError(f"the broker rejected the record for {topic!r}: {error.str()}")


class AsyncProducer:
    """Use as ``async with AsyncProducer(config) as producer: await producer.send(...)``."""

    def __init__(self, config: dict[str, Any], *, poll_timeout_s: float = 0.1, wait_when_full: bool = True) -> None:
        """``wait_when_full=False``: a send into a full local queue fails at once (ProducerQueueFullError)
        instead of waiting on the caller's thread for room; for callers that can answer "retry later"."""
        self._wait_when_full = wait_when_full
        self._last_client_error: KafkaError | None = None
        self._message_timeout_s = float(config.get("message.timeout.ms", 300_000)) / 1000
        self._poll_timeout_s = poll_timeout_s
        self._stopping = threading.Event()
        self._settled: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Delivery], Delivery | BrokerError]]
        self._settled = deque()  # filled by delivery callbacks, handed to the loops after each poll
        try:
            self._producer = Producer({**config, "error_cb": self._on_client_error})
        except KafkaException as exc:
            raise ConfigurationError(
                f"the Kafka producer cannot start: {exc.args[0].str()}; check the "
                "HUBSTREAM_PRODUCER__* and HUBSTREAM_KAFKA__* settings"
            ) from exc
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            self._poll(self._poll_timeout_s)

    def _poll(self, timeout_s: float) -> None:
        """Serve callbacks, then hand their outcomes to each loop at once (any thread may call this)."""
        self._producer.poll(timeout_s)
        self._hand_over()

    def _hand_over(self) -> None:
        settled = self._settled
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Delivery], Delivery | BrokerError]]] = {}
        while settled:
            loop, future, outcome = settled.popleft()
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, outcomes in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle_all, outcomes)

    def _on_client_error(self, error: KafkaError) -> None:
        # Connection-level trouble (brokers down, auth); deliveries report their own outcome.
        self._last_client_error = error
        log.warning("kafka client error: %s", error.str())

    @property
    def last_client_error(self) -> KafkaError | None:
        return self._last_client_error

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Delivery]:
        """Queue one record; the returned future resolves once the broker acknowledged it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            outcome = delivery_error(error, topic) if error is not None else _delivered(topic, message)
            self._settled.append((loop, future, outcome))

        kwargs: dict[str, Any] = {
            "value": value,
            "key": key,
            "headers": list(headers or []),
            "on_delivery": on_delivery,
        }
        if partition is not None:
            kwargs["partition"] = partition
        self._produce(topic, kwargs)
        return future

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        *,
        keys: Sequence[bytes | str | None] | None = None,
        headers: Sequence[Headers | None] | None = None,
    ) -> asyncio.Future[list[Delivery | BrokerError]]:
        """Queue records (``keys`` and ``headers`` per record, when given); the future resolves once every one has
        its outcome: where the broker put it, or the BrokerError that record met (the others are not affected)."""
        for name, per_record in (("keys", keys), ("headers", headers)):
            if per_record is not None and len(per_record) != len(values):
                raise ValueError(f"send_many got {len(values)} values and {len(per_record)} {name}: give one per value")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Delivery | BrokerError]] = loop.create_future()
        batch = _Batch(topic, loop, future, len(values), self._settled)
        if not values:
            future.set_result([])
            return future
        produce, settle = self._producer.produce, batch.settle
        nothing = [None] * len(values)
        records = zip(values, keys if keys is not None else nothing, headers or nothing, strict=True)
        for index, (value, key, given) in enumerate(records):
            record_headers = given if given is None or type(given) is list else list(given)  # librdkafka: a list
            callback = partial(settle, index)
            try:
                try:
                    produce(topic, value, key, on_delivery=callback, headers=record_headers)
                except BufferError:
                    kwargs = {"value": value, "key": key, "on_delivery": callback, "headers": record_headers}
                    self._wait_for_room(topic, kwargs)
            except BrokerError as exc:  # this record only: the rest of the batch goes on
                batch.outcome(index, exc)
            except KafkaException as exc:
                batch.outcome(index, delivery_error(exc.args[0], topic))
        return future

    def _produce(self, topic: str, kwargs: dict[str, Any]) -> None:
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError:
            self._wait_for_room(topic, kwargs)
        except KafkaException as exc:
            raise delivery_error(exc.args[0], topic) from exc

    def _wait_for_room(self, topic: str, kwargs: dict[str, Any]) -> None:
        # A full local queue means the broker is not draining it: wait (bounded), never drop.
        deadline = time.monotonic() + self._message_timeout_s
        while True:
            if not self._wait_when_full:
                raise ProducerQueueFullError(
                    f"the producer's local queue is full: the broker is not taking records for {topic!r} "
                    "fast enough; retry after the Retry-After delay"
                )
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    "the producer's local queue stayed full: the broker is not accepting records"
                )
            self._poll(_QUEUE_FULL_RETRY_S)
            try:
                self._producer.produce(topic, **kwargs)
                return
            except BufferError:
                continue
            except KafkaException as exc:
                raise delivery_error(exc.args[0], topic) from exc

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        if self._stopping.is_set():
            return False
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    async def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is queued (bounded), then stop the poll thread. Returns records left undelivered."""
        if self._stopping.is_set():
            return 0  # closed already
        left = await asyncio.to_thread(self._producer.flush, timeout_s)
        self._stopping.set()
        await asyncio.to_thread(self._poller.join, self._poll_timeout_s * 20)
        if left:
            log.error("%d records were not delivered before the producer closed", left)
            self._producer.purge()  # their futures fail now, and the close below has nothing to wait for
            self._producer.flush(0)
        self._hand_over()  # what flush() delivered or purged
        # Without this the client's threads keep reconnecting to the brokers until garbage collection.
        await asyncio.to_thread(self._producer.close)
        return int(left)


class _Batch:
    """The outcomes of one send_many, filled in by delivery callbacks (on whichever thread serves them)."""

    __slots__ = ("_counted", "_settled", "future", "loop", "outcomes", "size", "topic")

    def __init__(
        self,
        topic: str,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[list[Delivery | BrokerError]],
        size: int,
        settled: deque[Any],
    ) -> None:
        self.topic, self.loop, self.future, self.size = topic, loop, future, size
        self.outcomes: list[Delivery | BrokerError | None] = [None] * size
        self._counted = itertools.count(1)  # next() is atomic: two threads serving callbacks count right
        self._settled = settled

    def settle(self, index: int, error: KafkaError | None, message: Message) -> None:
        """The delivery callback of record ``index``."""
        self.outcome(index, delivery_error(error, self.topic) if error is not None else _delivered(self.topic, message))

    def outcome(self, index: int, outcome: Delivery | BrokerError) -> None:
        self.outcomes[index] = outcome
        if next(self._counted) == self.size:  # the last one: hand the whole list to the loop
            self._settled.append((self.loop, self.future, self.outcomes))


def _delivered(topic: str, message: Message) -> Delivery | BrokerError:
    """Where the broker put an acknowledged record (librdkafka sets its partition and offset)."""
    partition, offset = message.partition(), message.offset()
    if partition is None or offset is None:
        return BrokerError(f"the broker acknowledged a record for {topic!r} without saying where it is")
    _, ts = message.timestamp()
    return Delivery(topic, partition, offset, ts)


def _settle_all(outcomes: Iterable[tuple[asyncio.Future[Delivery], Delivery | BaseException]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # the awaiting request was cancelled
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
