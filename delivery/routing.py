"""Who gets an event: the routing each topic declares in the topic catalog, under ``[topics."T".delivery]``.

    [topics."chat.responses".delivery]
    recipient = "userId"              # a string field: its one recipient
    conversation = "conversationId"   # optional: lets a client stream one chat (?conversation=)
    event_id = "eventId"              # optional: the id clients dedupe on

    [topics."meetings.minutes-finalized".delivery]
    recipients = "participants"       # an array-of-strings field: every element is a recipient

The delivery node decodes each event into its topic's contract (the reader schema), so an event written with an
older schema version has the fields the contract added, at their defaults: a v1 minutes event has no
participants and reaches nobody. Such an event (no recipient, or only empty ones) is counted and logged; with
``without_recipients = "dead-letter"`` it goes to the dead-letter topic instead. An event whose id field is empty
gets a stable id derived from where it was read (``topic/partition/offset``), the same on every redelivery.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hubstream.errors import ContractError
from schemas.contracts import Catalog, Contract


class NoRecipientError(ContractError):
    """An event whose routing names no recipient, on a topic that dead-letters such events."""


@dataclass(frozen=True)
class Route:
    topic: str
    recipient: str | None = None
    recipients: str | None = None
    conversation: str | None = None
    event_id: str | None = None
    without_recipients: Literal["count", "dead-letter"] = "count"

    def recipients_of(self, event: dict[str, Any]) -> list[str]:
        """The event's distinct, non-empty recipients, in the order the event names them."""
        if self.recipient is not None:
            found = [event.get(self.recipient)]
        else:
            found = list(event.get(self.recipients or "") or [])
        return list(dict.fromkeys(r for r in found if isinstance(r, str) and r))

    def event_id_of(self, event: dict[str, Any], partition: int, offset: int) -> str:
        value = event.get(self.event_id) if self.event_id else None
        return value if isinstance(value, str) and value else f"{self.topic}/{partition}/{offset}"

    def conversation_of(self, event: dict[str, Any]) -> str | None:
        value = event.get(self.conversation) if self.conversation else None
        return None if value is None else str(value)


def routed_topics(topics_file: Path) -> list[str]:
    """The catalog's topics that declare delivery routing."""
    data = tomllib.loads(topics_file.read_text(encoding="utf-8")).get("topics", {})
    return [topic for topic, entry in data.items() if "delivery" in entry]


def load_routes(catalog: Catalog, topics_file: Path, topics: list[str]) -> dict[str, Route]:
    """The routes of the topics a delivery node consumes; a topic without one is a configuration error."""
    data = tomllib.loads(topics_file.read_text(encoding="utf-8")).get("topics", {})
    routes = {}
    for topic in topics:
        entry = data.get(topic, {}).get("delivery")
        if entry is None:
            raise ContractError(
                f"topic {topic!r} has no delivery routing in {topics_file}: add a "
                f'[topics."{topic}".delivery] table naming its recipient field'
            )
        routes[topic] = _route(topic, entry, catalog.contract_for(topic), topics_file)
    return routes


def _route(topic: str, entry: dict[str, Any], contract: Contract, path: Path) -> Route:
    where = f'{path}: [topics."{topic}".delivery]'
    unknown = set(entry) - {"recipient", "recipients", "conversation", "event_id", "without_recipients"}
    if unknown:
        raise ContractError(f"{where} has unknown keys {sorted(unknown)}")
    if ("recipient" in entry) == ("recipients" in entry):
        raise ContractError(f"{where} needs exactly one of recipient (a string field) or recipients (an array)")
    if entry.get("without_recipients", "count") not in ("count", "dead-letter"):
        raise ContractError(f"{where}: without_recipients is count or dead-letter")
    for key, wanted in (
        ("recipient", "string"),
        ("recipients", "array"),
        ("conversation", None),
        ("event_id", "string"),
    ):
        name = entry.get(key)
        if name is None:
            continue
        field = contract.field(name)
        if field is None:
            raise ContractError(f"{where}: {key} = {name!r} is not a field of {contract.name}")
        if wanted is not None and not _is(field["type"], wanted):
            raise ContractError(f"{where}: {key} = {name!r} must be a {wanted} field of {contract.name}")
    return Route(
        topic,
        entry.get("recipient"),
        entry.get("recipients"),
        entry.get("conversation"),
        entry.get("event_id"),
        entry.get("without_recipients", "count"),
    )


def _is(avro_type: Any, wanted: str) -> bool:
    if wanted == "string":
        return avro_type == "string" or (isinstance(avro_type, dict) and avro_type.get("type") == "string")
    return isinstance(avro_type, dict) and avro_type.get("type") == "array" and avro_type.get("items") == "string"
