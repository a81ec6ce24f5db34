"""Which offset may be committed: never past a record that is still being processed."""

from __future__ import annotations


class PartitionOffsets:
    """Tracks the records of one partition from dispatch to completion.

    Records are dispatched in offset order but may finish out of order (key-ordered concurrency).
    Everything dispatched below the lowest record still in flight has finished, so that lowest
    offset is the commit point; with nothing in flight it is one past the last dispatched record.
    Gaps in offsets (transaction markers, compaction) need no special case.
    """

    def __init__(self) -> None:
        self._in_flight: set[int] = set()
        self._last_dispatched: int | None = None
        self._committed: int | None = None

    def start_at(self, offset: int) -> None:
        """Consumption resumes at `offset` without reading what comes before it (e.g. a sink already holds it):
        with nothing dispatched yet, `offset` becomes the commit point."""
        if self._last_dispatched is None and not self._in_flight:
            self._last_dispatched = offset - 1

    def started(self, offset: int) -> None:
        self._in_flight.add(offset)
        self._last_dispatched = offset

    def finished(self, offset: int) -> None:
        self._in_flight.discard(offset)

    def seen(self, offset: int) -> bool:
        """Whether a record at this offset was dispatched already (a re-fetch after a quick revoke and assign)."""
        return self._last_dispatched is not None and offset <= self._last_dispatched

    @property
    def commit_point(self) -> int | None:
        if self._in_flight:
            return min(self._in_flight)
        return None if self._last_dispatched is None else self._last_dispatched + 1

    @property
    def committable(self) -> int | None:
        """Offset to commit now, or None when it would not move the committed position."""
        point = self.commit_point
        return None if point is None or point == self._committed else point

    @property
    def committed(self) -> int | None:
        return self._committed

    def mark_committed(self, offset: int) -> None:
        self._committed = offset

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
