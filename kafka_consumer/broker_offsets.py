"""What the broker knows about a worker's partitions: committed offsets, and the lag metrics built from them.

Lag is the high watermark that the last fetch response carried (every broker sends it; no query is made) minus
the committed offset ("checkpoint lag"), and minus the worker's position for processing lag.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hubstream.errors import BrokerError
from kafka_consumer.metrics import WorkerMetrics
from kafka_consumer.partitions import OwnedPartitions

log = logging.getLogger(__name__)

TP = tuple[str, int]
_COMMITTED_ATTEMPTS = 3


def committed_offsets(consumer: Consumer, group: str, tps: list[TP]) -> dict[TP, int | None]:
    """The group's committed offsets (None where none), asked a few times: right after a rebalance the coordinator
    may not answer yet. Raises BrokerError when it never does."""
    partitions = [TopicPartition(*tp) for tp in tps]
    for attempt in range(1, _COMMITTED_ATTEMPTS + 1):
        try:
            answers = consumer.committed(partitions, timeout=15)
            return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in answers}
        except KafkaException as exc:
            if attempt == _COMMITTED_ATTEMPTS:
                names = ", ".join(f"{t}[{p}]" for t, p in tps)
                raise BrokerError(
                    f"group {group}: the committed offsets of {names} could not be read "
                    f"({exc.args[0].str()}); the worker cannot start them safely"
                ) from exc
            time.sleep(attempt)
    raise AssertionError("unreachable")


def observe_lag(group: str, consumer: Consumer, owned: OwnedPartitions, metrics: WorkerMetrics) -> None:
    """Update the lag, pending and assignment gauges of every owned partition."""
    _learn_committed(group, consumer, owned)
    paused = 0
    for (topic, partition), state in owned:
        paused += state.paused
        labels = (group, topic, str(partition))
        metrics.pending.labels(*labels).set(state.offsets.in_flight)
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        if high < 0:
            continue  # nothing fetched yet
        checkpoint = state.offsets.committed if state.offsets.committed is not None else state.first_offset
        if checkpoint is not None:
            metrics.lag.labels(*labels).set(max(0, high - checkpoint))
        position = state.offsets.commit_point
        position = checkpoint if position is None else position
        if position is not None:
            metrics.processing_lag.labels(*labels).set(max(0, high - position))
    metrics.assigned.labels(group).set(len(owned))
    metrics.paused.labels(group).set(paused)


def _learn_committed(group: str, consumer: Consumer, owned: OwnedPartitions) -> None:
    """Ask once per assignment for the committed offset of partitions that have fetched nothing yet."""
    unknown = [
        tp
        for tp, state in owned
        if not state.asked_committed and state.first_offset is None and state.offsets.committed is None
    ]
    if not unknown:
        return
    try:
        answers = consumer.committed([TopicPartition(*tp) for tp in unknown], timeout=5)
    except KafkaException as exc:
        log.debug("group %s: committed offsets not known yet: %s", group, exc)
        return
    for answer in answers:
        state = owned.get((answer.topic, answer.partition))
        if state is None:
            continue
        state.asked_committed = True
        if answer.error is None and answer.offset >= 0 and state.offsets.committed is None:
            state.offsets.mark_committed(answer.offset)
