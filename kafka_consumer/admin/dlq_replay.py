"""Replaying dead letters: re-publish the records of a dead-letter topic to their original topic (or another).

The DLQ topic is read with ``assign()`` from the replay group's committed offsets (default group
``hubstream-dlq-replay.<dlq topic>``), never with ``subscribe()``: a one-shot tool has no use for a group
join, which costs seconds on the local broker. The run ends when every partition reported end-of-partition
(PARTITION_EOF, right on every broker; a high-watermark query is not, on the local one). A partition is done
at its first end, so records dead-lettered while the run goes on (say, replayed ones failing again) wait for
the next run and a run always ends.

Each matching dead letter is published with its original key, value bytes and headers (``hubstream.dlq.*``
removed) plus ``hubstream.dlq.replayed-from: <dlq topic>/<partition>/<offset>``, with the murmur2
partitioner, so a key lands on the partition its original was on (while the partition count is the same).
The replay group's offsets are committed only after the broker acknowledged every replayed record, so a
re-run continues after what was replayed.

Delivery is **at least once**: when a run stops before its commit (a failed delivery, a crash, Ctrl-C), the
next run publishes the same records again. Consumers dedupe by eventId with kafka_consumer/idempotency.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from hubstream import kafka_config
from hubstream.errors import BrokerError, BrokerUnavailableError, HubstreamError
from hubstream.settings import Settings
from kafka_consumer.dead_letters import (
    REPLAYED_FROM,
    DeadLetter,
    NotADeadLetterError,
    read_dead_letter,
)
from kafka_consumer.records import Record, record_of
from kafka_producer.producer import AsyncProducer, Delivery

log = logging.getLogger(__name__)

_TIMEOUT_S = 15.0
_BATCH = 500
_POLL_S = 0.2
LIST_LIMIT = 50  # matching records kept in the summary, for `--dry-run` to show

# taken from DeadLetter.fields so the filter names cannot drift from what a dead letter offers
FILTER_NAMES: tuple[str, ...] = tuple(DeadLetter("", 0, 0, "", "", "", 0, "", None, None, []).fields)

Progress = Callable[[int, int | None], None]  # (records read, records to read in all, None while unknown)


class ReplayError(HubstreamError):
    """``dlq replay`` was asked for something it cannot do; nothing was committed."""


class UnknownFilterError(ReplayError):
    def __init__(self, spec: str, problem: str) -> None:
        super().__init__(f"--filter {spec!r}: {problem}; use NAME=VALUE with NAME one of {', '.join(FILTER_NAMES)}")


class TopicNotFoundError(ReplayError):
    def __init__(self, topic: str, role: str, hint: str) -> None:
        self.topic = topic
        super().__init__(f"{role} {topic!r} does not exist; {hint}")


class ReplayIncompleteError(BrokerError):
    """A run stopped before its commit; re-running replays the same records (at least once)."""

    def __init__(self, dlq_topic: str, group: str, cause: str) -> None:
        super().__init__(
            f"replay of {dlq_topic!r} stopped: {cause}. Nothing was committed for group {group!r}, so re-running "
            "is safe: it replays from the same offsets (records already re-published are published again; "
            "consumers dedupe them by eventId)"
        )


class ReplayCommitError(BrokerError):
    def __init__(self, group: str, replayed: int, cause: str) -> None:
        super().__init__(
            f"{replayed} record(s) were replayed and acknowledged, but the offsets of group {group!r} could not be "
            f"committed ({cause}); a re-run replays them again (consumers dedupe them by eventId)"
        )


@dataclass(frozen=True)
class ReplayedRecord:
    """One matching dead letter: where it is, where it came from and where it goes."""

    dlq_partition: int
    dlq_offset: int
    target: str
    original: str  # topic[partition]@offset
    error_class: str


@dataclass
class ReplaySummary:
    """What a run did; in a dry run, ``matched`` and ``by_target`` say what it would have replayed."""

    dlq_topic: str
    group: str
    dry_run: bool
    read: int = 0
    matched: int = 0
    replayed: int = 0  # acknowledged by the broker; 0 in a dry run
    skipped_not_dead_letters: int = 0
    by_target: dict[str, int] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)  # DLQ partition -> next offset of the replay group
    listed: list[ReplayedRecord] = field(default_factory=list)  # the first LIST_LIMIT matching records

    @property
    def filtered_out(self) -> int:
        return self.read - self.matched - self.skipped_not_dead_letters


def default_group(dlq_topic: str) -> str:
    return f"hubstream-dlq-replay.{dlq_topic}"


def parse_filters(specs: Iterable[str]) -> dict[str, str]:
    """``["error-class=ValueError", ...]`` as a dict; raises UnknownFilterError for a bad or repeated one."""
    filters: dict[str, str] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep:
            raise UnknownFilterError(spec, "no '='")
        if name in filters:
            raise UnknownFilterError(spec, f"{name} is given twice and a record has one value")
        filters[name] = value
    check_filters(filters)
    return filters


def check_filters(filters: Mapping[str, str]) -> None:
    for name, value in filters.items():
        if name not in FILTER_NAMES:
            raise UnknownFilterError(f"{name}={value}", f"unknown name {name!r}")


def matches(letter: DeadLetter, filters: Mapping[str, str]) -> bool:
    fields = letter.fields
    return all(fields[name] == value for name, value in filters.items())


def replay_headers(letter: DeadLetter, record: Record) -> list[tuple[str, bytes]]:
    """The original record's headers plus where in the DLQ this replay came from."""
    origin = f"{record.topic}/{record.partition}/{record.offset}"
    return [*letter.headers, (REPLAYED_FROM, origin.encode())]


async def replay(
    settings: Settings,
    dlq_topic: str,
    *,
    to: str | None = None,
    filters: Mapping[str, str] | None = None,
    group: str | None = None,
    from_beginning: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    idle_timeout_s: float = 60.0,
) -> ReplaySummary:
    """Re-publish the dead letters of `dlq_topic` that match every filter, then commit the replay group.

    Raises ReplayError (bad filter, missing topic) before anything is published, ReplayIncompleteError when
    a delivery or the read fails (nothing committed), ReplayCommitError when only the commit failed.
    """
    check_filters(filters or {})
    if to == dlq_topic:
        raise ReplayError(f"--to {to!r} is the dead-letter topic itself; name the topic the records should go to")
    run = _Replay(
        settings,
        dlq_topic,
        to=to,
        filters=dict(filters or {}),
        group=group or default_group(dlq_topic),
        dry_run=dry_run,
        progress=progress or (lambda done, total: None),
    )
    return await run.run(from_beginning, idle_timeout_s)


class _Replay:
    def __init__(
        self,
        settings: Settings,
        dlq_topic: str,
        *,
        to: str | None,
        filters: dict[str, str],
        group: str,
        dry_run: bool,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.to = to
        self.filters = filters
        self.progress = progress
        self.summary = ReplaySummary(dlq_topic, group, dry_run)
        self.acks: list[asyncio.Future[Delivery]] = []
        self.producer: AsyncProducer | None = None
        self.topics: set[str] = set()

    async def run(self, from_beginning: bool, idle_timeout_s: float) -> ReplaySummary:
        s = self.summary
        reader = _DlqReader(self.settings, s.dlq_topic, s.group, idle_timeout_s)
        try:
            self.topics = await asyncio.to_thread(reader.start, from_beginning)
            if self.to is not None:
                self._require_target(self.to, "pass an existing topic to --to")
            if not s.dry_run:
                self.producer = AsyncProducer(kafka_config.producer_config(self.settings))
            await self._read_and_publish(reader)
            s.replayed = await self._wait_for_acks()
            if not s.dry_run:
                s.committed = await asyncio.to_thread(reader.commit, s.replayed)
        finally:
            await self._close_producer()
            reader.close()
        log.info(
            "dlq replay of %s: read %d, matched %d, replayed %d, skipped %d non-dead-letters%s",
            s.dlq_topic,
            s.read,
            s.matched,
            s.replayed,
            s.skipped_not_dead_letters,
            " (dry run)" if s.dry_run else "",
            extra={
                "event": "dlq_replayed",
                "dlq_topic": s.dlq_topic,
                "group": s.group,
                "dry_run": s.dry_run,
                "read": s.read,
                "matched": s.matched,
                "replayed": s.replayed,
            },
        )
        return s

    async def _read_and_publish(self, reader: _DlqReader) -> None:
        try:
            async for batch in reader.batches():
                for record in batch:
                    self._handle(record)
                self.progress(self.summary.read, reader.total(self.summary.read))
        except BrokerError as exc:
            raise ReplayIncompleteError(self.summary.dlq_topic, self.summary.group, str(exc)) from exc

    def _handle(self, record: Record) -> None:
        s = self.summary
        s.read += 1
        try:
            letter = read_dead_letter(record)
        except (NotADeadLetterError, ValueError) as exc:  # ValueError: a dlq header that is not a number
            s.skipped_not_dead_letters += 1
            reason = exc if isinstance(exc, NotADeadLetterError) else f"{record.where}: a malformed header: {exc}"
            log.warning(
                "skipping a record that is not a dead letter: %s",
                reason,
                extra={"event": "dlq_replay_skipped", "dlq_topic": s.dlq_topic, "offset": record.offset},
            )
            return
        if not matches(letter, self.filters):
            return
        target = self.to or letter.original_topic
        self._require_target(
            target,
            f"it is the original topic of {record.where}; create it, or pass --to TOPIC. "
            "Records re-published so far are published again by the next run",
        )
        s.matched += 1
        s.by_target[target] = s.by_target.get(target, 0) + 1
        if len(s.listed) < LIST_LIMIT:
            original = f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"
            s.listed.append(ReplayedRecord(record.partition, record.offset, target, original, letter.error_class))
        if self.producer is not None:
            self.acks.append(
                self.producer.send(target, letter.value, key=letter.key, headers=replay_headers(letter, record))
            )

    def _require_target(self, topic: str, hint: str) -> None:
        # checked here, because producing to a missing topic auto-creates it on some brokers (with the
        # broker's default partition count, which would move keys off their partitions)
        if topic not in self.topics:
            raise TopicNotFoundError(topic, "target topic", f"{hint}. Nothing was committed")

    async def _wait_for_acks(self) -> int:
        outcomes = await asyncio.gather(*self.acks, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            cause = f"{len(failures)} of {len(outcomes)} record(s) were not acknowledged, first: {failures[0]}"
            raise ReplayIncompleteError(self.summary.dlq_topic, self.summary.group, cause)
        return len(outcomes)

    async def _close_producer(self) -> None:
        if self.producer is not None:
            await self.producer.close()
        for ack in self.acks:  # after a failure: retrieve outcomes nobody awaited, so asyncio does not warn
            if ack.done() and not ack.cancelled():
                ack.exception()
            else:
                ack.cancel()


class _DlqReader:
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
        self.next_offsets: dict[int, int] = {}  # partition -> offset after the last record read
        self.done: set[int] = set()

    def start(self, from_beginning: bool) -> set[str]:
        """Assign every partition at its start offset; returns the names of the cluster's topics."""
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
            if not from_beginning:
                partitions = self._consumer.committed(partitions, timeout=_TIMEOUT_S)
            self._start = {tp.partition: tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in partitions}
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
            if any(message.error() is None or _is_eof(message) for message in polled):
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
            if _is_eof(message) and partition is not None:  # an end-of-partition event names its partition
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

    def commit(self, replayed: int) -> dict[int, int]:
        """Commit the offset after the last record read of each partition that moved."""
        if not self.next_offsets:
            return {}
        offsets = [TopicPartition(self.topic, p, offset) for p, offset in sorted(self.next_offsets.items())]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ReplayCommitError(self.group, replayed, exc.args[0].str()) from exc
        failed = [(tp.partition, tp.error) for tp in result or [] if tp.error is not None]
        if failed:
            partition, error = failed[0]
            raise ReplayCommitError(self.group, replayed, f"partition {partition}: {error.str()}")
        return dict(self.next_offsets)

    def close(self) -> None:
        self._consumer.close()


def _is_eof(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF
