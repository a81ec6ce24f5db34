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
re-run continues after what was replayed. At most ``max_in_flight`` records (and ``max_in_flight_bytes``) are
published and not yet acknowledged at a time: a send into a full window first awaits the oldest ack, so a huge
DLQ is replayed in bounded memory.

A run with ``--filter`` never moves the group's offset past a letter its filters skipped: the offset stops at
the first one of each partition, and the run's filters and end are kept in the commit's metadata
(dlq_reader.Ledger). Every run reads from the offset and leaves out the letters an earlier run replayed, so a
filtered run followed by a plain one replays each letter once, and re-running a filtered run replays only what
was dead-lettered since. ``--from-beginning`` replays every matching letter again, whoever replayed it.

Delivery is **at least once**: when a run stops before its commit (a failed delivery, a crash, Ctrl-C), the
next run publishes the same records again. Consumers dedupe by eventId with kafka_consumer/idempotency.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hubstream import kafka_config
from hubstream.errors import BrokerError
from hubstream.settings import Settings
from kafka_consumer.admin.dlq_reader import DlqReader, FilteredRun, Ledger
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
MAX_IN_FLIGHT = 10_000  # records published and not yet acknowledged, at most
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024  # their keys, values and headers, at most (a bigger record goes alone)

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
    already_replayed: int = 0  # matching, but an earlier run of the group replayed them
    left_for_later: int = 0  # not matching, and no run replayed them yet: the group's offset stays before them
    skipped_not_dead_letters: int = 0
    skipped_value_omitted: int = 0  # too large when dead-lettered: only headers were kept, there is nothing to send
    peak_in_flight: int = 0  # most records published and not yet acknowledged at one time
    by_target: dict[str, int] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)  # DLQ partition -> next offset of the replay group
    listed: list[ReplayedRecord] = field(default_factory=list)  # the first LIST_LIMIT matching records

    @property
    def filtered_out(self) -> int:
        skipped = self.skipped_not_dead_letters + self.skipped_value_omitted
        return self.read - self.matched - self.already_replayed - skipped


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
    max_in_flight: int = MAX_IN_FLIGHT,
    max_in_flight_bytes: int = MAX_IN_FLIGHT_BYTES,
) -> ReplaySummary:
    """Re-publish the dead letters of `dlq_topic` that match every filter and that no earlier run of the group
    replayed (with `from_beginning`: every matching one), then commit the replay group.

    Raises ReplayError (bad filter, missing topic) before anything is published, ReplayIncompleteError when
    a delivery or the read fails (nothing committed), ReplayCommitError when only the commit failed.
    """
    check_filters(filters or {})
    if to == dlq_topic:
        raise ReplayError(f"--to {to!r} is the dead-letter topic itself; name the topic the records should go to")
    if max_in_flight < 1 or max_in_flight_bytes < 1:
        raise ReplayError("max_in_flight and max_in_flight_bytes must be at least 1")
    run = _Replay(
        settings,
        dlq_topic,
        to=to,
        filters=dict(filters or {}),
        group=group or default_group(dlq_topic),
        dry_run=dry_run,
        progress=progress or (lambda done, total: None),
        window=InFlight(max_in_flight, max_in_flight_bytes),
    )
    return await run.run(from_beginning, idle_timeout_s)


class InFlight:
    """Acks of published records, oldest first, at most `max_records` and `max_bytes` of them outstanding."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._acks: deque[tuple[asyncio.Future[Delivery], int]] = deque()
        self._bytes = 0
        self.acknowledged = 0
        self.peak = 0  # most acks outstanding at one time

    async def make_room(self, size: int) -> None:
        """Await the oldest acks until one more record of `size` bytes fits (an empty window takes any)."""
        while self._acks and (len(self._acks) >= self.max_records or self._bytes + size > self.max_bytes):
            await self._settle_oldest()

    def add(self, ack: asyncio.Future[Delivery], size: int) -> None:
        self._acks.append((ack, size))
        self._bytes += size
        self.peak = max(self.peak, len(self._acks))

    async def drain(self) -> None:
        while self._acks:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        ack, size = self._acks.popleft()
        self._bytes -= size
        try:
            await ack
        except BrokerError as exc:
            raise BrokerError(f"a record was not acknowledged (after {self.acknowledged} that were): {exc}") from exc
        self.acknowledged += 1

    def abandon(self) -> None:
        """After a failure: retrieve the outcomes nobody will await (so asyncio does not warn), cancel the rest."""
        for ack, _ in self._acks:
            if ack.done() and not ack.cancelled():
                ack.exception()
            else:
                ack.cancel()
        self._acks.clear()


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
        window: InFlight,
    ) -> None:
        self.settings = settings
        self.to = to
        self.filters = filters
        self.progress = progress
        self.summary = ReplaySummary(dlq_topic, group, dry_run)
        self.window = window
        self.producer: AsyncProducer | None = None
        self.topics: set[str] = set()
        self.from_beginning = False
        self.ledgers: dict[int, Ledger] = {}  # as committed before this run
        self.first_pending: dict[int, int] = {}  # partition -> first letter read that no run has replayed yet

    async def run(self, from_beginning: bool, idle_timeout_s: float) -> ReplaySummary:
        s = self.summary
        self.from_beginning = from_beginning
        reader = DlqReader(self.settings, s.dlq_topic, s.group, idle_timeout_s)
        try:
            self.topics = await asyncio.to_thread(reader.start, from_beginning)
            self.ledgers = reader.ledgers
            if self.to is not None:
                self._require_target(self.to, "pass an existing topic to --to")
            if not s.dry_run:
                self.producer = AsyncProducer(kafka_config.producer_config(self.settings))
            await self._read_and_publish(reader)
            s.replayed = self.window.acknowledged
            s.peak_in_flight = self.window.peak
            if not s.dry_run:
                s.committed = await asyncio.to_thread(reader.commit, self._moved(reader.next_offsets), s.replayed)
        finally:
            await self._close_producer()
            reader.close()
        log.info(
            "dlq replay of %s: read %d, matched %d, replayed %d, already replayed %d, skipped %d non-dead-letters%s",
            s.dlq_topic,
            s.read,
            s.matched,
            s.replayed,
            s.already_replayed,
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
                "already_replayed": s.already_replayed,
            },
        )
        return s

    def _moved(self, next_offsets: Mapping[int, int]) -> dict[int, Ledger]:
        """Each partition read: its offset stops at its first letter still to replay, past it the run's filters
        say what this run replayed."""
        moved: dict[int, Ledger] = {}
        for partition, end in next_offsets.items():
            run = FilteredRun(self.filters, end) if self.filters else None
            before = self.ledgers.get(partition, Ledger())
            moved[partition] = before.moved(self.first_pending.get(partition, end), run)
        return moved

    async def _read_and_publish(self, reader: DlqReader) -> None:
        try:
            async for batch in reader.batches():
                for record in batch:
                    chosen = self._choose(record)
                    if chosen is not None:
                        await self._publish(record, *chosen)
                self.progress(self.summary.read, reader.total(self.summary.read))
            await self.window.drain()
        except BrokerError as exc:
            raise ReplayIncompleteError(self.summary.dlq_topic, self.summary.group, str(exc)) from exc

    def _choose(self, record: Record) -> tuple[DeadLetter, str] | None:
        """The dead letter to replay and its target, or None (counted as skipped, filtered out, or replayed)."""
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
            return None
        if letter.value_omitted is not None:
            s.skipped_value_omitted += 1
            log.warning(
                "skipping %s: it was too large to dead-letter whole, so its value (%d bytes) was left out; the "
                "original is %s[%d]@%d while retention keeps it",
                record.where,
                letter.value_omitted,
                letter.original_topic,
                letter.original_partition,
                letter.original_offset,
                extra={"event": "dlq_replay_value_omitted", "dlq_topic": s.dlq_topic, "offset": record.offset},
            )
            return None
        replayed_before = self.ledgers.get(record.partition, Ledger()).covers(record.offset, letter.fields)
        if not matches(letter, self.filters):
            if not replayed_before:  # the group's offset must not pass it
                s.left_for_later += 1
                self.first_pending.setdefault(record.partition, record.offset)
            return None
        if replayed_before and not self.from_beginning:
            s.already_replayed += 1
            return None
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
        return letter, target

    async def _publish(self, record: Record, letter: DeadLetter, target: str) -> None:
        if self.producer is None:
            return
        headers = replay_headers(letter, record)
        size = len(letter.key or b"") + len(letter.value or b"") + sum(len(n) + len(v) for n, v in headers)
        await self.window.make_room(size)
        self.window.add(self.producer.send(target, letter.value, key=letter.key, headers=headers), size)

    def _require_target(self, topic: str, hint: str) -> None:
        # checked here, because producing to a missing topic auto-creates it on some brokers (with the
        # broker's default partition count, which would move keys off their partitions)
        if topic not in self.topics:
            raise TopicNotFoundError(topic, "target topic", f"{hint}. Nothing was committed")

    async def _close_producer(self) -> None:
        if self.producer is not None:
            await self.producer.close()
        self.window.abandon()
