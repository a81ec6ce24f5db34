"""What the broker knows about consumer groups: members and the partitions each owns, committed offsets, lag.

Kafka's answer to seed 003's ownership records: the group coordinator (the service, on Event Hubs) assigns
each partition to one member; a member with none is a standby that takes over when an owner leaves or stops
heartbeating. The committed offset is the group's checkpoint, lag is the end offset minus it.

Time since the last commit: Kafka's OffsetFetch does not return when an offset was committed, and hubstream's
workers commit no metadata, so it is read from the record just before the committed offset (the last one the
group finished): now minus that record's timestamp. The commit came after the record was written, so the real
time since the commit is at most this (``checkpoint_at`` is a lower bound of the commit time).

Groups on Event Hubs that have no members are reported as ``Dead`` by DescribeGroups and are missing from
ListGroups, though their offsets remain; ``list_groups`` also asks about the groups hubstream workers have
used (``group_registry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition

from kafka_consumer.admin.cluster import TP, Cluster
from kafka_consumer.admin.partition_info import record_time

_NOT_FOUND = {KafkaError.GROUP_ID_NOT_FOUND, KafkaError.GROUP_AUTHORIZATION_FAILED}


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str
    partitions: list[TP]
    instance_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "memberId": self.member_id,
            "clientId": self.client_id,
            "host": self.host,
            "instanceId": self.instance_id,
            "partitions": [{"topic": t, "partition": p} for t, p in self.partitions],
        }


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    owner: str | None  # member id
    committed: int | None
    end: int
    lag: int | None
    checkpoint_at: datetime | None  # the timestamp of the last record the group committed past

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "owner": self.owner,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
            "checkpointAt": self.checkpoint_at.isoformat() if self.checkpoint_at else None,
        }


@dataclass(frozen=True)
class GroupDescription:
    group: str
    state: str
    assignor: str | None
    coordinator: str | None
    members: list[Member]
    partitions: list[PartitionLag]

    @property
    def standby(self) -> list[Member]:
        """Members that own no partition: they wait to take over one."""
        return [m for m in self.members if not m.partitions]

    @property
    def lag(self) -> int | None:
        known = [p.lag for p in self.partitions if p.lag is not None]
        return sum(known) if known else None

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "assignor": self.assignor,
            "coordinator": self.coordinator,
            "members": [m.as_json() for m in self.members],
            "standby": [m.member_id for m in self.standby],
            "partitions": [p.as_json() for p in self.partitions],
            "lag": self.lag,
        }


@dataclass(frozen=True)
class GroupSummary:
    group: str
    state: str
    members: int
    topics: list[str]
    lag: int | None
    listed: bool  # in the broker's ListGroups answer
    remembered: bool  # in the local registry of groups hubstream workers used

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "topics": self.topics,
            "lag": self.lag,
            "listed": self.listed,
            "remembered": self.remembered,
        }


@dataclass
class _Membership:
    state: str = "Dead"
    assignor: str | None = None
    coordinator: str | None = None
    members: list[Member] = field(default_factory=list)


def describe_group(
    cluster: Cluster, group: str, topics: Iterable[str] = (), *, commit_times: bool = True
) -> GroupDescription:
    """Members, ownership, committed offsets and lag of every partition of the topics the group commits to,
    owns, or that are named in `topics`."""
    membership = _memberships(cluster, [group])[group]
    owners = {tp: m.member_id for m in membership.members for tp in m.partitions}
    everything = cluster.topics()
    known = {t for t, _ in owners} | set(topics)
    committed = _committed(cluster, group, [(t, p) for t in known for p in everything.get(t, [])])
    names = {t for t, _ in committed} | known
    tps = sorted({(t, p) for t in names for p in everything.get(t, [])} | committed.keys() | owners.keys())
    bounds = cluster.bounds(tp for tp in tps if tp[0] in everything)
    times = _checkpoint_times(cluster, committed, bounds) if commit_times else {}
    rows = []
    for tp in tps:
        end = bounds[tp].latest if tp in bounds else 0
        done = committed.get(tp)
        lag = max(0, end - done) if done is not None else None
        rows.append(PartitionLag(tp[0], tp[1], owners.get(tp), done, end, lag, times.get(tp)))
    return GroupDescription(
        group, membership.state, membership.assignor, membership.coordinator, membership.members, rows
    )


def list_groups(
    cluster: Cluster, remembered: dict[str, list[str]] | None = None, on_group: Callable[[str], None] | None = None
) -> list[GroupSummary]:
    """Every group ListGroups names plus the remembered ones (group -> the topics its workers read) that have
    committed offsets or members, with state, member count and total lag."""
    remembered = remembered or {}
    try:
        listing = cluster.admin.list_consumer_groups(request_timeout=cluster.wait_s).result(cluster.wait_s + 1)
    except KafkaException as exc:
        raise cluster.failure("could not list the consumer groups", exc) from exc
    listed = {g.group_id for g in listing.valid}
    remembered_set = set(remembered)
    names = sorted(listed | remembered_set)
    memberships = _memberships(cluster, names)
    everything = cluster.topics() if remembered else {}
    commits: dict[str, dict[TP, int]] = {}
    for name in names:
        asked = [(t, p) for t in remembered.get(name, []) for p in everything.get(t, [])]
        commits[name] = _committed(cluster, name, asked)
        if on_group is not None:
            on_group(name)
    bounds = cluster.bounds(tp for offsets in commits.values() for tp in offsets)
    summaries = []
    for name in names:
        offsets = commits[name]
        if name not in listed and not offsets and not memberships[name].members:
            continue  # remembered, but nothing of it on this cluster: no offsets, nobody holds it
        lags = [max(0, bounds[tp].latest - offset) for tp, offset in offsets.items() if tp in bounds]
        summaries.append(
            GroupSummary(
                group=name,
                state=memberships[name].state,
                members=len(memberships[name].members),
                topics=sorted({t for t, _ in offsets}),
                lag=sum(lags) if lags else None,
                listed=name in listed,
                remembered=name in remembered_set,
            )
        )
    return summaries


def _memberships(cluster: Cluster, groups: list[str]) -> dict[str, _Membership]:
    if not groups:
        return {}
    futures = cluster.admin.describe_consumer_groups(groups, request_timeout=cluster.wait_s)
    found = {}
    for group, future in futures.items():
        try:
            description = future.result(cluster.wait_s + 1)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() not in _NOT_FOUND:
                raise cluster.failure(f"could not describe group {group!r}", exc) from exc
            found[group] = _Membership()  # Kafka 4's answer for a group nothing holds: not found, i.e. Dead
            continue
        coordinator = description.coordinator
        found[group] = _Membership(
            state=state_name(description.state),
            assignor=description.partition_assignor or None,
            coordinator=f"{coordinator.host}:{coordinator.port}" if coordinator is not None else None,
            members=[_member(m) for m in description.members],
        )
    return found


def _member(member: Any) -> Member:
    assignment = member.assignment.topic_partitions if member.assignment is not None else []
    return Member(
        member_id=member.member_id,
        client_id=member.client_id,
        host=member.host,
        partitions=sorted((tp.topic, tp.partition) for tp in assignment),
        instance_id=member.group_instance_id,
    )


def state_name(state: Any) -> str:
    """ConsumerGroupState.PREPARING_REBALANCE -> "PreparingRebalance"; Kafka's own spelling."""
    name = getattr(state, "name", str(state))
    return "".join(part.capitalize() for part in name.split("_"))


def _committed(cluster: Cluster, group: str, known: list[TP] | None = None) -> dict[TP, int]:
    """Every partition the group has committed an offset for: an OffsetFetch for all topics, then one for the
    `known` partitions it did not name (in case a broker answers the all-topics form with nothing)."""
    found = _offset_fetch(cluster, group, None)
    missing = [tp for tp in known or [] if tp not in found]
    if missing:
        found.update(_offset_fetch(cluster, group, missing))
    return found


def _offset_fetch(cluster: Cluster, group: str, tps: list[TP] | None) -> dict[TP, int]:
    partitions = None if tps is None else [TopicPartition(t, p) for t, p in tps]
    request = ConsumerGroupTopicPartitions(group, partitions)
    try:
        result = cluster.admin.list_consumer_group_offsets([request], request_timeout=cluster.wait_s)[group].result(
            cluster.wait_s + 1
        )
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() in _NOT_FOUND:
            return {}
        raise cluster.failure(f"could not read the committed offsets of {group!r}", exc) from exc
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def _checkpoint_times(cluster: Cluster, committed: dict[TP, int], bounds: dict[TP, Any]) -> dict[TP, datetime]:
    targets = {tp: offset - 1 for tp, offset in committed.items() if tp in bounds and bounds[tp].earliest <= offset - 1}
    records = cluster.records_at(targets)
    times = {}
    for tp, message in records.items():
        when, _ = record_time(message)
        if when is not None and message.offset() == targets[tp]:
            times[tp] = when
    return times
