"""`hubstream tail`: a topic's records, decoded, without joining a group or committing."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from hubstream_cli.common import StateDirOption, console
from hubstream_cli.inspecting import JsonOption, WaitOption, print_json, settings_from
from kafka_consumer.admin.cluster import WAIT_S, Cluster
from kafka_consumer.admin.partition_info import text_or_none
from kafka_consumer.admin.tail import Start, TailedRecord, TailOptions, tail
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde


def tail_command(
    topic: Annotated[str, typer.Option("--topic", "-t", metavar="TOPIC", help="Topic to read")],
    partition: Annotated[
        list[int] | None, typer.Option("--partition", "-p", help="Only this partition (repeatable) [default: all]")
    ] = None,
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="WHERE",
            help="earliest | latest | OFFSET (e.g. 42) | -N (the last N of each partition) | ISO-8601 TIME",
        ),
    ] = "latest",
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Stop after this many records")] = None,
    key: Annotated[str | None, typer.Option("--key", "-k", help="Only records with this key")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Also show the value's bytes and the headers")] = False,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Wait for new records, or stop at the end of the partitions")
    ] = True,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.1, help="Stop after this many seconds without a record")
    ] = None,
    as_json: JsonOption = False,
    wait: WaitOption = WAIT_S,
    state_dir: StateDirOption = None,
) -> None:
    """Print records as they are read: key, partition, offset, timestamp, schema and the decoded event.

    Values are decoded through their content-type header's schema id (or the legacy id prefix). The reader is
    assigned its partitions: it never joins a consumer group and never commits, so workers are not affected.
    --json prints one JSON object per line.
    """
    settings = settings_from(state_dir)
    options = TailOptions(
        partitions=partition or None,
        start=Start.parse(from_),
        count=count,
        key=key,
        follow=follow,
        idle_timeout_s=timeout,
    )
    cluster = Cluster(settings, wait_s=wait)
    with SchemaRegistry.from_settings(settings) as registry:
        try:
            for record in tail(cluster, AvroSerde(registry), topic, options):
                if as_json:
                    print_json(record.as_json(raw=raw), lines=True)
                else:
                    _print(record, raw)
        except KeyboardInterrupt:
            return


def _print(record: TailedRecord, raw: bool) -> None:
    when = record.timestamp.isoformat(timespec="milliseconds") if record.timestamp else "-"
    schema = f"{record.schema_name} ({record.schema_id})" if record.schema_name else "-"
    console.print(
        f"[bold]{escape(record.topic)}[/][{record.partition}]@{record.offset}  {when}  "
        f"key=[cyan]{escape(text_or_none(record.key) or '-')}[/]  schema={escape(schema)}",
        highlight=False,
    )
    if record.error is not None:
        console.print(f"  [red]not decoded:[/] {escape(record.error)}", highlight=False)
    else:
        console.print_json(json.dumps(record.event, ensure_ascii=False))
    if raw:
        for name, value in record.headers:
            console.print(f"  header {escape(name)}: {escape(repr(value))}", highlight=False)
        console.print(f"  value ({len(record.value or b'')} bytes): {escape(repr(record.value))}", highlight=False)
