"""Resetting a group's offsets, against the real broker.

`--to latest` and `--to datetime` are tested on Apache Kafka only: Tansu answers ListOffsets LATEST and timestamp
queries wrongly, so there a test of them would check the broker, not this code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
)

from kafka_consumer.admin.group_offsets import ActiveGroupError, OffsetChange, apply_reset, plan_reset
from tests.fixtures.broker import LocalKafka, unique


def consume_all(broker: LocalKafka, group: str, topic: str, count: int) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000 if broker.external else 2000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            seen += 1
            consumer.commit(message=message, asynchronous=False)
    assert seen == count
    return consumer


@pytest.fixture
def consumed_group(kafka_broker: LocalKafka) -> tuple[str, str]:
    topic = kafka_broker.create_topic("reset", partitions=2)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 0})
    for i in range(10):
        producer.produce(topic, f"v{i}".encode(), partition=i % 2)
        producer.flush(10)  # one record per batch: offsets stay exact on every broker
    group = unique("replay")
    consume_all(kafka_broker, group, topic, 10).close()
    return group, topic


def test_reset_to_earliest_replays_from_the_start(kafka_broker: LocalKafka, consumed_group: tuple[str, str]) -> None:
    group, topic = consumed_group
    assert kafka_broker.committed(group, topic, 2) == {0: 5, 1: 5}
    changes = plan_reset(kafka_broker.admin, group, topic, "earliest")
    assert [(c.partition, c.current, c.new) for c in changes] == [(0, 5, 0), (1, 5, 0)]
    apply_reset(kafka_broker.admin, group, changes)
    assert kafka_broker.committed(group, topic, 2) == {0: 0, 1: 0}
    consume_all(kafka_broker, group, topic, 10).close()  # every record again


def test_reset_to_an_offset(kafka_broker: LocalKafka, consumed_group: tuple[str, str]) -> None:
    group, topic = consumed_group
    apply_reset(kafka_broker.admin, group, plan_reset(kafka_broker.admin, group, topic, "offset", offset=3))
    assert kafka_broker.committed(group, topic, 2) == {0: 3, 1: 3}


def test_reset_is_refused_while_the_group_has_members(
    kafka_broker: LocalKafka, consumed_group: tuple[str, str]
) -> None:
    group, topic = consumed_group
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap_servers,
            "group.id": group,
            "session.timeout.ms": 6000 if kafka_broker.external else 2000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment()
        with pytest.raises(ActiveGroupError, match="stop its consumers first"):
            apply_reset(kafka_broker.admin, group, plan_reset(kafka_broker.admin, group, topic, "earliest"))
    finally:
        consumer.close()
    assert kafka_broker.committed(group, topic, 2) == {0: 5, 1: 5}


@pytest.fixture
def apache_kafka(kafka_broker: LocalKafka) -> LocalKafka:
    if kafka_broker.kind == "tansu":
        pytest.skip("Tansu answers ListOffsets LATEST and timestamp queries wrongly; run on Apache Kafka")
    return kafka_broker


def test_reset_to_latest_skips_what_is_there(apache_kafka: LocalKafka, consumed_group: tuple[str, str]) -> None:
    group, topic = consumed_group
    apply_reset(apache_kafka.admin, group, plan_reset(apache_kafka.admin, group, topic, "offset", offset=1))
    producer = Producer({"bootstrap.servers": apache_kafka.bootstrap_servers})
    for i in range(4):
        producer.produce(topic, f"late{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    changes = plan_reset(apache_kafka.admin, group, topic, "latest")
    assert [(c.partition, c.current, c.new) for c in changes] == [(0, 1, 9), (1, 1, 5)]
    apply_reset(apache_kafka.admin, group, changes)
    assert apache_kafka.committed(group, topic, 2) == {0: 9, 1: 5}


def test_reset_to_a_datetime_starts_at_the_first_record_written_since(
    apache_kafka: LocalKafka, consumed_group: tuple[str, str]
) -> None:
    group, topic = consumed_group
    time.sleep(0.05)  # record timestamps are milliseconds: the cut falls strictly after the first ten
    cut = datetime.now(UTC)
    time.sleep(0.05)
    producer = Producer({"bootstrap.servers": apache_kafka.bootstrap_servers})
    for i in range(3):
        producer.produce(topic, f"after{i}".encode(), partition=1)
    assert producer.flush(10) == 0
    changes = plan_reset(apache_kafka.admin, group, topic, "datetime", at=cut)
    # partition 0 has nothing since the cut: its end; partition 1: the first of the three new records
    assert [(c.partition, c.new) for c in changes] == [(0, 5), (1, 5)]
    early = plan_reset(apache_kafka.admin, group, topic, "datetime", at=datetime(2000, 1, 1, tzinfo=UTC))
    assert [(c.partition, c.new) for c in early] == [(0, 0), (1, 0)]
    apply_reset(apache_kafka.admin, group, changes)
    assert apache_kafka.committed(group, topic, 2) == {0: 5, 1: 5}


def test_cli_dry_run_changes_nothing(kafka_broker: LocalKafka, consumed_group: tuple[str, str]) -> None:
    group, topic = consumed_group
    env_bootstrap = {"HUBSTREAM_PROFILE": "kafka", "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubstream_cli",
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--topic",
            topic,
            "--to",
            "earliest",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env_bootstrap, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stderr
    assert kafka_broker.committed(group, topic, 2) == {0: 5, 1: 5}


def test_a_group_nothing_holds_can_be_reset(kafka_broker: LocalKafka, consumed_group: tuple[str, str]) -> None:
    """A group id no consumer ever used: Kafka 4 describes it as not found, Tansu as Empty; both are resettable."""
    _, topic = consumed_group
    group = unique("never-used")
    apply_reset(kafka_broker.admin, group, plan_reset(kafka_broker.admin, group, topic, "offset", offset=2))
    assert kafka_broker.committed(group, topic, 2) == {0: 2, 1: 2}


class _DeadGroupAdmin:
    """Answers as Event Hubs does for a group nothing holds: DescribeGroups says Dead (or not found), no members;
    the offsets are then committed as asked."""

    def __init__(self, describe: object) -> None:
        self.describe = describe
        self.altered: list[ConsumerGroupTopicPartitions] = []

    def describe_consumer_groups(self, groups: list[str], **_: object) -> dict[str, Future[object]]:
        future: Future[object] = Future()
        if isinstance(self.describe, BaseException):
            future.set_exception(self.describe)
        else:
            future.set_result(self.describe)
        return {groups[0]: future}

    def alter_consumer_group_offsets(self, requests: list[ConsumerGroupTopicPartitions]) -> dict[str, Future[object]]:
        self.altered.extend(requests)
        future: Future[object] = Future()
        future.set_result(requests[0])
        return {requests[0].group_id: future}


@pytest.mark.parametrize(
    "describe",
    [
        SimpleNamespace(state=ConsumerGroupState.DEAD, members=[]),
        KafkaException(KafkaError(KafkaError.GROUP_ID_NOT_FOUND)),
    ],
    ids=["dead", "not-found"],
)
def test_a_dead_group_is_reset_not_refused(describe: object) -> None:
    admin = _DeadGroupAdmin(describe)
    changes = [OffsetChange("t", 0, 7, 0), OffsetChange("t", 1, None, 0)]
    apply_reset(admin, "dev-group", changes)  # type: ignore[arg-type]
    [request] = admin.altered
    assert [(tp.partition, tp.offset) for tp in request.topic_partitions or []] == [(0, 0), (1, 0)]


def test_a_dead_group_with_members_is_still_refused() -> None:
    admin = _DeadGroupAdmin(SimpleNamespace(state=ConsumerGroupState.STABLE, members=[object()]))
    with pytest.raises(ActiveGroupError):
        apply_reset(admin, "dev-group", [OffsetChange("t", 0, 7, 0)])  # type: ignore[arg-type]
    assert admin.altered == []


def test_cli_resets_a_group_nothing_holds_and_prints_json(
    kafka_broker: LocalKafka, consumed_group: tuple[str, str]
) -> None:
    _, topic = consumed_group
    group = unique("dead-dev")
    env = {"HUBSTREAM_PROFILE": "kafka", "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    command = ["groups", "reset-offsets", "--group", group, "--topic", topic, "--to", "offset", "--offset", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "hubstream_cli", *command, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["group"] == group and document["dryRun"] is False
    assert [(c["partition"], c["current"], c["new"]) for c in document["changes"]] == [(0, None, 1), (1, None, 1)]
    assert kafka_broker.committed(group, topic, 2) == {0: 1, 1: 1}
