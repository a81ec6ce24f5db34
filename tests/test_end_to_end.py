"""HTTP → Avro (Azure format) → Kafka → consumer group, against the real broker and registry emulator."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.schemaregistry.encoder.avroencoder import AvroEncoder
from confluent_kafka import Consumer

from hubstream import kafka_config
from hubstream.settings import Settings
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, Collected, make_settings, producer_api, running_worker, write_catalog


@pytest.fixture
def chat_topic(kafka_broker: LocalKafka) -> str:
    return kafka_broker.create_topic("chat", partitions=3)


@pytest.fixture
def settings(kafka_broker: LocalKafka, registry_emulator: Any, chat_topic: str, tmp_path: Path) -> Settings:
    return make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {chat_topic: CHAT}))


@pytest.fixture
def registered(settings: Settings) -> None:
    from devstack.provisioning import provision

    provision(settings)


def test_posted_event_comes_out_of_the_consumer_group_decoded_and_equal(
    settings: Settings, registered: None, chat_topic: str
) -> None:
    sent = chat_event(metadata={"model": "gpt", "turn": "3"}, final=True)
    collected = Collected()
    with producer_api(settings) as url, running_worker(settings, unique("delivery"), [chat_topic], collected):
        response = httpx.post(f"{url}/v1/topics/{chat_topic}/events", json=sent, timeout=20)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["topic"] == chat_topic and body["offset"] >= 0 and len(body["schemaId"]) == 32
        [event] = collected.wait_for(1)
    assert event.partition == body["partition"] and event.offset == body["offset"]
    assert event.key == b"conv-1"
    assert event.schema_id == body["schemaId"] and event.schema_name == CHAT
    expected = {**sent, "createdAt": datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)}
    assert event.value == expected


def test_record_on_the_topic_is_in_azure_format_and_avroencoder_decodes_it(
    settings: Settings, registered: None, chat_topic: str, registry_emulator: Any
) -> None:
    sent = chat_event()
    with producer_api(settings) as url:
        body = httpx.post(f"{url}/v1/topics/{chat_topic}/events", json=sent, timeout=20).json()
    consumer = Consumer({**kafka_config.consumer_config(settings, unique("raw")), "enable.partition.eof": False})
    consumer.subscribe([chat_topic])
    try:
        message = None
        for _ in range(150):
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                break
        assert message is not None and not message.error()
    finally:
        consumer.close()
    headers = dict(message.headers())
    assert headers["content-type"] == f"avro/binary+{body['schemaId']}".encode()
    encoder = AvroEncoder(client=registry_emulator.client(), group_name=registry_emulator.group)
    decoded = encoder.decode({"content": message.value(), "content_type": headers["content-type"].decode()})
    assert decoded["eventId"] == sent["eventId"] and decoded["metadata"] == sent["metadata"]


def test_two_groups_each_receive_every_event(settings: Settings, registered: None, chat_topic: str) -> None:
    delivery, analytics = Collected(), Collected()
    events = [chat_event(f"conv-{i % 3}", i) for i in range(12)]
    with (
        producer_api(settings) as url,
        running_worker(settings, unique("delivery"), [chat_topic], delivery),
        running_worker(settings, unique("analytics"), [chat_topic], analytics),
    ):
        response = httpx.post(f"{url}/v1/topics/{chat_topic}/events:batch", json={"events": events}, timeout=30)
        assert response.status_code == 200, response.text
        assert all(item["ok"] for item in response.json()["results"])
        for group in (delivery, analytics):
            received = group.wait_for(len(events))
            assert sorted(e.value["eventId"] for e in received) == sorted(e["eventId"] for e in events)


def test_per_key_order_holds_for_200_events_across_10_conversations(
    settings: Settings, registered: None, chat_topic: str
) -> None:
    events = [chat_event(f"conv-{i % 10}", i // 10) for i in range(200)]
    collected = Collected()
    with producer_api(settings) as url, running_worker(settings, unique("order"), [chat_topic], collected):
        with httpx.Client(base_url=url, timeout=30) as client:
            for start in range(0, len(events), 50):
                response = client.post(
                    f"/v1/topics/{chat_topic}/events:batch", json={"events": events[start : start + 50]}
                )
                assert response.status_code == 200, response.text
        received = collected.wait_for(200, timeout=60)
    by_conversation: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for event in received:
        by_conversation[event.value["conversationId"]].append(event.value["sequence"])
        partitions[event.value["conversationId"]].add(event.partition)
    assert len(by_conversation) == 10
    for conversation, sequences in by_conversation.items():
        assert sequences == list(range(20)), conversation
        assert len(partitions[conversation]) == 1  # a key never moves between partitions
