"""The consumer groups hubstream workers have used, remembered under the state dir (``<state_dir>/groups/``).

Event Hubs' ListGroups leaves out groups with no members, although their committed offsets stay, so an idle
group would vanish from ``hubstream groups list`` exactly when its lag matters. Every ``hubstream consume`` and
``hubstream deliver`` remembers its group here when it starts, with the bootstrap servers it used; ``groups
list`` asks the broker about the ones remembered for the cluster it is pointed at.

One small JSON file per group (written to a temporary name, then renamed), so workers starting at the same
time never need a lock and a torn write is impossible. Chosen over a compacted topic: nothing to create on the
namespace (Event Hubs' Kafka endpoint cannot create topics; compaction needs Standard or above), and nothing
a worker must be allowed to write; the cost is that it knows only the workers that share this state dir.
Remembering is best-effort: a read-only state dir is logged, never a reason for a worker not to start.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from hubstream import kafka_config
from hubstream.errors import HubstreamError
from hubstream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RememberedGroup:
    group: str
    topics: list[str]
    last_started: datetime | None
    host: str | None
    cluster: str | None = None  # the bootstrap servers the worker used


class GroupRegistry:
    """The groups remembered under ``state_dir``; with ``cluster`` (the bootstrap servers) only that cluster's."""

    def __init__(self, state_dir: Path, cluster: str | None = None) -> None:
        self.directory = state_dir / "groups"
        self.cluster = cluster

    @classmethod
    def for_settings(cls, settings: Settings) -> GroupRegistry:
        try:
            cluster = str(kafka_config.client_config(settings)["bootstrap.servers"])
        except HubstreamError:
            cluster = None
        return cls(settings.state_dir, cluster)

    def remember(self, group: str, topics: list[str]) -> None:
        """Record that a worker of `group` started on `topics` (best-effort)."""
        entry = {
            "group": group,
            "cluster": self.cluster,
            "topics": sorted(set(topics) | set(self._topics(group))),
            "lastStarted": datetime.now(UTC).isoformat(),
            "host": socket.gethostname(),
        }
        path = self._path(group)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(entry), encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            log.warning("could not remember group %s in %s: %s", group, self.directory, exc)

    def groups(self) -> list[RememberedGroup]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            entry = _read(path)
            if entry is not None and (self.cluster is None or entry.cluster in (None, self.cluster)):
                found.append(entry)
        return found

    def forget(self, group: str) -> bool:
        try:
            self._path(group).unlink()
        except FileNotFoundError:
            return False
        return True

    def _topics(self, group: str) -> list[str]:
        """The topics remembered for the group on this cluster (the same name on another starts over)."""
        entry = _read(self._path(group))
        if entry is None or (self.cluster is not None and entry.cluster not in (None, self.cluster)):
            return []
        return entry.topics

    def _path(self, group: str) -> Path:
        return self.directory / f"{quote(group, safe='')}.json"


def _read(path: Path) -> RememberedGroup | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        started = data.get("lastStarted")
        return RememberedGroup(
            group=str(data.get("group") or unquote(path.stem)),
            topics=[str(t) for t in data.get("topics", [])],
            last_started=datetime.fromisoformat(started) if started else None,
            host=data.get("host"),
            cluster=data.get("cluster"),
        )
    except FileNotFoundError:  # a group's first start: nothing remembered yet
        return None
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
