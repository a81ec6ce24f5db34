"""`hubstream send-test-event`: publish example events (or a file of events) to a topic and print where they went."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hubstream.errors import ContractError
from hubstream_cli.common import StateDirOption, console
from hubstream_cli.inspecting import JsonOption, WaitOption, print_json, progress, settings_from
from kafka_consumer.admin.cluster import WAIT_S, Cluster
from kafka_consumer.admin.example_events import example_event, publish_events, with_assignments
from kafka_producer.publisher import Published
from schemas.contracts import Catalog, Contract


def send_test_event(
    topic: Annotated[
        str,
        typer.Option("--topic", "-t", metavar="TOPIC", help="Catalog topic, e.g. meetings.minutes-finalized"),
    ],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many example events to send")] = 1,
    rate: Annotated[
        float | None, typer.Option("--rate", "-r", min=0.01, help="At most this many events per second")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="Change a field (repeatable; dotted paths like sections.0.title; JSON for non-string fields)",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", exists=True, dir_okay=False, help="Publish the events of this JSON-lines file instead"
        ),
    ] = None,
    as_json: JsonOption = False,
    wait: WaitOption = WAIT_S,
    state_dir: StateDirOption = None,
) -> None:
    """Publish valid Avro events built from the topic's contract, encoded through the schema registry, and print
    the partition and offset the broker acknowledged for each.

    The example for meetings.minutes-finalized is seed 003's MINUTES_FINALIZED test event; any other topic gets one
    built from its schema; each gets a fresh eventId. With --file, each line is one event (natural JSON), sent as
    written (plus --set).
    """
    settings = settings_from(state_dir)
    catalog = Catalog.from_settings(settings)
    contract, key_field = catalog.contract_for(topic), catalog.binding(topic).key_field
    events, labels = _events(contract, file, count, set_ or [])
    Cluster(settings, wait_s=wait).partitions(topic)  # an unknown topic or no broker: say so now, within the wait
    with progress(not as_json and len(events) > 1) as bar:
        task = bar.add_task(f"sending to {topic}", total=len(events))
        published = asyncio.run(
            publish_events(settings, topic, events, rate=rate, labels=labels, on_sent=lambda _: bar.advance(task))
        )
    rows = [_row(p, e, key_field) for p, e in zip(published, events, strict=True)]
    if as_json:
        print_json({"topic": topic, "events": rows})
        return
    table = Table("partition", "offset", "key", "eventId", "schema id", title=f"{len(rows)} events sent to {topic}")
    for row in rows:
        table.add_row(
            str(row["partition"]), str(row["offset"]), row["key"] or "-", row["eventId"] or "-", row["schemaId"]
        )
    console.print(table)


def _events(
    contract: Contract, file: Path | None, count: int, assignments: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    if file is None:
        events = [with_assignments(contract, example_event(contract), assignments) for _ in range(count)]
        return events, [f"event {i + 1}" for i in range(count)]
    events, labels = [], []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{file}:{number} is not JSON: {exc.msg}") from None
        if not isinstance(event, dict):
            raise ContractError(f"{file}:{number} is not a JSON object (one event per line)")
        events.append(with_assignments(contract, event, assignments))
        labels.append(f"line {number}")
    if not events:
        raise ContractError(f"{file} holds no events")
    return events, labels


def _row(published: Published, event: dict[str, Any], key_field: str | None) -> dict[str, Any]:
    key = event.get(key_field) if key_field else None
    return {**published.as_json(), "eventId": event.get("eventId"), "key": None if key is None else str(key)}
