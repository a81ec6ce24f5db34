"""What the cluster says about topics, for the operators' tools: partitions, offset bounds, and single records
read by an assigned consumer that never joins a group and never commits.

Every call is bounded (``wait_s``): an unreachable broker is a ``BrokerUnreachableError`` within that wait,
not a hang. Works the same on Apache Kafka and on Event Hubs' Kafka endpoint (metadata, ListOffsets and Fetch
are all the endpoint offers for this; no topic management is needed).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ListOffsetsResultInfo, OffsetSpec

from hubstream import kafka_config
from hubstream.errors import BrokerError, BrokerUnavailableError
from hubstream.settings import Settings

WAIT_S = 10.0
TP = tuple[str, int]

# librdkafka's answers when no broker could be asked at all
_UNREACHABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
}


class NoSuchTopicError(BrokerError):
    def __init__(self, topic: str, known: Iterable[str] = ()) -> None:
        self.topic = topic
        names = sorted(t for t in known if not t.startswith("__"))
        listing = f"; topics on the cluster: {', '.join(names[:20])}" if names else ""
        more = f" (and {len(names) - 20} more)" if len(names) > 20 else ""
        super().__init__(f"topic {topic!r} does not exist on the cluster{listing}{more}")


class BrokerUnreachableError(BrokerUnavailableError):
    def __init__(self, bootstrap: str, wait_s: float, detail: str) -> None:
        super().__init__(
            f"no Kafka broker at {bootstrap} answered within {wait_s:.0f} s ({detail}); check "
            "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS (or the Event Hubs connection string) and that the broker is up"
        )


@dataclass(frozen=True)
class Bounds:
    """A partition's first offset and the offset the next record will get (the high watermark)."""

    earliest: int
    latest: int

    @property
    def span(self) -> int:
        """Offsets between the bounds: the record count unless the topic is compacted or transactional."""
        return max(0, self.latest - self.earliest)


class Cluster:
    """An admin client plus the settings to build assigned readers; use as a context manager."""

    def __init__(self, settings: Settings, *, wait_s: float = WAIT_S) -> None:
        self.settings = settings
        self.wait_s = wait_s
        self.admin = AdminClient(kafka_config.admin_config(settings))
        self.bootstrap = str(kafka_config.client_config(settings)["bootstrap.servers"])

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None  # AdminClient has no close; its futures are all resolved by now

    def unreachable(self, error: KafkaError) -> BrokerUnreachableError | None:
        if error.code() in _UNREACHABLE:
            return BrokerUnreachableError(self.bootstrap, self.wait_s, error.str())
        return None

    def failure(self, action: str, exc: KafkaException) -> BrokerError:
        error: KafkaError = exc.args[0]
        return self.unreachable(error) or BrokerError(f"{action}: {error.str()}")

    def topics(self) -> dict[str, list[int]]:
        """Every topic on the cluster with its partition ids (internal ones left out)."""
        try:
            metadata = self.admin.list_topics(timeout=self.wait_s)
        except KafkaException as exc:
            raise self.failure("could not read the cluster's topics", exc) from exc
        return {
            name: sorted(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None and not name.startswith("__")
        }

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids; NoSuchTopicError when the cluster has no such topic."""
        try:
            metadata = self.admin.list_topics(timeout=self.wait_s)
        except KafkaException as exc:
            raise self.failure(f"could not read the metadata of {topic!r}", exc) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise NoSuchTopicError(topic, metadata.topics)
        return sorted(found.partitions)

    def bounds(self, tps: Iterable[TP]) -> dict[TP, Bounds]:
        """Earliest and latest offset of each partition, two ListOffsets rounds for all of them."""
        wanted = sorted(set(tps))
        if not wanted:
            return {}
        earliest = self._list_offsets(wanted, OffsetSpec.earliest())
        latest = self._list_offsets(wanted, OffsetSpec.latest())
        return {tp: Bounds(earliest[tp], latest[tp]) for tp in wanted}

    def offsets_for_time(self, tps: Iterable[TP], epoch_ms: int) -> dict[TP, int]:
        """The first offset at or after the time, per partition (-1: none, i.e. the end)."""
        return self._list_offsets(sorted(set(tps)), OffsetSpec.for_timestamp(epoch_ms))

    def _list_offsets(self, tps: list[TP], spec: Any) -> dict[TP, int]:
        request = {TopicPartition(t, p): spec for t, p in tps}
        try:
            futures = self.admin.list_offsets(request, request_timeout=self.wait_s)
            answers: dict[TP, int] = {}
            for tp, future in futures.items():
                info: ListOffsetsResultInfo = future.result(self.wait_s + 1)
                answers[(tp.topic, tp.partition)] = info.offset
        except KafkaException as exc:
            raise self.failure("could not list partition offsets", exc) from exc
        return answers

    def reader(self) -> Consumer:
        """A consumer for ``assign`` only: its group id is never joined, committed to or fetched from, so the
        broker never creates a group for it (``tests/test_operator_tools.py`` checks ListGroups)."""
        config = kafka_config.client_config(self.settings)
        config.update(
            {
                # required by the client; never joined or committed to. One fixed id, so even a service that kept
                # a record per id it was asked about would hold one, not one per run.
                "group.id": "hubstream-reader",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "latest",
            }
        )
        config.update(self.settings.kafka.extra)
        config["enable.auto.commit"] = False  # whatever extra says: readers never commit
        return Consumer(config)

    def records_at(self, targets: dict[TP, int]) -> dict[TP, Message]:
        """The record at (or the first after) each target offset, read by one assigned consumer within the wait.

        A partition whose target holds no record (a transaction marker, a compacted gap at the end) is missing
        from the answer.
        """
        wanted = {tp: offset for tp, offset in targets.items() if offset >= 0}
        found: dict[TP, Message] = {}
        ended: set[TP] = set()  # reached the end before any record
        if not wanted:
            return found
        consumer = self.reader()
        try:
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in wanted.items()])
            deadline = time.monotonic() + self.wait_s
            while len(found.keys() | ended) < len(wanted) and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                tp = _where(message)
                if message is None or tp is None or tp in found:
                    continue
                error = message.error()
                if error is None:
                    found[tp] = message
                    consumer.pause([TopicPartition(*tp)])
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(tp)
                elif (problem := self.unreachable(error)) is not None or error.fatal():
                    raise problem or BrokerError(f"reading {tp[0]}[{tp[1]}]: {error.str()}")
        finally:
            consumer.close()
        return found


def _where(message: Message | None) -> TP | None:
    if message is None:
        return None
    topic, partition = message.topic(), message.partition()
    return None if topic is None or partition is None else (topic, partition)
