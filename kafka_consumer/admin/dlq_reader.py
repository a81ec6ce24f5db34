"""The dead-letter topic as ``dlq replay`` reads it: assign() from the replay group's offsets, to each end once.

What the replay group has replayed of a partition is its :class:`Ledger`: the committed offset (every letter
before it is done) plus, in the commit's metadata, the filtered runs that went further (the letters before each
run's end that match its filters are done too). A filtered run so never moves the offset past a letter it
skipped, and no run re-publishes what an earlier one replayed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from hubstream import kafka_config
from hubstream.errors import BrokerError, BrokerUnavailableError
from hubstream.settings import Settings
from kafka_consumer.admin.replay_errors import ReplayCommitError, TopicNotFoundError
from kafka_consumer.records import Record, record_of

log = logging.getLogger(__name__)

_TIMEOUT_S = 15.0
_BATCH = 500
_POLL_S = 0.2
# characters of commit metadata a ledger may use: brokers refuse more than offset.metadata.max.bytes (4096 by default)
METADATA_BUDGET = 3000
_FORMAT = 1


@dataclass(frozen=True)
class FilteredRun:
    """A run with filters replayed every letter before offset `upto` that matches all of them."""

    filters: Mapping[str, str]
    upto: int


@dataclass(frozen=True)
class Ledger:
    """What a replay group has replayed of one DLQ partition: the letters before `offset` (-1: none), and those
    each filtered run replayed beyond it."""

    offset: int = -1
    runs: tuple[FilteredRun, ...] = ()

    def covers(self, offset: int, fields: Mapping[str, str]) -> bool:
        """Whether the letter at `offset` with these filter fields was replayed by an earlier run."""
        return offset < self.offset or any(
            offset < run.upto and all(fields.get(name) == value for name, value in run.filters.items())
            for run in self.runs
        )

    def moved(self, offset: int, run: FilteredRun | None) -> Ledger:
        """The ledger at `offset` with `run` added; runs that end at or before the offset are dropped, and of
        runs with the same filters the one that went furthest is kept."""
        furthest: dict[str, FilteredRun] = {}
        for each in (*self.runs, *([run] if run is not None else [])):
            key = json.dumps(dict(each.filters), sort_keys=True)
            if each.upto > offset and (key not in furthest or furthest[key].upto < each.upto):
                furthest[key] = each
        return Ledger(offset, tuple(furthest.values()))


def encode_runs(runs: Sequence[FilteredRun], budget: int = METADATA_BUDGET) -> tuple[str, int]:
    """The runs as commit metadata, and how many were left out to fit the budget (those that covered least)."""
    kept = sorted(runs, key=lambda run: run.upto, reverse=True)
    while kept:
        text = json.dumps(
            {"v": _FORMAT, "replayed": [{"filter": dict(run.filters), "upto": run.upto} for run in kept]},
            separators=(",", ":"),
            sort_keys=True,
        )
        if len(text) <= budget:  # ASCII (json escapes the rest), so characters are bytes
            return text, len(runs) - len(kept)
        kept.pop()
    return "", len(runs)


def decode_ledger(offset: int, metadata: str | None) -> Ledger:
    """The ledger of a committed offset and its metadata; metadata that is not a ledger counts as none."""
    if not metadata:
        return Ledger(offset)
    try:
        found = json.loads(metadata)
        if found.get("v") != _FORMAT:
            raise ValueError(f"format {found.get('v')!r}")
        runs = tuple(
            FilteredRun({str(name): str(value) for name, value in run["filter"].items()}, int(run["upto"]))
            for run in found["replayed"]
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        log.warning(
            "the commit metadata at offset %d is not a replay ledger (%s); letters after the offset that a filtered "
            "run replayed are replayed again",
            offset,
            exc,
        )
        return Ledger(offset)
    return Ledger(offset, runs)


class DlqReader:
    """The DLQ topic read with assign() from the group's committed offsets, to the end of every partition."""

    def __init__(self, settings: Settings, topic: str, group: str, idle_timeout_s: float) -> None:
        config = kafka_config.consumer_config(settings, group)
        # earliest: a committed offset that retention has deleted meanwhile resumes at the oldest record
        config.update({"enable.partition.eof": True, "auto.offset.reset": "earliest"})
        self._consumer = Consumer(config)
        self.topic = topic
        self.group = group
        self._idle_timeout_s = idle_timeout_s
        self._start: dict[int, int] = {}
        self.ledgers: dict[int, Ledger] = {}  # partition -> what the group replayed, as committed before this run
        self.next_offsets: dict[int, int] = {}  # partition -> offset after the last record read
        self.done: set[int] = set()

    def start(self, from_beginning: bool) -> set[str]:
        """Read the group's ledgers and assign every partition at its committed offset (or its beginning);
        returns the names of the cluster's topics."""
        try:
            # every topic, not just ours: a metadata request naming a missing topic auto-creates it on some brokers
            metadata = self._consumer.list_topics(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            raise BrokerUnavailableError(
                f"could not list topics: {exc.args[0].str()}; check that Kafka is reachable"
            ) from exc
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            raise TopicNotFoundError(self.topic, "dead-letter topic", "check the name (it is usually <topic>.dlq)")
        partitions = [TopicPartition(self.topic, p) for p in sorted(found.partitions)]
        try:
            committed = self._consumer.committed(partitions, timeout=_TIMEOUT_S)
            self.ledgers = {tp.partition: decode_ledger(tp.offset, tp.metadata) for tp in committed}
            self._start = {
                tp.partition: tp.offset if tp.offset >= 0 and not from_beginning else OFFSET_BEGINNING
                for tp in committed
            }
            self._consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in self._start.items()])
        except KafkaException as exc:
            raise BrokerError(f"could not read the offsets of group {self.group!r}: {exc.args[0].str()}") from exc
        return set(metadata.topics)

    async def batches(self) -> AsyncIterator[list[Record]]:
        """Batches of records, until every partition reached its end once; raises BrokerError when stuck."""
        last_news = time.monotonic()
        while len(self.done) < len(self._start):
            polled = await asyncio.to_thread(self._consumer.consume, _BATCH, _POLL_S)
            batch = [record for message in polled if (record := self._take(message)) is not None]
            if any(message.error() is None or is_eof(message) for message in polled):
                last_news = time.monotonic()
            elif time.monotonic() - last_news > self._idle_timeout_s:
                raise BrokerUnavailableError(
                    f"no record and no end of partition for {self._idle_timeout_s:.0f} s "
                    f"(partitions at their end: {sorted(self.done)} of {sorted(self._start)})"
                )
            yield batch

    def _take(self, message: Message) -> Record | None:
        """A polled message as a record to replay, or None; notes ends of partitions and raises fatal errors."""
        error = message.error()
        if error is not None:
            partition = message.partition()
            if is_eof(message) and partition is not None:  # an end-of-partition event names its partition
                self.done.add(partition)
                self._consumer.pause([TopicPartition(self.topic, partition)])
            elif error.fatal():
                raise BrokerError(f"the consumer of {self.topic!r} failed: {error.str()}")
            else:  # librdkafka retries these itself (e.g. a connection that dropped); the idle timeout bounds it
                log.warning("reading %s: %s", self.topic, error.str())
            return None
        record = record_of(message)
        if record.partition in self.done:  # fetched after the end we stop at
            return None
        self.next_offsets[record.partition] = record.offset + 1
        return record

    def total(self, read: int) -> int | None:
        """Records read plus those left, from the watermarks the last fetches brought (no broker query)."""
        left = 0
        for partition, start in self._start.items():
            if partition in self.done:
                continue
            low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            if high < 0:
                return None
            position = self.next_offsets.get(partition, start if start >= 0 else max(low, 0))
            left += max(high - position, 0)
        return read + left

    def commit(self, ledgers: Mapping[int, Ledger], replayed: int) -> dict[int, int]:
        """Commit each partition's ledger: its offset, and its filtered runs as the offset's metadata."""
        if not ledgers:
            return {}
        offsets = [
            TopicPartition(self.topic, p, ledger.offset, metadata=self._metadata(p, ledger))
            for p, ledger in sorted(ledgers.items())
        ]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ReplayCommitError(self.group, replayed, exc.args[0].str()) from exc
        failed = [(tp.partition, tp.error) for tp in result or [] if tp.error is not None]
        if failed:
            partition, error = failed[0]
            raise ReplayCommitError(self.group, replayed, f"partition {partition}: {error.str()}")
        return {p: ledger.offset for p, ledger in ledgers.items()}

    def _metadata(self, partition: int, ledger: Ledger) -> str:
        text, left_out = encode_runs(ledger.runs)
        if left_out:
            log.warning(
                "partition %d of %s: %d filtered run(s) do not fit in the commit metadata of group %r; a later run "
                "replays the letters they replayed after offset %d again (consumers dedupe them by eventId)",
                partition,
                self.topic,
                left_out,
                self.group,
                ledger.offset,
            )
        return text

    def close(self) -> None:
        self._consumer.close()


def is_eof(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF
