"""The operators' commands (partitions, tail, groups, send-test-event) as a person runs them: the installed CLI
as a subprocess, against the real broker and the registry emulator.

On the embedded Tansu broker DescribeGroups returns no members, so the ownership assertions run on Apache Kafka
only (HUBSTREAM_TEST_BOOTSTRAP, or the embedded broker once it is Apache Kafka); each skip says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from hubstream.ports import free_port
from hubstream.settings import Settings
from schemas.contracts import Catalog
from schemas.registry import SchemaRegistry
from schemas.wire import LEGACY_PREAMBLE
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.registry import RegistryEmulator
from tests.fixtures.services import CHAT, MINUTES, make_settings, produce_events, register_contracts, write_catalog
from tests.fixtures.workers import REPO, settings_env

CLI_WAIT_S = 90


@dataclass
class Cli:
    settings: Settings
    env: dict[str, str]

    def run(
        self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "hubstream_cli", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, **self.env, "COLUMNS": "200", **(env or {})},
            timeout=CLI_WAIT_S,
        )
        if expect is not None:
            assert done.returncode == expect, f"hubstream {' '.join(args)} -> {done.returncode}\n{done.stderr[-3000:]}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def json_lines(self, *args: str) -> list[Any]:
        return [json.loads(line) for line in self.run(*args, "--json").stdout.splitlines() if line.strip()]


def on_tansu(broker: LocalKafka) -> bool:
    """The embedded Tansu broker (its cluster id names it); Apache Kafka otherwise."""
    cluster_id = broker.admin.describe_cluster(request_timeout=10).result(15).cluster_id or ""
    return "tansu" in cluster_id.lower()


@pytest.fixture
def topics(kafka_broker: LocalKafka) -> dict[str, str]:
    return {
        "chat": kafka_broker.create_topic("ops-chat", partitions=3),
        "minutes": kafka_broker.create_topic("ops-minutes", partitions=2),
    }


@pytest.fixture
def cli(kafka_broker: LocalKafka, registry_emulator: RegistryEmulator, topics: dict[str, str], tmp_path: Path) -> Cli:
    catalog = write_catalog(tmp_path, {topics["chat"]: CHAT, topics["minutes"]: MINUTES})
    settings = make_settings(kafka_broker, registry_emulator, catalog, state_dir=tmp_path / "state")
    register_contracts(settings)
    return Cli(settings, settings_env(settings))


def produce_one_per_batch(broker: LocalKafka, topic: str, records: list[tuple[int, str, bytes]]) -> None:
    """(partition, key, value) each in its own batch, so offsets are exact on every broker."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
    for partition, key, value in records:
        producer.produce(topic, value, key=key, partition=partition)
        assert producer.flush(10) == 0


def group_ids(broker: LocalKafka) -> set[str]:
    listed = broker.admin.list_consumer_groups(request_timeout=10).result(15)
    return {g.group_id for g in listed.valid}


# ---- partitions ---------------------------------------------------------------------------------------------


def test_partitions_shows_offsets_counts_and_the_last_record(kafka_broker: LocalKafka, cli: Cli) -> None:
    topic = kafka_broker.create_topic("ops-parts", partitions=3)
    before = datetime.now(UTC) - timedelta(seconds=5)
    produce_one_per_batch(kafka_broker, topic, [(0, "a0", b"x"), (0, "a1", b"x"), (1, "b0", b"x"), (0, "a2", b"x")])

    document = cli.json("partitions", "--topic", topic)

    assert document["topic"] == topic
    rows = {row["partition"]: row for row in document["partitions"]}
    assert {p: (r["earliest"], r["latest"], r["records"]) for p, r in rows.items()} == {
        0: (0, 3, 3),
        1: (0, 1, 1),
        2: (0, 0, 0),
    }
    assert {p: (r["lastOffset"], r["lastKey"]) for p, r in rows.items()} == {
        0: (2, "a2"),
        1: (0, "b0"),
        2: (None, None),
    }
    for row in (rows[0], rows[1]):
        assert before <= datetime.fromisoformat(row["lastTimestamp"]) <= datetime.now(UTC) + timedelta(seconds=5)
    human = cli.run("partitions", "--topic", topic)
    assert "a2" in human.stderr and "4 records" in human.stderr


def test_partitions_watch_prints_one_json_line_per_refresh(kafka_broker: LocalKafka, cli: Cli) -> None:
    topic = kafka_broker.create_topic("ops-watch", partitions=1)
    produce_one_per_batch(kafka_broker, topic, [(0, "k", b"x")])
    lines = cli.json_lines("partitions", "--topic", topic, "--watch", "--interval", "0.2", "--times", "2")
    assert len(lines) == 2 and all(line["partitions"][0]["latest"] == 1 for line in lines)


def test_an_unknown_topic_and_an_unreachable_broker_are_clear_errors(cli: Cli) -> None:
    missing = cli.run("partitions", "--topic", unique("no-such-topic"), expect=2)
    assert "does not exist on the cluster" in missing.stderr and "Traceback" not in missing.stderr
    started = time.monotonic()
    unreachable = cli.run(
        "partitions",
        "--topic",
        "anything",
        "--wait",
        "2",
        expect=2,
        env={"HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"},
    )
    assert "no Kafka broker at 127.0.0.1" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert time.monotonic() - started < 30


# ---- tail ---------------------------------------------------------------------------------------------------


def test_tail_decodes_header_and_legacy_records_and_never_creates_a_group(
    kafka_broker: LocalKafka, cli: Cli, topics: dict[str, str]
) -> None:
    topic = topics["chat"]
    events = [chat_event("conv-a", 0), chat_event("conv-b", 0), chat_event("conv-a", 1)]
    produce_events(cli.settings, topic, events)
    contract = Catalog.from_settings(cli.settings).contract_for(topic)
    with SchemaRegistry.from_settings(cli.settings) as registry:
        schema_id = registry.schema_id(contract)
    legacy_event = chat_event("conv-legacy", 0)
    _produce_legacy(cli.settings, kafka_broker, topic, schema_id, legacy_event)
    groups_before = group_ids(kafka_broker)

    records = cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--count", "4", "--timeout", "20")

    assert sorted((r["event"]["conversationId"], r["event"]["sequence"]) for r in records) == sorted(
        (e["conversationId"], e["sequence"]) for e in [*events, legacy_event]
    )
    by_conversation = {r["event"]["eventId"]: r for r in records}
    for event in [*events, legacy_event]:
        record = by_conversation[event["eventId"]]
        assert record["event"] == event and record["key"] == event["conversationId"]
        assert record["schemaId"] == schema_id and record["schema"] == CHAT
    assert {r["format"] for r in records} == {"header", "legacy"}
    assert [r["offset"] for r in records if r["key"] == "conv-a"] == sorted(
        r["offset"] for r in records if r["key"] == "conv-a"
    )

    keyed = cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--key", "conv-b", "--no-follow", "--raw")
    assert [r["event"]["conversationId"] for r in keyed] == ["conv-b"]
    assert keyed[0]["headers"] == [["content-type", f"avro/binary+{schema_id}"]] and keyed[0]["value"]

    human = cli.run("tail", "--topic", topic, "--from", "-1", "--no-follow", "--partition", "0", "--partition", "1")
    assert "schema=hubstream.chat.ChatResponse" in human.stderr or human.stderr.strip() == ""

    assert group_ids(kafka_broker) == groups_before, "tail created a consumer group"
    assert not [g for g in group_ids(kafka_broker) if g.startswith("hubstream-reader")]


def test_tail_from_an_offset_and_a_time(kafka_broker: LocalKafka, cli: Cli, topics: dict[str, str]) -> None:
    topic = topics["chat"]
    first = [chat_event("conv-t", i) for i in range(3)]
    produce_events(cli.settings, topic, first)
    time.sleep(1.5)
    middle = datetime.now(UTC)
    time.sleep(0.5)
    later = [chat_event("conv-t", i) for i in range(3, 5)]
    produce_events(cli.settings, topic, later)
    everything = cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--no-follow")
    partition = everything[0]["partition"]  # one key: one partition
    assert [r["event"]["sequence"] for r in everything] == [0, 1, 2, 3, 4]

    from_offset = cli.json_lines("tail", "--topic", topic, "--partition", str(partition), "--from", "3", "--no-follow")
    assert [r["event"]["sequence"] for r in from_offset] == [3, 4]
    from_time = cli.json_lines("tail", "--topic", topic, "--from", middle.isoformat(), "--no-follow")
    assert [r["event"]["sequence"] for r in from_time] == [3, 4]


def test_tail_shows_a_record_it_cannot_decode(kafka_broker: LocalKafka, cli: Cli, topics: dict[str, str]) -> None:
    topic = topics["chat"]
    produce_one_per_batch(kafka_broker, topic, [(0, "junk", b"not avro at all")])
    [record] = cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--no-follow", "--raw")
    assert record["event"] is None and "content-type" in record["error"] and record["key"] == "junk"


def _produce_legacy(settings: Settings, broker: LocalKafka, topic: str, schema_id: str, event: dict[str, Any]) -> None:
    """An event in the legacy format (no header; 4 zero bytes, the 32-character id, the Avro body)."""
    from schemas.natural import NaturalJson
    from schemas.serde import AvroSerde

    contract = Catalog.from_settings(settings).contract_for(topic)
    with SchemaRegistry.from_settings(settings) as registry:
        body = AvroSerde(registry).encode(NaturalJson(contract.schema).from_json(event), contract).value
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
    producer.produce(topic, LEGACY_PREAMBLE + schema_id.encode() + body, key=event["conversationId"])
    assert producer.flush(10) == 0
