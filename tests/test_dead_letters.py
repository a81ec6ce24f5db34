"""Poison records over the real broker: each kind is dead-lettered with its story, and the group keeps moving.
A dead-letter topic that cannot take writes for a while is waited out (degraded, then healed, no restart); when
the dead letter itself can never be written, the partition stops there and the worker says so."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from devstack.topics import ensure_topics
from hubstream.settings import Settings
from kafka_consumer import dead_letters as dlq
from kafka_consumer.admin.dlq_replay import replay
from kafka_consumer.archive import ArchiveSink, archive_offsets
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.failures import PermanentError
from kafka_consumer.monitoring import MonitoringServer
from kafka_consumer.records import record_of
from schemas.contracts import Catalog
from schemas.natural import NaturalJson
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.readers import read_all
from tests.fixtures.services import CHAT, make_settings, running_worker, write_catalog
from tests.fixtures.waiting import wait_for

FAST_RETRIES = {"retry_attempts": 3, "retry_initial_backoff_ms": 10, "retry_max_backoff_ms": 50}


class PoisonTopic:
    """A one-partition topic holding good events and records of every poisonous kind, in a known order."""

    def __init__(self, broker: LocalKafka, settings: Settings, topic: str) -> None:
        self.topic = topic
        catalog = Catalog.from_settings(settings)
        contract = catalog.contract_for(topic)
        with SchemaRegistry.from_settings(settings) as registry:
            registry.register(contract)
            serde = AvroSerde(registry)
            natural = NaturalJson(contract.schema)
            self._encode = lambda event: serde.encode(natural.from_json(event), contract)
            self._producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
            self.sent: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []

    def event(self, content: str, sequence: int) -> None:
        encoded = self._encode(chat_event("conv-1", sequence, content=content))
        self.raw(encoded.value, encoded.headers)

    def raw(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._producer.produce(self.topic, value, key=b"conv-1", headers=headers)
        self.sent.append((value, headers))

    def valid_body(self) -> bytes:
        return self._encode(chat_event("conv-1", 99)).value

    def flush(self) -> None:
        assert self._producer.flush(15) == 0


def test_each_kind_of_poison_is_dead_lettered_with_its_story_and_the_group_moves_on(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("poison", partitions=1)
    ensure_topics(kafka_broker.admin, {topic + ".dlq": 1})  # as provisioning makes it
    settings = make_settings(
        kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), consumer=FAST_RETRIES
    )
    poison = PoisonTopic(kafka_broker, settings, topic)
    poison.event("ok", 0)  # 0
    poison.raw(b"\x07garbage that is not avro", [])  # 1 no header, not legacy
    poison.raw(poison.valid_body(), [("content-type", b"avro/binary+" + b"0" * 32)])  # 2 unknown schema id
    poison.raw(poison.valid_body(), [("content-type", b"application/json+abc")])  # 3 wrong content type
    poison.event("fail-always", 4)  # 4 transient, never recovers
    poison.event("permanent", 5)  # 5 PermanentError
    poison.event("flaky", 6)  # 6 fails twice, then works
    poison.event("ok", 7)  # 7
    poison.flush()

    calls: dict[int, int] = {}
    handled: list[int] = []
    lock = threading.Lock()

    def handler(event: ConsumedEvent) -> None:
        with lock:
            calls[event.offset] = calls.get(event.offset, 0) + 1
            attempt = calls[event.offset]
        content = event.value["content"]
        if content == "fail-always":
            raise ConnectionError("downstream service unavailable")
        if content == "permanent":
            raise PermanentError("order id refers to a deleted account")
        if content == "flaky" and attempt < 3:
            raise TimeoutError(f"attempt {attempt} timed out")
        handled.append(event.offset)

    group = unique("poison")
    with running_worker(settings, group, [topic], handler) as worker:
        wait_for(lambda: 7 in handled, "the record after the poison", 30)
        wait_for(lambda: kafka_broker.committed(group, topic, 1) == {0: 8}, "the commit past the poison", 30)
        metrics = worker.metrics

    assert handled == [0, 6, 7]
    assert calls == {0: 1, 4: 3, 5: 1, 6: 3, 7: 1}  # 3 attempts for the transient ones, 1 for the permanent one
    assert kafka_broker.committed(group, topic, 1) == {0: 8}

    letters = read_all(kafka_broker, topic + ".dlq")
    stories = [dlq.read_dead_letter(record_of(m)) for m in letters]
    assert [(s.original_offset, s.error_class, s.attempts) for s in stories] == [
        (1, "UndecodableRecordError", 0),
        (2, "UnknownSchemaIdError", 0),
        (3, "UndecodableRecordError", 0),
        (4, "ConnectionError", 3),
        (5, "PermanentError", 1),
    ]
    for story, letter in zip(stories, letters, strict=True):
        value, headers = poison.sent[story.original_offset]
        assert letter.value() == value and letter.key() == b"conv-1"  # byte for byte
        assert story.headers == headers  # the original headers, e.g. the content-type naming the schema
        assert story.original_topic == topic and story.original_partition == 0 and story.consumer_group == group
        assert story.failed_at.endswith("+00:00") and story.error_message
    assert "downstream service unavailable" in stories[3].error_message
    assert metrics.dead_lettered.labels(group, topic)._value.get() == 5
    assert metrics.retried.labels(group, topic)._value.get() == 4  # 2 for offset 4, 2 for offset 6

    # the downstream service is back: replay its dead letters into the topic, and the group handles them
    summary = asyncio.run(replay(settings, topic + ".dlq", filters={"error-class": "ConnectionError"}))
    assert (summary.read, summary.replayed) == (5, 1)
    again: list[ConsumedEvent] = []
    with running_worker(settings, group, [topic], again.append):
        wait_for(lambda: again, "the replayed record", 30)
    [event] = again
    assert event.offset == 8 and event.value["sequence"] == 4 and event.value["content"] == "fail-always"
    assert dict(event.headers)[dlq.REPLAYED_FROM] == f"{topic}.dlq/0/3".encode()


def test_a_dead_letter_that_cannot_be_written_stops_the_partition_and_the_worker_reports_unhealthy(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("dlqfail", partitions=1)
    # the dead-letter producer refuses records over 1000 bytes plus its 64 KiB headroom, so the poison with 80,000
    # bytes of headers cannot be dead-lettered, not even without its value
    settings = make_settings(
        kafka_broker,
        registry_emulator,
        write_catalog(tmp_path, {topic: CHAT}),
        consumer=FAST_RETRIES,
        producer={"max_message_bytes": 1000},
    )
    poison = PoisonTopic(kafka_broker, settings, topic)
    poison.event("ok", 0)
    poison.raw(b"\x07" * 2000, [("trace", b"t" * 80_000)])  # undecodable
    poison.event("ok", 2)
    poison.flush()
    handled: list[int] = []

    group = unique("dlqfail")
    with (
        running_worker(settings, group, [topic], lambda e: handled.append(e.offset)) as worker,
        MonitoringServer(worker) as ops,
    ):
        wait_for(lambda: not worker.status().healthy, "the worker to report the stop", 30)
        health = httpx.get(f"{ops.url}/healthz", timeout=5)
        # commits keep running for the partition's finished prefix
        wait_for(lambda: kafka_broker.committed(group, topic, 1) == {0: 1}, "the commit of the finished prefix", 30)
        assert handled == [0], "a record after the stuck one was handled"
    assert health.status_code == 503
    [problem] = health.json()["problems"]
    assert f"{topic}[0] stopped: at offset 1" in problem and f"{topic}.dlq" in problem
    assert "even without its value the dead letter is too large" in problem
    assert kafka_broker.committed(group, topic, 1) == {0: 1}  # never past the record it could not keep


@pytest.mark.parametrize("kind", ["handler", "archive sink"])
def test_a_dead_letter_topic_that_cannot_take_writes_is_waited_out_and_the_worker_heals_by_itself(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path, kind: str
) -> None:
    topic = kafka_broker.create_topic("dlqwait", partitions=1)  # its .dlq topic does not exist yet
    settings = make_settings(
        kafka_broker,
        registry_emulator,
        write_catalog(tmp_path, {topic: CHAT}),
        consumer=FAST_RETRIES,
        producer={"delivery_timeout_ms": 1500},  # each try of the dead letter gives up quickly
    )
    poison = PoisonTopic(kafka_broker, settings, topic)
    poison.event("ok", 0)
    poison.raw(b"\x07garbage that is not avro", [])  # 1: undecodable, to be dead-lettered
    poison.event("ok", 2)
    poison.flush()
    handled: list[int] = []
    done: Callable[[], list[int]] = lambda: handled  # noqa: E731
    options: dict[str, Any] = {}
    if kind == "archive sink":
        root = tmp_path / "archive"
        options["sink"] = ArchiveSink(root, max_age_s=0.2)
        done = lambda: archive_offsets(root, topic, 0)  # noqa: E731
    handler = (lambda e: handled.append(e.offset)) if kind == "handler" else None

    group = unique("dlqwait")
    with running_worker(settings, group, [topic], handler, **options) as worker:
        wait_for(lambda: "dead-letter topics" in str(worker.status().problems), "the worker to report degraded", 30)
        status = worker.status()
        assert status.state == "owner" and not any("stopped" in p for p in status.problems), status.problems
        assert done() == [0], "a record after the one waiting for its dead letter was processed"
        assert kafka_broker.committed(group, topic, 1).get(0, -1) <= 1
        ensure_topics(kafka_broker.admin, {topic + ".dlq": 1})  # the operator creates the topic: no restart
        wait_for(lambda: done() == [0, 2], "the records after the dead letter", 30)
        wait_for(lambda: kafka_broker.committed(group, topic, 1) == {0: 3}, "the commit past the dead letter", 30)
        wait_for(lambda: worker.status().healthy, "the worker to report healthy again", 30)
    [letter] = read_all(kafka_broker, topic + ".dlq")
    assert dict(letter.headers() or [])[dlq.ORIGINAL_OFFSET] == b"1"
