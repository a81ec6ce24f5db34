"""Replaying dead letters over the real broker: byte-for-byte re-publishing, filters (which leave the letters
they skip to a later run), resuming from the commit, bounded in-flight acks, dry runs, other targets, records
that are not dead letters, and the errors a person meets.

The dead letters are made the way the worker makes them: records are produced to a source topic, consumed
back, and written to ``<topic>.dlq`` with ``dead_letter_headers`` of the real consumed messages.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Message, Producer

from devstack.topics import ensure_topics
from hubstream.errors import BrokerError
from hubstream.settings import Settings
from kafka_consumer import dead_letters as dlq
from kafka_consumer.admin.dlq_reader import METADATA_BUDGET, FilteredRun, Ledger, decode_ledger, encode_runs
from kafka_consumer.admin.dlq_replay import (
    FILTER_NAMES,
    InFlight,
    ReplaySummary,
    default_group,
    parse_filters,
    replay,
)
from kafka_consumer.admin.replay_errors import ReplayIncompleteError, TopicNotFoundError, UnknownFilterError
from kafka_consumer.records import record_of
from kafka_producer.producer import Delivery
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.readers import read_all

PARTITIONS = 2
ERRORS = [
    ValueError("bad amount"),
    ConnectionError("downstream down"),
    ValueError("bad currency"),
    ConnectionError("timeout"),
    ValueError("negative"),
    ConnectionError("reset"),
]


@dataclass
class Dlq:
    """A source topic with records, and its ``.dlq`` topic holding a dead letter of each."""

    broker: LocalKafka
    source: str
    topic: str
    originals: dict[tuple[str, int, int], Message]  # by (topic, partition, offset)

    def settings(self, **producer: Any) -> Settings:
        return Settings(
            _env_file=None,
            profile=self.broker.profile,
            kafka={"bootstrap_servers": self.broker.bootstrap_servers},
            producer={"delivery_timeout_ms": 10_000, **producer},
        )

    def replay(self, **options: Any) -> ReplaySummary:
        settings = options.pop("settings", None) or self.settings()
        return asyncio.run(replay(settings, self.topic, **options))

    def replayed(self, topic: str | None = None, partitions: int = PARTITIONS) -> list[Message]:
        """Records of `topic` (default: the source) that carry a replayed-from header."""
        return [
            m
            for m in read_all(self.broker, topic or self.source, partitions)
            if any(name == dlq.REPLAYED_FROM for name, _ in m.headers() or [])
        ]

    def dead_letter(self, message: Message, error: BaseException) -> None:
        producer = Producer({"bootstrap.servers": self.broker.bootstrap_servers, "linger.ms": 0})
        producer.produce(
            self.topic,
            message.value(),
            key=message.key(),
            headers=dlq.dead_letter_headers(record_of(message), error, 3, "orders-workers"),
        )
        assert producer.flush(10) == 0


def produce(broker: LocalKafka, topic: str, records: list[tuple[bytes | None, bytes | None, list[Any]]]) -> None:
    # murmur2, as hubstream's producer: the replay must land each key on its original partition
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0, "partitioner": "murmur2_random"}
    )
    for key, value, headers in records:
        producer.produce(topic, value, key=key, headers=headers)
    assert producer.flush(10) == 0


@pytest.fixture
def dead(kafka_broker: LocalKafka) -> Dlq:
    """Six dead letters from a two-partition topic: values 0, 2, 4 failed with ValueError, 1, 3, 5 with
    ConnectionError."""
    source = kafka_broker.create_topic("orders", partitions=PARTITIONS)
    ensure_topics(kafka_broker.admin, {source + ".dlq": PARTITIONS})
    produce(
        kafka_broker,
        source,
        [
            (
                f"order-{i}".encode(),
                dead_value(i),
                [("content-type", b"avro/binary+abc123"), ("trace", f"t{i}".encode()), ("empty", b"")],
            )
            for i in range(len(ERRORS))
        ],
    )
    consumed = read_all(kafka_broker, source, PARTITIONS)
    assert len(consumed) == len(ERRORS)
    letters = Dlq(kafka_broker, source, source + ".dlq", {})
    for message in consumed:
        letters.dead_letter(message, ERRORS[message.value()[-1]])
        letters.originals[_origin(message)] = message
    return letters


def _origin(message: Message) -> Any:
    return message.topic(), message.partition(), message.offset()


def test_replay_republishes_every_dead_letter_byte_for_byte_and_commits(dead: Dlq) -> None:
    summary = dead.replay()

    assert (summary.read, summary.matched, summary.replayed, summary.skipped_not_dead_letters) == (6, 6, 6, 0)
    assert summary.by_target == {dead.source: 6}
    letters = {(m.partition(), m.offset()): m for m in read_all(dead.broker, dead.topic, PARTITIONS)}
    replayed = dead.replayed()
    assert len(replayed) == 6
    for record in replayed:
        headers = record.headers()
        name, origin = headers[-1]
        assert name == dlq.REPLAYED_FROM
        topic, partition, offset = origin.decode().rsplit("/", 2)
        assert topic == dead.topic
        story = dlq.read_dead_letter(record_of(letters[(int(partition), int(offset))]))
        original = dead.originals[(story.original_topic, story.original_partition, story.original_offset)]
        assert record.key() == original.key() and record.value() == original.value()
        assert headers[:-1] == original.headers()  # original headers, in order, no hubstream.dlq.* left
        assert record.partition() == original.partition()  # same key, same partition
    assert summary.committed == {0: _count(letters, 0), 1: _count(letters, 1)}
    group = default_group(dead.topic)
    assert dead.broker.committed(group, dead.topic, PARTITIONS) == summary.committed


def _count(letters: dict[tuple[int, int], Message], partition: int) -> int:
    return sum(1 for p, _ in letters if p == partition)


def test_a_filter_selects_and_a_rerun_continues_after_the_commit(dead: Dlq) -> None:
    first = dead.replay(filters={"error-class": "ValueError"})
    assert (first.read, first.matched, first.replayed, first.left_for_later) == (6, 3, 3, 3)
    assert {m.value() for m in dead.replayed()} == {dead_value(i) for i in (0, 2, 4)}

    rerun = dead.replay(filters={"error-class": "ValueError"})
    assert (rerun.matched, rerun.replayed, rerun.left_for_later) == (0, 0, 3)  # nothing new
    assert len(dead.replayed()) == 3

    late = dead.originals[next(iter(dead.originals))]
    dead.dead_letter(late, ValueError("failed again"))
    again = dead.replay(filters={"error-class": "ValueError"})
    assert (again.matched, again.replayed) == (1, 1)

    everything = dead.replay(
        filters={"error-class": "ValueError", "consumer-group": "orders-workers"}, from_beginning=True
    )
    assert (everything.read, everything.replayed) == (7, 4)
    assert len(dead.replayed()) == 3 + 1 + 4


def test_a_filtered_run_leaves_the_letters_it_skipped_to_a_plain_run(dead: Dlq) -> None:
    letters = read_all(dead.broker, dead.topic, PARTITIONS)
    group = default_group(dead.topic)
    filtered = dead.replay(filters={"error-class": "ConnectionError"})
    assert (filtered.replayed, filtered.left_for_later) == (3, 3)
    # the group's offset stops at the first letter the filter skipped, in each partition
    skipped = [m for m in letters if _error(m) == "ValueError"]
    stops = {
        p: min((m.offset() for m in skipped if m.partition() == p), default=_end(letters, p)) for p in range(PARTITIONS)
    }
    assert dead.broker.committed(group, dead.topic, PARTITIONS) == stops
    # replayed by the filtered run, yet after where the group stopped: the commit's metadata says so
    beyond = sum(1 for m in letters if _error(m) == "ConnectionError" and m.offset() > stops[m.partition()])
    assert beyond > 0

    plain = dead.replay()
    assert (plain.matched, plain.replayed, plain.already_replayed, plain.left_for_later) == (3, 3, beyond, 0)
    assert {record.error_class for record in plain.listed} == {"ValueError"}  # exactly the skipped letters
    assert sorted(m.value() for m in dead.replayed()) == [dead_value(i) for i in range(6)]  # each once
    assert dead.broker.committed(group, dead.topic, PARTITIONS) == _ends(letters)
    assert dead.replay().read == 0


def test_two_filters_that_cover_every_letter_move_the_group_to_the_end(dead: Dlq) -> None:
    letters = read_all(dead.broker, dead.topic, PARTITIONS)
    assert dead.replay(filters={"error-class": "ValueError"}).replayed == 3
    other = dead.replay(filters={"error-class": "ConnectionError"})
    assert (other.replayed, other.left_for_later) == (3, 0)
    assert dead.broker.committed(default_group(dead.topic), dead.topic, PARTITIONS) == _ends(letters)
    assert dead.replay().read == 0
    assert sorted(m.value() for m in dead.replayed()) == [dead_value(i) for i in range(6)]


def _error(message: Message) -> str:
    return dlq.read_dead_letter(record_of(message)).error_class


def _end(letters: list[Message], partition: int) -> int:
    """The offset after a partition's last letter, as committed (-1001: an empty partition is never committed)."""
    return sum(1 for m in letters if m.partition() == partition) or -1001


def _ends(letters: list[Message]) -> dict[int, int]:
    return {p: _end(letters, p) for p in range(PARTITIONS)}


def test_replay_holds_at_most_max_in_flight_acks(dead: Dlq) -> None:
    original = dead.originals[next(iter(dead.originals))]
    produce(
        dead.broker,
        dead.topic,
        [
            (original.key(), original.value(), dlq.dead_letter_headers(record_of(original), ValueError(i), 1, "g"))
            for i in range(30)
        ],
    )
    bounded = dead.replay(max_in_flight=4)
    assert (bounded.matched, bounded.replayed) == (36, 36)
    assert bounded.peak_in_flight == 4  # reached, never passed

    by_bytes = dead.replay(from_beginning=True, max_in_flight_bytes=len(original.value()))  # one record at a time
    assert (by_bytes.replayed, by_bytes.peak_in_flight) == (36, 1)
    assert len(dead.replayed()) == 72


def test_a_full_window_awaits_its_oldest_ack_and_a_failed_ack_stops_the_run() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        window = InFlight(max_records=2, max_bytes=1_000)
        acks: list[asyncio.Future[Delivery]] = [loop.create_future() for _ in range(3)]
        window.add(acks[0], 10)
        window.add(acks[1], 10)
        room = asyncio.ensure_future(window.make_room(10))
        await asyncio.sleep(0)
        acks[1].set_result(Delivery("t", 0, 1, None))  # a newer ack frees nothing: the oldest is awaited
        await asyncio.sleep(0)
        assert not room.done()
        acks[0].set_result(Delivery("t", 0, 0, None))
        await room
        window.add(acks[2], 10)
        assert (window.peak, window.acknowledged) == (2, 1)
        acks[2].set_exception(BrokerError("refused"))
        with pytest.raises(BrokerError, match=r"not acknowledged \(after 2 that were\): refused"):
            await window.drain()

    asyncio.run(scenario())


def test_a_ledger_covers_what_earlier_runs_replayed_and_fits_the_commit_metadata() -> None:
    value_errors = FilteredRun({"error-class": "ValueError"}, 10)
    ledger = Ledger(3, (value_errors,))
    assert ledger.covers(2, {"error-class": "ConnectionError"})  # before the committed offset
    assert ledger.covers(5, {"error-class": "ValueError"}) and not ledger.covers(10, {"error-class": "ValueError"})
    assert not ledger.covers(5, {"error-class": "ConnectionError"})
    assert not ledger.covers(5, {})  # a field the letter lacks matches no filter

    further = ledger.moved(4, FilteredRun({"error-class": "ValueError"}, 12))
    assert further == Ledger(4, (FilteredRun({"error-class": "ValueError"}, 12),))  # one run per filter set
    assert ledger.moved(10, None) == Ledger(10)  # a run that ends at the offset says nothing more
    text, left_out = encode_runs(further.runs)
    assert (decode_ledger(4, text), left_out) == (further, 0)

    many = [FilteredRun({"key": f"customer-{i}-" * 10}, 100 + i) for i in range(40)]
    text, left_out = encode_runs(many)
    kept = decode_ledger(0, text).runs
    assert len(text) <= METADATA_BUDGET and left_out == 40 - len(kept) > 0
    assert {run.upto for run in kept} == set(range(140 - len(kept), 140))  # those that read furthest stay
    for garbage in ("", "not json", "[" * 5000, '{"v": 2}', '{"v": 1, "replayed": [{"filter": 3}]}'):
        assert decode_ledger(7, garbage) == Ledger(7)


def dead_value(i: int) -> bytes:
    return b"\x00avro\xff" + bytes([i])


def test_dry_run_publishes_and_commits_nothing(dead: Dlq) -> None:
    summary = dead.replay(filters={"key": "order-3"}, dry_run=True)

    assert (summary.read, summary.matched, summary.replayed) == (6, 1, 0)
    assert summary.by_target == {dead.source: 1} and summary.committed == {}
    [listed] = summary.listed
    assert listed.target == dead.source and listed.error_class == "ConnectionError"
    assert dead.replayed() == []
    assert dead.broker.committed(default_group(dead.topic), dead.topic, PARTITIONS) == {0: -1001, 1: -1001}
    assert dead.replay().replayed == 6  # the dry run left the group where it was


def test_replay_to_another_topic_in_its_own_group(dead: Dlq) -> None:
    target = dead.broker.create_topic("orders-retry", partitions=1)
    group = unique("replay")
    summary = dead.replay(to=target, group=group, filters={"error-class": "ConnectionError"})

    assert summary.by_target == {target: 3} and summary.group == group
    assert sorted(m.value() for m in dead.replayed(target, partitions=1)) == [dead_value(i) for i in (1, 3, 5)]
    assert dead.replayed() == []
    assert dead.replay().replayed == 6  # the default group has its own offsets


def test_records_that_are_not_dead_letters_are_skipped_counted_and_passed(dead: Dlq) -> None:
    produce(
        dead.broker,
        dead.topic,
        [
            (b"k", b"stray", [("content-type", b"avro/binary+abc123")]),
            (b"k", b"half", [(dlq.ORIGINAL_TOPIC, dead.source.encode())]),
        ],
    )
    summary = dead.replay()

    assert (summary.read, summary.skipped_not_dead_letters, summary.replayed) == (8, 2, 6)
    assert dead.replay().read == 0  # the commit passed them too


def test_a_missing_dlq_topic_is_named_and_not_created(kafka_broker: LocalKafka, dead: Dlq) -> None:
    missing = unique("nosuch") + ".dlq"
    with pytest.raises(TopicNotFoundError, match=f"dead-letter topic '{missing}' does not exist"):
        asyncio.run(replay(dead.settings(), missing))
    assert missing not in kafka_broker.admin.list_topics(timeout=10).topics


def test_a_missing_target_topic_fails_before_anything_is_committed(dead: Dlq) -> None:
    missing = unique("nosuch")
    with pytest.raises(TopicNotFoundError, match=f"target topic '{missing}' does not exist.*--to"):
        dead.replay(to=missing)
    headers = [(dlq.ORIGINAL_TOPIC, missing.encode()), (dlq.ORIGINAL_PARTITION, b"0"), (dlq.ORIGINAL_OFFSET, b"0")]
    produce(dead.broker, dead.topic, [(b"k", b"v", headers)])  # dead-lettered from a topic deleted since
    with pytest.raises(TopicNotFoundError, match=f"'{missing}' does not exist; it is the original topic of"):
        dead.replay()
    assert missing not in dead.broker.admin.list_topics(timeout=10).topics
    assert dead.broker.committed(default_group(dead.topic), dead.topic, PARTITIONS) == {0: -1001, 1: -1001}


def test_a_failed_delivery_commits_nothing_and_says_a_rerun_is_safe(dead: Dlq) -> None:
    # a dead letter too big for a producer that refuses records over 1000 bytes, after six small ones
    original = dead.originals[next(iter(dead.originals))]
    headers = dlq.dead_letter_headers(record_of(original), ValueError(), 1, "g")
    produce(dead.broker, dead.topic, [(b"big", b"x" * 2000, headers)])
    with pytest.raises(ReplayIncompleteError, match=r"Nothing was committed.*re-running is safe"):
        dead.replay(settings=dead.settings(max_message_bytes=1000))
    assert dead.broker.committed(default_group(dead.topic), dead.topic, PARTITIONS) == {0: -1001, 1: -1001}


def test_filters_are_checked_and_name_the_valid_names() -> None:
    assert parse_filters(["error-class=ValueError", "key=a=b"]) == {"error-class": "ValueError", "key": "a=b"}
    assert FILTER_NAMES == (
        "original-topic",
        "original-partition",
        "original-offset",
        "consumer-group",
        "error-class",
        "key",
    )
    with pytest.raises(UnknownFilterError, match=r"unknown name 'error'.*error-class, key"):
        parse_filters(["error=ValueError"])
    with pytest.raises(UnknownFilterError, match="no '='"):
        parse_filters(["error-class"])
    with pytest.raises(UnknownFilterError, match="given twice"):
        parse_filters(["key=a", "key=b"])


def hubstream(broker: LocalKafka, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUBSTREAM_")}
    env.update(
        {"HUBSTREAM_PROFILE": "kafka", "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers, "COLUMNS": "200"}
    )
    return subprocess.run(
        [sys.executable, "-m", "hubstream_cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_replays_and_prints_the_summary(dead: Dlq) -> None:
    dry = hubstream(
        dead.broker, "dlq", "replay", "--topic", dead.topic, "--filter", "error-class=ValueError", "--dry-run"
    )
    assert dry.returncode == 0, dry.stderr
    assert "would replay" in dry.stderr and "nothing was published or committed" in dry.stderr

    result = hubstream(dead.broker, "dlq", "replay", "--topic", dead.topic, "--filter", "error-class=ValueError")
    assert result.returncode == 0, result.stderr
    assert dead.source in result.stderr and "read 6, not matching the filters 3" in result.stderr
    assert f"committed group {default_group(dead.topic)}" in result.stderr
    assert "3 letter(s) the filters skipped stay for a later run" in result.stderr
    assert len(dead.replayed()) == 3


def test_cli_errors_exit_2_and_help_names_every_option(kafka_broker: LocalKafka) -> None:
    missing = hubstream(kafka_broker, "dlq", "replay", "--topic", unique("nosuch") + ".dlq")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = hubstream(kafka_broker, "dlq", "replay", "--topic", "x.dlq", "--filter", "colour=red")
    assert bad.returncode == 2 and "original-topic, original-partition" in bad.stderr

    shown = hubstream(kafka_broker, "dlq", "replay", "--help")
    assert shown.returncode == 0
    for option in ("--topic", "--to", "--filter", "--group", "--from-beginning", "--dry-run", "--state-dir"):
        assert option in shown.stdout
    assert "Dead-letter topics." in hubstream(kafka_broker, "dlq", "--help").stdout


def test_a_letter_kept_without_its_value_is_skipped_and_counted(dead: Dlq) -> None:
    original = next(iter(dead.originals.values()))
    producer = Producer({"bootstrap.servers": dead.broker.bootstrap_servers, "linger.ms": 0})
    headers = dlq.dead_letter_headers(record_of(original), ValueError("too big"), 1, "orders-workers")
    producer.produce(dead.topic, b"", key=original.key(), headers=headers + dlq.value_omitted_headers(original.value()))
    assert producer.flush(10) == 0
    summary = dead.replay()
    assert summary.skipped_value_omitted == 1
    assert summary.replayed == 6  # the six whole letters
    assert all(m.value() for m in dead.replayed()), "an empty value was republished"
