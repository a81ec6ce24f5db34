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
from kafka_consumer.admin.example_events import MINUTES_FINALIZED_EXAMPLE
from schemas.contracts import Catalog
from schemas.registry import SchemaRegistry
from schemas.wire import LEGACY_PREAMBLE
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.registry import RegistryEmulator
from tests.fixtures.services import CHAT, MINUTES, make_settings, produce_events, register_contracts, write_catalog
from tests.fixtures.workers import REPO, WorkerPool, settings_env

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
    assert set(kafka_broker.committed("hubstream-reader", topic, 3).values()) == {-1001}, "tail committed"


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


# ---- groups -------------------------------------------------------------------------------------------------


def minutes_event(meeting: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "meetingId": meeting,
        "title": f"meeting {meeting}",
        "minutesId": f"minutes-{meeting}",
        "sections": [],
        "participants": ["user-1"],
    }
    event.update(overrides)
    return event


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s; last: {last}")


def owned(description: dict[str, Any]) -> list[list[int]]:
    """Each member's partitions, sorted, biggest share first."""
    shares = [sorted(p["partition"] for p in m["partitions"]) for m in description["members"]]
    return sorted(shares, key=lambda share: (-len(share), share))


def test_describe_shows_lag_ownership_moving_and_a_standby_member(
    kafka_broker: LocalKafka, cli: Cli, topics: dict[str, str], tmp_path: Path
) -> None:
    topic = topics["minutes"]  # 2 partitions
    produce_events(cli.settings, topic, [minutes_event(f"m-{i}") for i in range(6)])
    group = unique("ops-describe")
    pool = WorkerPool(cli.settings, tmp_path)
    try:
        first = pool.start("first", "--group", group, "--topic", topic)
        pool.wait_ready([first])

        def caught_up() -> dict[str, Any] | None:
            described = cli.json("groups", "describe", "--group", group)
            committed = [p["committed"] or 0 for p in described["partitions"] if p["topic"] == topic]
            return described if sum(committed) == 6 else None

        described = wait_for(caught_up, "the worker committed every record")
        rows = {p["partition"]: p for p in described["partitions"]}
        assert set(rows) == {0, 1}
        assert all(r["checkpointAt"] is not None for r in rows.values() if r["committed"] > 0)
        if not on_tansu(kafka_broker):  # Tansu's ListOffsets LATEST counts batches, not records
            assert all(r["end"] == r["committed"] and r["lag"] == 0 for r in rows.values())
        watched = cli.json_lines("groups", "describe", "--group", group, "--watch", "--interval", "0.2", "--times", "2")
        assert len(watched) == 2 and all(w["group"] == group for w in watched)

        if on_tansu(kafka_broker):
            pytest.skip("Tansu's DescribeGroups returns no members; ownership is checked on Apache Kafka")
        one = wait_for(
            lambda: (d := cli.json("groups", "describe", "--group", group)) and owned(d) == [[0, 1]] and d, "one owner"
        )
        assert one["state"] == "Stable" and one["standby"] == []
        [member] = one["members"]
        assert member["clientId"] and member["host"] and {p["owner"] for p in one["partitions"]} == {member["memberId"]}

        second = pool.start("second", "--group", group, "--topic", topic)
        two = wait_for(
            lambda: (d := cli.json("groups", "describe", "--group", group)) and owned(d) == [[0], [1]] and d,
            "ownership split between two workers",
        )
        assert member["memberId"] in {m["memberId"] for m in two["members"]}
        assert len({p["owner"] for p in two["partitions"]}) == 2

        pool.start("third", "--group", group, "--topic", topic)
        three = wait_for(
            lambda: (d := cli.json("groups", "describe", "--group", group)) and owned(d) == [[0], [1], []] and d,
            "a third worker waiting as a standby",
        )
        assert len(three["standby"]) == 1
        assert three["standby"][0] not in {p["owner"] for p in three["partitions"]}
        human = cli.run("groups", "describe", "--group", group)
        assert "standby" in human.stderr and "1 standby" in human.stderr
        assert second.alive()
    finally:
        pool.stop_all()


def test_list_includes_an_idle_group_remembered_from_its_worker(
    kafka_broker: LocalKafka, cli: Cli, topics: dict[str, str], tmp_path: Path
) -> None:
    topic = topics["minutes"]
    produce_events(cli.settings, topic, [minutes_event("idle-1"), minutes_event("idle-2")])
    group = unique("ops-idle")
    pool = WorkerPool(cli.settings, tmp_path)
    try:
        worker = pool.start("idle", "--group", group, "--topic", topic)
        pool.wait_ready([worker])
        wait_for(
            lambda: sum(o for o in kafka_broker.committed(group, topic, 2).values() if o > 0) == 2,
            "the worker committed both records",
        )
        assert worker.terminate() == 0  # commits and leaves the group: nobody holds it now
    finally:
        pool.stop_all()
    produce_events(cli.settings, topic, [minutes_event("idle-3")])  # arrives while the group is idle

    listed = {g["group"]: g for g in cli.json("groups", "list")["groups"]}

    idle = listed[group]
    assert idle["members"] == 0 and idle["state"] in ("Empty", "Dead", "Unknown")
    assert idle["topics"] == [topic] and idle["lag"] == 1
    assert idle["remembered"] is True  # from the state dir: what keeps it listed on Event Hubs
    assert (cli.settings.state_dir / "groups").is_dir()
    assert not [name for name in listed if name.startswith("hubstream-reader")]
    human = cli.run("groups", "list")
    assert group in human.stderr


# ---- send-test-event ----------------------------------------------------------------------------------------


def test_send_test_event_and_tail_round_trip_seed_003s_event(cli: Cli, topics: dict[str, str]) -> None:
    topic = topics["minutes"]
    sent = cli.json("send-test-event", "--topic", topic, "--count", "3", "--rate", "5")
    assert sent["topic"] == topic and len(sent["events"]) == 3
    assert len({e["eventId"] for e in sent["events"]}) == 3  # clients dedupe on it: a fresh one each
    assert len({e["partition"] for e in sent["events"]}) == 1  # one meetingId, one partition, in order
    assert [e["offset"] for e in sent["events"]] == sorted(e["offset"] for e in sent["events"])

    read = cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--count", "3", "--timeout", "20")

    assert [(r["partition"], r["offset"]) for r in read] == [(e["partition"], e["offset"]) for e in sent["events"]]
    for record, row in zip(read, sent["events"], strict=True):
        assert record["event"] == {**MINUTES_FINALIZED_EXAMPLE, "eventId": row["eventId"]}
        assert record["key"] == "test-meeting-001" and record["schema"] == MINUTES and record["format"] == "header"
        assert record["schemaId"] == row["schemaId"]
    times = [datetime.fromisoformat(r["timestamp"]) for r in read]
    assert times[-1] - times[0] >= timedelta(seconds=0.3)  # --rate 5: 0.2 s apart


def test_send_test_event_sets_fields_and_builds_any_topics_example(cli: Cli, topics: dict[str, str]) -> None:
    minutes = topics["minutes"]
    [row] = cli.json(
        "send-test-event",
        "--topic",
        minutes,
        "--set",
        "title=주간 회의",
        "--set",
        "meetingId=1234",
        "--set",
        "sections.0.order=2",
        "--set",
        'participants=["a","b"]',
    )["events"]
    [record] = cli.json_lines("tail", "--topic", minutes, "--from", "earliest", "--count", "1", "--timeout", "20")
    assert record["offset"] == row["offset"] and record["key"] == "1234"
    event = record["event"]
    assert (event["title"], event["meetingId"], event["sections"][0]["order"]) == ("주간 회의", "1234", 2)
    assert event["participants"] == ["a", "b"]

    chat = topics["chat"]
    [chat_row] = cli.json("send-test-event", "--topic", chat)["events"]
    [chat_record] = cli.json_lines("tail", "--topic", chat, "--from", "earliest", "--count", "1", "--timeout", "20")
    assert chat_record["schema"] == CHAT and chat_record["event"]["eventId"] == chat_row["eventId"]
    assert chat_record["key"] == chat_record["event"]["conversationId"]

    bad = cli.run("send-test-event", "--topic", minutes, "--set", "sections.0.order=two", expect=2)
    assert "sections[0].order" in bad.stderr and "Traceback" not in bad.stderr


def test_send_test_event_publishes_a_file_of_events(cli: Cli, topics: dict[str, str], tmp_path: Path) -> None:
    topic = topics["minutes"]
    events = [{**MINUTES_FINALIZED_EXAMPLE, "meetingId": f"file-{i}", "eventId": f"file-event-{i}"} for i in range(4)]
    good = tmp_path / "events.jsonl"
    good.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in events) + "\n\n")
    sent = cli.json("send-test-event", "--topic", topic, "--file", str(good))["events"]
    assert sorted(e["eventId"] for e in sent) == [e["eventId"] for e in events]

    read = cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--count", "4", "--timeout", "20")
    assert sorted((r["event"] for r in read), key=lambda e: e["eventId"]) == events

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(events[0]) + "\n" + json.dumps({**events[1], "title": 7}) + "\n")
    refused = cli.run("send-test-event", "--topic", topic, "--file", str(bad), expect=2)
    assert "line 2" in refused.stderr and "title" in refused.stderr
    assert len(cli.json_lines("tail", "--topic", topic, "--from", "earliest", "--no-follow")) == 4  # nothing sent


# ---- pure parts ---------------------------------------------------------------------------------------------

EVERY_TYPE = {
    "type": "record",
    "name": "Everything",
    "namespace": "ops.test",
    "fields": [
        {"name": "eventId", "type": "string", "default": ""},
        {"name": "count", "type": "long"},
        {"name": "ratio", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "blob", "type": "bytes"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "maybe", "type": ["null", "string"]},
        {"name": "tags", "type": {"type": "map", "values": "int"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
        {"name": "next", "type": ["null", "Everything"], "default": None},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Item", "fields": [{"name": "n", "type": "int"}]},
            },
        },
    ],
}


def test_an_example_is_built_for_any_schema_and_fits_it() -> None:
    from kafka_consumer.admin.example_events import example_event, with_assignments
    from schemas.contracts import Contract
    from schemas.natural import NaturalJson

    contract = Contract.from_text(json.dumps(EVERY_TYPE))
    event = example_event(contract)
    NaturalJson(contract.schema).from_json(event)  # raises EventValidationError when it does not fit
    assert event["eventId"] and event["kind"] == "A" and event["items"] == [{"n": 1}]
    changed = with_assignments(contract, event, ["count=7", "kind=B", "maybe=null", "items.0.n=3", "tags.x=2"])
    assert (changed["count"], changed["kind"], changed["maybe"], changed["items"], changed["tags"]["x"]) == (
        7,
        "B",
        None,
        [{"n": 3}],
        2,
    )
    NaturalJson(contract.schema).from_json(changed)


def test_the_group_registry_remembers_groups_and_survives_a_read_only_state_dir(tmp_path: Path) -> None:
    from kafka_consumer.admin.group_registry import GroupRegistry

    registry = GroupRegistry(tmp_path, "kafka-a:9092")
    registry.remember("a/b group", ["t1"])
    registry.remember("a/b group", ["t2"])
    registry.remember("other", ["t1"])
    assert [(g.group, g.topics) for g in registry.groups()] == [("a/b group", ["t1", "t2"]), ("other", ["t1"])]
    elsewhere = GroupRegistry(tmp_path, "kafka-b:9092")
    elsewhere.remember("b only", ["t3"])
    assert [g.group for g in elsewhere.groups()] == ["b only"]  # another cluster's groups are not listed
    assert [g.group for g in registry.groups()] == ["a/b group", "other"]
    assert registry.forget("other") and not registry.forget("other")
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    GroupRegistry(blocked).remember("g", ["t"])  # logged, not raised: a worker still starts
    assert GroupRegistry(blocked).groups() == []
