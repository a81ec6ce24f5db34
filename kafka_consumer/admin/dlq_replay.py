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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hubstream import kafka_config
from hubstream.errors import BrokerError
from hubstream.settings import Settings
from kafka_consumer.admin.dlq_reader import DlqReader
from kafka_consumer.admin.replay_errors import (
    ReplayError,
    ReplayIncompleteError,
    TopicNotFoundError,
    UnknownFilterError,
)
from kafka_consumer.dead_letters import (
    REPLAYED_FROM,
    DeadLetter,
    NotADeadLetterError,
    read_dead_letter,
)
from kafka_consumer.records import Record
from kafka_producer.producer import AsyncProducer, Delivery

log = logging.getLogger(__name__)

LIST_LIMIT = 50  # matching records kept in the summary, for `--dry-run` to show

# taken from DeadLetter.fields so the filter names cannot drift from what a dead letter offers
FILTER_NAMES: tuple[str, ...] = tuple(DeadLetter("", 0, 0, "", "", "", 0, "", None, None, []).fields)

Progress = Callable[[int, int | None], None]  # (records read, records to read in all, None while unknown)


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
            raise UnknownFilterError(spec, "no '='", FILTER_NAMES)
        if name in filters:
            raise UnknownFilterError(spec, f"{name} is given twice and a record has one value", FILTER_NAMES)
        filters[name] = value
    check_filters(filters)
    return filters


def check_filters(filters: Mapping[str, str]) -> None:
    for name, value in filters.items():
        if name not in FILTER_NAMES:
            raise UnknownFilterError(f"{name}={value}", f"unknown name {name!r}", FILTER_NAMES)


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
        reader = DlqReader(self.settings, s.dlq_topic, s.group, idle_timeout_s)
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

    async def _read_and_publish(self, reader: DlqReader) -> None:
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
