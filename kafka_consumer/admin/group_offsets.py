"""Moving a consumer group's committed offsets ("reset the checkpoint to reprocess").

Only for a group with no active members: a live member would overwrite the reset with its next commit. A group
with no members at all, which Event Hubs reports as ``Dead``, is what a reset is for (see ``_refuse_if_active``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ListOffsetsResultInfo, OffsetSpec

from hubstream.errors import BrokerError, HubstreamError

_TIMEOUT_S = 15.0

ResetTarget = Literal["earliest", "latest", "datetime", "offset"]


class ActiveGroupError(HubstreamError):
    def __init__(self, group: str, detail: str) -> None:
        super().__init__(
            f"group {group!r} has active members ({detail}); stop its consumers first, "
            "then reset its offsets (a live member would overwrite the reset with its next commit)"
        )


@dataclass(frozen=True)
class OffsetChange:
    topic: str
    partition: int
    current: int | None  # None: nothing committed yet
    new: int


def plan_reset(
    admin: AdminClient,
    group: str,
    topic: str,
    to: ResetTarget,
    *,
    at: datetime | None = None,
    offset: int | None = None,
) -> list[OffsetChange]:
    """Work out the new offset of every partition of `topic` for `group`, without changing anything."""
    partitions = _partitions(admin, topic)
    current = _committed(admin, group, topic, partitions)
    if to == "offset":
        if offset is None or offset < 0:
            raise HubstreamError("--to offset needs --offset N with N >= 0")
        targets = dict.fromkeys(partitions, offset)
    else:
        targets = _list_offsets(admin, topic, partitions, _spec(to, at))
    return [OffsetChange(topic, p, current.get(p), targets[p]) for p in partitions]


def _spec(to: ResetTarget, at: datetime | None) -> OffsetSpec:
    spec: OffsetSpec  # confluent-kafka does not annotate what its constructors return
    if to == "earliest":
        spec = OffsetSpec.earliest()
    elif to == "latest":
        spec = OffsetSpec.latest()
    elif at is None:
        raise HubstreamError("--to datetime needs --datetime, e.g. 2026-01-31T09:00:00Z")
    else:
        spec = OffsetSpec.for_timestamp(int(at.timestamp() * 1000))
    return spec


def apply_reset(admin: AdminClient, group: str, changes: list[OffsetChange]) -> None:
    """Commit the planned offsets; refuses (ActiveGroupError) when the group has members."""
    _refuse_if_active(admin, group)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(c.topic, c.partition, c.new) for c in changes])
    future = admin.alter_consumer_group_offsets([request])[group]
    try:
        result = future.result(_TIMEOUT_S)
    except KafkaException as exc:
        raise _alter_error(group, exc.args[0]) from exc
    failed = [tp for tp in result.topic_partitions if tp.error is not None]
    if failed:
        first = failed[0].error
        if first.code() == KafkaError.UNKNOWN_MEMBER_ID:
            raise ActiveGroupError(group, "the broker refused the change for live members")
        raise BrokerError(f"could not reset offsets of {group!r}: {first.str()}")


def _refuse_if_active(admin: AdminClient, group: str) -> None:
    """Refuse only a group with members. The state is not the test: Event Hubs reports a group nothing holds as
    ``Dead`` (not ``Empty``), and Kafka 4 answers GROUP_ID_NOT_FOUND for one; both may be reset."""
    try:
        description = admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)[group].result(_TIMEOUT_S)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError.GROUP_ID_NOT_FOUND:
            return  # no such group on the coordinator: nothing can overwrite the reset
        raise BrokerError(f"could not describe group {group!r} before resetting it: {error.str()}") from exc
    if description.members:
        raise ActiveGroupError(group, f"{len(description.members)} member(s)")
    # Some brokers leave `members` empty; a live group then shows up as UNKNOWN_MEMBER_ID on the change.


def _alter_error(group: str, error: KafkaError) -> HubstreamError:
    if error.code() in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS, KafkaError.NON_EMPTY_GROUP):
        return ActiveGroupError(group, error.str())
    return BrokerError(f"could not reset offsets of {group!r}: {error.str()}")


def _partitions(admin: AdminClient, topic: str) -> list[int]:
    metadata = admin.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise HubstreamError(f"topic {topic!r} does not exist")
    return sorted(metadata.partitions)


def _committed(admin: AdminClient, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    result = admin.list_consumer_group_offsets([request])[group].result(_TIMEOUT_S)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def _list_offsets(admin: AdminClient, topic: str, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
    futures = admin.list_offsets({TopicPartition(topic, p): spec for p in partitions}, request_timeout=_TIMEOUT_S)
    targets = {}
    for tp, future in futures.items():
        info: ListOffsetsResultInfo = future.result(_TIMEOUT_S)
        # -1: no record at or after the timestamp, i.e. the end of the partition
        targets[tp.partition] = info.offset if info.offset >= 0 else _end(admin, topic, tp.partition)
    return targets


def _end(admin: AdminClient, topic: str, partition: int) -> int:
    tp = TopicPartition(topic, partition)
    latest: OffsetSpec = OffsetSpec.latest()
    info: ListOffsetsResultInfo = admin.list_offsets({tp: latest}, request_timeout=_TIMEOUT_S)[tp].result(_TIMEOUT_S)
    return info.offset
