"""`hubstream groups`: consumer-group operations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from confluent_kafka.admin import AdminClient
from rich.console import Group
from rich.table import Table

from devstack.discovery import with_local_stack
from hubstream import kafka_config
from hubstream_cli.common import Commands, StateDirOption, console, load_settings
from hubstream_cli.inspecting import (
    IntervalOption,
    JsonOption,
    TimesOption,
    WaitOption,
    WatchOption,
    age,
    print_json,
    progress,
    settings_from,
    show,
)
from kafka_consumer.admin.cluster import WAIT_S, Cluster
from kafka_consumer.admin.group_inspection import GroupDescription, GroupSummary, describe_group, list_groups
from kafka_consumer.admin.group_offsets import ResetTarget, apply_reset, plan_reset
from kafka_consumer.admin.group_registry import GroupRegistry

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
    as_json: JsonOption = False,
    state_dir: StateDirOption = None,
) -> None:
    """Move a group's committed offsets, e.g. to replay a topic from the start in a dev group.

    Refused while the group has active members: stop its consumers first. A group nothing holds is reset even
    when the broker reports it as Dead (Event Hubs does for a group with no members).
    """
    target = next((t for t in _TARGETS if t == to), None)
    if target is None:
        raise typer.BadParameter(f"--to must be earliest, latest, datetime or offset (got {to!r})")
    admin = AdminClient(kafka_config.admin_config(with_local_stack(load_settings(state_dir))))
    changes = plan_reset(admin, group, topic, target, at=at, offset=offset)
    if as_json:
        if not dry_run:
            apply_reset(admin, group, changes)
        rows = [{"topic": c.topic, "partition": c.partition, "current": c.current, "new": c.new} for c in changes]
        print_json({"group": group, "dryRun": dry_run, "changes": rows})
        return
    table = Table("topic", "partition", "current", "new", title=f"group {group}" + (" (dry run)" if dry_run else ""))
    for change in changes:
        table.add_row(
            change.topic, str(change.partition), "-" if change.current is None else str(change.current), str(change.new)
        )
    console.print(table)
    if not dry_run:
        apply_reset(admin, group, changes)
        console.print(f"[green]offsets of {group} reset[/]")


@app.command("list")
def list_command(
    as_json: JsonOption = False,
    wait: WaitOption = WAIT_S,
    state_dir: StateDirOption = None,
) -> None:
    """Every consumer group with its state, members and total lag, idle groups included.

    Groups come from the broker's ListGroups and from the groups hubstream workers have used (remembered under
    the state dir): Event Hubs leaves groups with no members out of ListGroups, though their offsets remain.
    """
    settings = settings_from(state_dir)
    cluster = Cluster(settings, wait_s=wait)
    remembered = {g.group: g.topics for g in GroupRegistry.for_settings(settings).groups()}
    with progress(not as_json) as bar:
        task = bar.add_task("reading groups", total=None)
        summaries = list_groups(cluster, remembered, on_group=lambda _: bar.advance(task))
    if as_json:
        print_json({"groups": [s.as_json() for s in summaries]})
    else:
        console.print(_list_table(summaries))


def _list_table(summaries: list[GroupSummary]) -> Table:
    table = Table("group", "state", "members", "topics", "lag", "seen by", title=f"{len(summaries)} consumer groups")
    for summary in summaries:
        seen = [name for name, yes in (("broker", summary.listed), ("registry", summary.remembered)) if yes]
        table.add_row(
            summary.group,
            summary.state,
            str(summary.members),
            ", ".join(summary.topics) or "-",
            "-" if summary.lag is None else str(summary.lag),
            " + ".join(seen),
        )
    return table


@app.command("describe")
def describe(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group to describe")],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Also show this topic's partitions, committed or not (repeatable)"),
    ] = None,
    as_json: JsonOption = False,
    watch: WatchOption = False,
    interval: IntervalOption = 2.0,
    times: TimesOption = None,
    wait: WaitOption = WAIT_S,
    state_dir: StateDirOption = None,
) -> None:
    """Members (member id, client id, host) and the partitions each owns, standby members (no partitions), and per
    partition the committed offset, end offset, lag and the time since the last commit.

    The time since the last commit is read from the timestamp of the last record the group committed past (Kafka
    does not say when an offset was committed): the commit was at most that long ago.
    """
    cluster = Cluster(settings_from(state_dir), wait_s=wait)
    show(
        lambda: describe_group(cluster, group, topic or []),
        _describe_view,
        (lambda d: d.as_json()) if as_json else None,
        watch=watch,
        interval=interval,
        times=times,
    )


def _describe_view(description: GroupDescription) -> Group:
    members = Table(
        "member id",
        "client id",
        "host",
        "partitions",
        title=f"group {description.group}: "
        f"{description.state}, {len(description.members)} members, {len(description.standby)} standby",
    )
    for member in description.members:
        owned = ", ".join(f"{t}[{p}]" for t, p in member.partitions) or "[yellow]standby[/]"
        members.add_row(member.member_id, member.client_id, member.host, owned)
    partitions = Table(
        "topic", "partition", "owner", "committed", "end", "lag", "last commit", title=f"lag {description.lag or 0}"
    )
    for row in description.partitions:
        partitions.add_row(
            row.topic,
            str(row.partition),
            row.owner or "-",
            "-" if row.committed is None else str(row.committed),
            str(row.end),
            "-" if row.lag is None else str(row.lag),
            "-" if row.checkpoint_at is None else f"<= {age(row.checkpoint_at)}",
        )
    if not description.members and not description.partitions:
        hint = "[yellow]no members and no committed offsets: is the name right? (`hubstream groups list`)[/]"
        return Group(members, partitions, hint)
    return Group(members, partitions)
