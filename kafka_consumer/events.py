"""What a handler receives: the decoded event and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConsumedEvent:
    value: dict[str, Any]
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None
    schema_id: str
    schema_name: str
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode(errors="replace")
