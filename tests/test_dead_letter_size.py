"""Dead letters of large records: headroom for the dead-letter headers, capped header values, and a letter too
large even so written without its value, so one record never stops its partition for good."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from devstack.provisioning import provision
from hubstream.settings import Settings
from kafka_consumer import dead_letters as dlq
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import PermanentError, RetryPolicy, call_with_retries
from kafka_consumer.records import Record, record_of
from kafka_producer.producer import Delivery, RecordTooLargeError
from schemas.contracts import Catalog
from schemas.natural import NaturalJson
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.readers import read_all
from tests.fixtures.services import CHAT, make_settings, running_worker, write_catalog
from tests.fixtures.waiting import wait_for

CONN = "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc="
RECORD = Record("orders", 2, 41, b"k", b"v" * 10, [("content-type", b"avro/binary+" + b"0" * 32)], 1_700_000_000_000)


# --- without a broker ---------------------------------------------------------------------------------


def test_each_dead_letter_header_value_is_capped_with_a_marker() -> None:
    headers = dict(dlq.dead_letter_headers(RECORD, ValueError("é" * 100_000), 3, "g"))
    message = headers[dlq.ERROR_MESSAGE]
    assert len(message) <= dlq.MAX_HEADER_BYTES
    assert message.decode().endswith(" … [truncated, 200000 bytes]")  # cut at a character, not inside one
    assert headers[dlq.ORIGINAL_OFFSET] == b"41" and headers["content-type"].startswith(b"avro/binary+")
    everything = dlq.dead_letter_headers(RECORD, ValueError("x" * 10**6), 3, "g" * 10**6)
    assert sum(len(n) + len(v) for n, v in everything) < dlq.HEADROOM_BYTES
    lone_surrogate = dict(dlq.dead_letter_headers(RECORD, ValueError("bad \ud800 key"), 1, "g"))
    assert lone_surrogate[dlq.ERROR_MESSAGE] == b"bad ? key"


def test_the_dead_letter_producer_has_headroom_except_on_event_hubs() -> None:
    kafka = Settings(_env_file=None, profile="kafka", kafka={"bootstrap_servers": "localhost:9092"})
    assert dlq.producer_config(kafka)["message.max.bytes"] == 1_000_000 + 64 * 1024
    assert dlq.topic_config(kafka) == {"max.message.bytes": str(1_000_000 + 64 * 1024)}
    eventhubs = Settings(
        _env_file=None, profile="eventhubs", eventhubs={"connection_string": CONN, "check_login": False}
    )
    assert dlq.producer_config(eventhubs)["message.max.bytes"] == 1_000_000  # the service's limit on Standard


@pytest.mark.parametrize(
    "error",
    [RecordTooLargeError("too large"), KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))],
    ids=["RecordTooLargeError", "KafkaException"],
)
def test_a_handler_failing_on_a_record_too_large_to_produce_is_not_retried(error: Exception) -> None:
    calls: list[int] = []

    async def call() -> None:
        calls.append(1)
        raise error

    policy = RetryPolicy(attempts=5, initial_backoff_s=0, max_backoff_s=0)
    failed = asyncio.run(call_with_retries(call, policy, on_retry=lambda e, n: None))
    assert failed is not None and failed.error is error and failed.attempts == 1 and calls == [1]


class SizeLimitedProducer:
    """Refuses (as librdkafka does) any record whose value, key and headers exceed `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes | None, *, key: Any = None, headers: Any = None) -> Delivery:
        size = len(value or b"") + len(key or b"") + sum(len(n) + len(v) for n, v in headers)
        self.sent.append((value, list(headers)))
        if size > self.limit:
            raise RecordTooLargeError(f"{size} bytes")
        return Delivery(topic, 0, len(self.sent), None)


def test_a_letter_too_large_is_sent_once_then_written_without_its_value() -> None:
    producer = SizeLimitedProducer(limit=2000)
    writer = dlq.DeadLetterWriter(producer, group="g")  # type: ignore[arg-type]
    record = Record("orders", 0, 5, b"k", b"\x01" * 5000, [("trace", b"t")], -1)
    asyncio.run(writer.write(record, PermanentError("no"), 1))
    (first, _), (second, headers) = producer.sent  # too large is permanent: not retried as it is
    assert first == record.value and second == b""
    found = dict(headers)
    assert found[dlq.VALUE_OMITTED] == b"5000"
    assert found[dlq.VALUE_SHA256] == hashlib.sha256(record.value or b"").hexdigest().encode()
    assert found["trace"] == b"t" and found[dlq.ORIGINAL_OFFSET] == b"5"


def test_a_letter_too_large_even_without_its_value_stops_the_partition_with_the_reason() -> None:
    producer = SizeLimitedProducer(limit=2000)
    writer = dlq.DeadLetterWriter(producer, group="g")  # type: ignore[arg-type]
    record = Record("orders", 0, 5, b"k", b"\x01" * 5000, [("trace", b"t" * 3000)], -1)
    with pytest.raises(dlq.DeadLetterError, match="even without its value") as raised:
        asyncio.run(writer.write(record, PermanentError("no"), 1))
    assert "max.message.bytes of topic 'orders.dlq'" in str(raised.value) and len(producer.sent) == 2


# --- over the real broker -----------------------------------------------------------------------------


def encoded_chat(settings: Settings, topic: str, size: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A chat event of the topic's contract whose Avro body is exactly `size` bytes, and its headers."""
    contract = Catalog.from_settings(settings).contract_for(topic)
    with SchemaRegistry.from_settings(settings) as registry:
        registry.register(contract)
        serde, natural = AvroSerde(registry), NaturalJson(contract.schema)
        content = ""
        for _ in range(5):  # the content's length prefix grows with it: converge on the size
            encoded = serde.encode(natural.from_json(chat_event("conv-1", 1, content=content)), contract)
            if len(encoded.value) == size:
                return encoded.value, list(encoded.headers)
            content = "x" * (len(content) + size - len(encoded.value))
    raise AssertionError(f"no event of {size} bytes")


def produce(broker: LocalKafka, topic: str, records: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0, "message.max.bytes": 2**21})
    for value, headers in records:
        producer.produce(topic, value, key=b"conv-1", headers=headers)
    assert producer.flush(15) == 0


def create_dead_letter_topic(broker: LocalKafka, name: str, config: dict[str, str]) -> None:
    [future] = broker.admin.create_topics([NewTopic(name, 1, config=config)], operation_timeout=15).values()
    future.result(15)


def failing_on_big(handled: list[int]) -> Any:
    lock = threading.Lock()

    def handler(event: ConsumedEvent) -> None:
        if len(event.value["content"]) > 10_000:
            raise PermanentError(f"cannot take {len(event.value['content'])} characters")
        with lock:
            handled.append(event.offset)

    return handler


def test_a_failing_record_near_1_mb_is_dead_lettered_whole_with_its_headers_and_the_partition_moves_on(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = unique("big")
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    provision(settings, default_partitions=1)  # as `hubstream provision` makes them: the .dlq with its headroom
    small = encoded_chat(settings, topic, 200)
    big = encoded_chat(settings, topic, 1_000_000 - 100)
    produce(kafka_broker, topic, [small, big, small])
    handled: list[int] = []
    group = unique("big")

    # the worker as `hubstream consume` builds it: its dead-letter producer has the 64 KiB headroom
    with running_worker(settings, group, [topic], failing_on_big(handled)) as worker:
        wait_for(lambda: handled == [0, 2], "the record after the big one", 60)
        wait_for(lambda: kafka_broker.committed(group, topic, 1) == {0: 3}, "the commit past the big one", 30)
        assert worker.status().healthy
    [letter] = read_all(kafka_broker, topic + ".dlq")
    story = dlq.read_dead_letter(record_of(letter))
    assert letter.value() == big[0] and letter.key() == b"conv-1"  # byte for byte
    assert story.headers == big[1] and story.value_omitted is None
    assert (story.original_offset, story.error_class, story.attempts) == (1, "PermanentError", 1)
    assert story.error_message.startswith("cannot take ") and story.consumer_group == group


def test_a_letter_the_dead_letter_topic_refuses_as_too_large_is_written_without_its_value(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("toobig", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    # a dead-letter topic smaller than the records (as on Event Hubs, where 1 MB is the most a record can be)
    create_dead_letter_topic(kafka_broker, topic + ".dlq", {"max.message.bytes": "600000"})
    small = encoded_chat(settings, topic, 200)
    big = encoded_chat(settings, topic, 700_000)
    produce(kafka_broker, topic, [small, big, small])
    handled: list[int] = []
    group = unique("toobig")

    with running_worker(settings, group, [topic], failing_on_big(handled)) as worker:
        wait_for(lambda: handled == [0, 2], "the record after the big one", 60)
        wait_for(lambda: kafka_broker.committed(group, topic, 1) == {0: 3}, "the commit past the big one", 30)
        assert worker.status().healthy
        dead_lettered = worker.metrics.dead_lettered.labels(group, topic)._value.get()
    [letter] = read_all(kafka_broker, topic + ".dlq")
    story = dlq.read_dead_letter(record_of(letter))
    assert letter.value() in (b"", None) and letter.key() == b"conv-1"
    assert story.value_omitted == 700_000 and story.headers == big[1]
    found = dict(letter.headers() or [])
    assert found[dlq.VALUE_SHA256] == hashlib.sha256(big[0]).hexdigest().encode()
    assert (story.original_offset, story.error_class, story.attempts) == (1, "PermanentError", 1)
    assert dead_lettered == 1
