"""What ``dlq replay`` reports when it cannot do what was asked, or stopped before its commit."""

from __future__ import annotations

from collections.abc import Iterable

from hubstream.errors import BrokerError, HubstreamError


class ReplayError(HubstreamError):
    """``dlq replay`` was asked for something it cannot do; nothing was committed."""


class UnknownFilterError(ReplayError):
    def __init__(self, spec: str, problem: str, names: Iterable[str]) -> None:
        super().__init__(f"--filter {spec!r}: {problem}; use NAME=VALUE with NAME one of {', '.join(names)}")


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
