"""Schema evolution over the real broker: old and new writers, old and new readers, in one consumer group."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer

from schemas.contracts import Contract
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.services import Collected, make_settings, running_worker, write_catalog

V1 = {
    "type": "record",
    "name": "Reading",
    "namespace": "hubstream.test",
    "fields": [{"name": "sensorId", "type": "string"}, {"name": "value", "type": "double"}],
}
# v2 adds a field with a default: compatible both ways (FULL)
V2 = {**V1, "fields": [*V1["fields"], {"name": "unit", "type": "string", "default": "celsius"}]}


def contract(schema: dict[str, Any]) -> Contract:
    return Contract.from_text(json.dumps(schema))


def produce(broker: LocalKafka, serde: AvroSerde, topic: str, records: list[dict[str, Any]], writer: Contract) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for record in records:
        encoded = serde.encode(record, writer)
        producer.produce(topic, encoded.value, key=record["sensorId"], headers=encoded.headers)
    assert producer.flush(15) == 0


@pytest.mark.parametrize("compatibility", ["Backward", "Forward"])
def test_old_and_new_writers_decode_into_each_readers_shape(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path, compatibility: str
) -> None:
    group = registry_emulator.create_group(compatibility=compatibility)
    registry = SchemaRegistry(registry_emulator.client(), group)
    serde = AvroSerde(registry)
    v1, v2 = contract(V1), contract(V2)
    registry.register(v1)
    registry.register(v2)  # the emulator enforces the group's mode: v2 is accepted under both

    topic = kafka_broker.create_topic("readings", partitions=2)
    produce(kafka_broker, serde, topic, [{"sensorId": "s1", "value": 1.5}], v1)
    produce(kafka_broker, serde, topic, [{"sensorId": "s2", "value": 2.5, "unit": "kelvin"}], v2)

    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {}), registry={"group": group})
    for reader, expected in (
        (
            v2,
            {
                "s1": {"sensorId": "s1", "value": 1.5, "unit": "celsius"},  # v1 data read by v2: default applied
                "s2": {"sensorId": "s2", "value": 2.5, "unit": "kelvin"},
            },
        ),
        (
            v1,
            {"s1": {"sensorId": "s1", "value": 1.5}, "s2": {"sensorId": "s2", "value": 2.5}},
        ),  # v2 data read by v1: the new field is dropped
    ):
        collected = Collected()
        with running_worker(settings, unique("evolve"), [topic], collected, readers={topic: reader}):
            events = collected.wait_for(2)
        assert {e.value["sensorId"]: e.value for e in events} == expected
    registry.close()


def test_records_written_as_java_dotnet_kcat_and_the_legacy_serializer_reach_the_handler(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    """Existing Kafka apps publish unchanged: the bytes below are what each of them puts on the topic."""
    group = registry_emulator.create_group()
    registry = SchemaRegistry(registry_emulator.client(), group)
    v1 = contract(V1)
    schema_id = registry.register(v1)
    body = {}
    for sensor in ("java", "kcat", "legacy"):
        buffer = BytesIO()
        fastavro.schemaless_writer(buffer, fastavro.parse_schema(V1), {"sensorId": sensor, "value": 1.0})
        body[sensor] = buffer.getvalue()
    topic = kafka_broker.create_topic("interop", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    # Java/.NET KafkaAvroSerializer: raw Avro body, lower-case header with bytes "avro/binary+<id>"
    producer.produce(topic, body["java"], headers=[("content-type", f"avro/binary+{schema_id}".encode())])
    # kcat -H "content-type=avro/binary+<id>": the header value as a string
    producer.produce(topic, body["kcat"], headers={"content-type": f"avro/binary+{schema_id}"})
    # the legacy serializer: no header; 4 zero bytes + 32 ASCII id chars + body
    producer.produce(topic, b"\x00\x00\x00\x00" + schema_id.encode() + body["legacy"])
    assert producer.flush(15) == 0

    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {}), registry={"group": group})
    collected = Collected()
    with running_worker(settings, unique("interop"), [topic], collected):
        events = collected.wait_for(3)
    assert [e.value["sensorId"] for e in events] == ["java", "kcat", "legacy"]
    assert {e.schema_id for e in events} == {schema_id}
    registry.close()
