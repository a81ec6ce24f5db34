"""`hubstream groups`: consumer-group operations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from confluent_kafka.admin import AdminClient
from rich.table import Table

from devstack.discovery import with_local_stack
from hubstream import kafka_config
from hubstream_cli.common import Commands, StateDirOption, console, load_settings
from kafka_consumer.admin.group_offsets import ResetTarget, apply_reset, plan_reset

app = Commands(help="Consumer-group operations.", no_args_is_help=True)

_TARGETS: tuple[ResetTarget, ...] = ("earliest", "latest", "datetime", "offset")


@app.command("reset-offsets")
def reset_offsets(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group whose offsets move")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic whose partitions move")],
    to: Annotated[str, typer.Option("--to", help="earliest | latest | datetime | offset")],
    at: Annotated[
        datetime | None,
        typer.Option("--datetime", help="With --to datetime: ISO-8601 time, e.g. 2026-01-31T09:00:00+00:00"),
    ] = None,
    offset: Annotated[
        int | None, typer.Option("--offset", help="With --to offset: the offset for every partition")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the change without making it")] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Move a group's committed offsets, e.g. to replay a topic from the start in a dev group.

    Refused while the group has active members: stop its consumers first.
    """
    target = next((t for t in _TARGETS if t == to), None)
    if target is None:
        raise typer.BadParameter(f"--to must be earliest, latest, datetime or offset (got {to!r})")
    admin = AdminClient(kafka_config.admin_config(with_local_stack(load_settings(state_dir))))
    changes = plan_reset(admin, group, topic, target, at=at, offset=offset)
    table = Table("topic", "partition", "current", "new", title=f"group {group}" + (" (dry run)" if dry_run else ""))
    for change in changes:
        table.add_row(
            change.topic, str(change.partition), "-" if change.current is None else str(change.current), str(change.new)
        )
    console.print(table)
    if not dry_run:
        apply_reset(admin, group, changes)
        console.print(f"[green]offsets of {group} reset[/]")
