"""Test events for a topic: an example that fits its contract, changed field by field, published and acknowledged.

For ``hubstream.meetings.MinutesFinalized`` the example is seed 003's ``MINUTES_FINALIZED`` test event; for any
other contract one is built from the schema (each field's default, else a plausible value of its type). Every
event gets a fresh ``eventId`` when the contract has one, since clients dedupe on it. Events are natural JSON
(``schemas.natural``); they go through the producer library (validation, Avro, the registry's schema id in the
``content-type`` header), exactly as the producer API sends them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from hubstream import kafka_config
from hubstream.errors import ContractError, EventValidationError
from hubstream.settings import Settings
from kafka_producer.producer import AsyncProducer
from kafka_producer.publisher import EventPublisher, Published
from schemas import model as m
from schemas.contracts import Catalog, Contract
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde

MINUTES_FINALIZED = "hubstream.meetings.MinutesFinalized"

# seed 003's test event, in the contract's shape (its `data` fields are the record's own fields)
MINUTES_FINALIZED_EXAMPLE: dict[str, Any] = {
    "eventType": "MINUTES_FINALIZED",
    "meetingId": "test-meeting-001",
    "title": "테스트 회의",
    "minutesId": "test-minutes-001",
    "sections": [
        {
            "sectionId": "section-001",
            "type": "DISCUSSION",
            "title": "논의 사항",
            "content": "테스트 논의 내용입니다.",
            "order": 1,
            "verified": True,
        }
    ],
    "participants": ["test-user-1"],
}


class FieldAssignmentError(ContractError):
    def __init__(self, assignment: str, problem: str) -> None:
        super().__init__(f"--set {assignment!r}: {problem}; use FIELD=VALUE, e.g. title=Weekly or sections.0.order=2")


def example_event(contract: Contract) -> dict[str, Any]:
    """An event that fits the contract, as natural JSON, with a fresh eventId when it has one."""
    if contract.name == MINUTES_FINALIZED:
        event = copy.deepcopy(MINUTES_FINALIZED_EXAMPLE)
    else:
        root = m.parse(contract.schema).root
        event = _example(root, root.name if isinstance(root, m.Named) else "event", set())
    return with_event_id(contract, event)


def with_event_id(contract: Contract, event: dict[str, Any]) -> dict[str, Any]:
    if contract.field("eventId") is not None and not event.get("eventId"):
        event["eventId"] = str(uuid.uuid4())
    return event


def _example(schema: m.AvroType, name: str, seen: set[str]) -> Any:
    if isinstance(schema, m.Record):
        if schema.fullname in seen:  # a recursive record: stop where the schema allows
            return None
        inner = seen | {schema.fullname}
        return {f.name: (f.default if f.has_default else _example(f.type, f.name, inner)) for f in schema.fields}
    if isinstance(schema, m.Union):
        branches = [b for b in schema.branches if not m.is_null(b)]
        return _example(branches[0], name, seen) if branches else None
    if isinstance(schema, m.Array):
        item = _example(schema.items, name, seen)
        return [] if item is None else [item]
    if isinstance(schema, m.Map):
        return {"key": _example(schema.values, name, seen)}
    if isinstance(schema, m.Enum):
        return schema.symbols[0]
    if isinstance(schema, m.Fixed):
        return "A" * ((schema.size * 4 + 2) // 3) if schema.logical is None else "0"
    return _primitive(schema, name)


def _primitive(schema: m.Primitive, name: str) -> Any:
    logical = schema.logical.name if schema.logical is not None else None
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"):
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if logical == "date":
        return date.today().isoformat()
    if logical in ("time-millis", "time-micros"):
        return "12:00:00"
    if logical == "uuid":
        return str(uuid.uuid4())
    if logical == "decimal":
        return "0"
    return {
        "null": None,
        "boolean": True,
        "int": 1,
        "long": 1,
        "float": 1.0,
        "double": 1.0,
        "bytes": "",
        "string": f"test-{name}",
    }[schema.name]


def with_assignments(contract: Contract, event: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """`FIELD=VALUE` changes, FIELD a dotted path (`sections.0.title`). VALUE is taken as text where the field is
    a string, an enum or a uuid, and as JSON otherwise (`order=2`, `verified=false`, `participants=["a","b"]`)."""
    root = m.parse(contract.schema).root
    for assignment in assignments:
        path_text, sep, text = assignment.partition("=")
        if not sep or not path_text:
            raise FieldAssignmentError(assignment, "no '='")
        path = path_text.split(".")
        _assign(event, path, _value(_type_at(root, path), text), assignment)
    return event


def _type_at(schema: m.AvroType, path: list[str]) -> m.AvroType | None:
    for step in path:
        if isinstance(schema, m.Union):
            branches = [b for b in schema.branches if not m.is_null(b)]
            if len(branches) != 1:
                return None
            schema = branches[0]
        if isinstance(schema, m.Record):
            found = next((f.type for f in schema.fields if f.name == step), None)
            if found is None:
                return None
            schema = found
        elif isinstance(schema, m.Array):
            schema = schema.items
        elif isinstance(schema, m.Map):
            schema = schema.values
        else:
            return None
    return schema


def _value(schema: m.AvroType | None, text: str) -> Any:
    if isinstance(schema, m.Union):
        branches = [b for b in schema.branches if not m.is_null(b)]
        schema = branches[0] if len(branches) == 1 and text != "null" else None
    if isinstance(schema, m.Enum) or (isinstance(schema, m.Primitive) and schema.name == "string"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # the contract's validation then says what the field needs


def _assign(target: Any, path: list[str], value: Any, assignment: str) -> None:
    for index, step in enumerate(path):
        last = index == len(path) - 1
        if isinstance(target, list):
            if not step.isdigit() or int(step) >= len(target):
                raise FieldAssignmentError(assignment, f"{step!r} is not an index of a {len(target)}-item list")
            if last:
                target[int(step)] = value
            else:
                target = target[int(step)]
        elif isinstance(target, dict):
            if last:
                target[step] = value
            else:
                target = target.setdefault(step, {})
        else:
            raise FieldAssignmentError(assignment, f"{'.'.join(path[:index])} is not a record, map or list")


def prefixed(error: EventValidationError, where: str) -> EventValidationError:
    return EventValidationError(error.schema_name, [(f"{where}: {path}", problem) for path, problem in error.problems])


async def publish_events(
    settings: Settings,
    topic: str,
    events: Sequence[dict[str, Any]],
    *,
    rate: float | None = None,
    labels: Sequence[str] | None = None,
    on_sent: Callable[[Published], None] | None = None,
) -> list[Published]:
    """Validate every event (nothing is sent if one does not fit), then publish them, `rate` per second at most,
    each acknowledged by the broker. `labels` name the events in validation errors (e.g. `line 3`)."""
    catalog = Catalog.from_settings(settings)
    with SchemaRegistry.from_settings(settings) as registry:
        async with AsyncProducer(kafka_config.producer_config(settings)) as producer:
            publisher = EventPublisher(
                catalog, AvroSerde(registry), producer, delivery_timeout_s=settings.producer.delivery_timeout_ms / 1000
            )
            for index, event in enumerate(events):
                try:
                    publisher.prepare(topic, event)
                except EventValidationError as exc:
                    raise prefixed(exc, labels[index] if labels else f"event {index + 1}") from exc
            return await _paced(publisher, topic, events, rate, on_sent)


async def _paced(
    publisher: EventPublisher,
    topic: str,
    events: Sequence[dict[str, Any]],
    rate: float | None,
    on_sent: Callable[[Published], None] | None,
) -> list[Published]:
    async def one(event: dict[str, Any]) -> Published:
        published = await publisher.publish(topic, event)
        if on_sent is not None:
            on_sent(published)
        return published

    started = time.monotonic()
    tasks = []
    for index, event in enumerate(events):
        if rate:
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(event)))
    return list(await asyncio.gather(*tasks))
