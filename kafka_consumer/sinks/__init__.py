"""Sinks: where the consumer worker puts records instead of calling a handler, committing only what is durable.

The worker drives a sink from its poll thread (rebalance callbacks included), so a sink need not be thread-safe:

    on assignment   start_offsets(): seek to what it returns; it also cleans up leftovers of a crash
    per record      write(), in offset order within a partition
    regularly       maybe_roll(), then commit durable()
    on revocation   flush(revoked), commit their durable() offsets, then release(revoked) (it forgets them)
    on shutdown     flush(), commit durable(), close()

Commit nothing a sink did not report in durable(): that is what makes its output survive a crash.
"""

from __future__ import annotations

from typing import Protocol

from kafka_consumer.events import ConsumedEvent


class Sink(Protocol):
    def start_offsets(
        self, partitions: list[tuple[str, int]], committed: dict[tuple[str, int], int | None]
    ) -> dict[tuple[str, int], int]:
        """Called on assignment before any record of these partitions is fetched. Returns, per partition, the offset
        to start reading from when it differs from `committed` (e.g. the archive already holds offsets beyond the
        committed one because the process died after the file rename but before the commit). Also deletes leftovers
        (temporary files) of those partitions."""
        ...

    def write(self, event: ConsumedEvent, raw_value: bytes | None, writer_schema: dict) -> None:
        """Accept one record (records of a partition arrive in offset order)."""
        ...

    def durable(self) -> dict[tuple[str, int], int]:
        """Per partition, the next offset after the last record that is durably in the archive (commit point)."""
        ...

    def flush(self, partitions: list[tuple[str, int]] | None = None) -> None:
        """Make everything accepted so far durable (roll the open files); None = all partitions."""
        ...

    def release(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions were revoked: flush them, then forget their state (another member may own them next)."""
        ...

    def discard(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions were lost (another member may already own them): forget them without flushing."""
        ...

    def maybe_roll(self) -> None:
        """Called regularly by the worker: roll files that exceeded their size or age."""
        ...

    def close(self) -> None: ...
