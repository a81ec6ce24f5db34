"""`hubstream dlq`: dead-letter topics."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from devstack.discovery import with_local_stack
from hubstream_cli.common import Commands, StateDirOption, console, load_settings, setup_logging
from kafka_consumer.admin import dlq_replay
from kafka_consumer.admin.dlq_replay import ReplaySummary

app = Commands(help="Dead-letter topics.", no_args_is_help=True)


@app.command("replay")
def replay(
    topic: Annotated[
        str, typer.Option("--topic", "-t", metavar="TOPIC", help="Dead-letter topic to replay, e.g. chat.responses.dlq")
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="TOPIC", help="Publish to this topic instead of each record's original topic"),
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="NAME=VALUE",
            help=f"NAME=VALUE a record must match (repeatable, all must match); "
            f"NAME: {', '.join(dlq_replay.FILTER_NAMES)}. The letters a filter skips stay for a later run",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            "-g",
            metavar="GROUP",
            help="Group that keeps the replay's progress (default: hubstream-dlq-replay.TOPIC)",
        ),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Read the whole topic again, not just what came since the last run")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be replayed; publish and commit nothing")
    ] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Re-publish dead letters to their original topic (or --to), with their key, bytes and headers.

    Each replayed record gets a hubstream.dlq.replayed-from header.

    The group's offsets are committed once every record was acknowledged, so a re-run replays only what was
    dead-lettered since. A run that stops early replays the same records again (consumers dedupe by eventId).

    With --filter, the group's offset stops at the first letter the filters skipped, and the commit remembers
    what the run replayed past it: a later run without the filter (or with another) replays exactly the letters
    not replayed yet, and re-running the same filter replays only what was dead-lettered since. --from-beginning
    replays every matching letter again.
    """
    filters = dlq_replay.parse_filters(filter_ or [])
    settings = with_local_stack(load_settings(state_dir))
    with _progress_bar() as bar:
        setup_logging(settings)  # inside the bar: log lines then print above it instead of through it
        task = bar.add_task(f"reading {topic}", total=None)
        summary = asyncio.run(
            dlq_replay.replay(
                settings,
                topic,
                to=to,
                filters=filters,
                group=group,
                from_beginning=from_beginning,
                dry_run=dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        )
    _print_summary(summary)


def _progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_summary(summary: ReplaySummary) -> None:
    if summary.dry_run and summary.listed:
        _print_listed(summary)
    verb = "would replay" if summary.dry_run else "replayed"
    table = Table("target topic", verb, title=f"{summary.dlq_topic}" + (" (dry run)" if summary.dry_run else ""))
    for target, count in sorted(summary.by_target.items()):
        table.add_row(target, str(count))
    table.add_section()
    table.add_row("[bold]total[/]", str(summary.matched if summary.dry_run else summary.replayed))
    console.print(table)
    console.print(
        f"read {summary.read}, not matching the filters {summary.filtered_out}, "
        f"already replayed by an earlier run {summary.already_replayed}"
    )
    if summary.skipped_not_dead_letters:
        console.print(f"[yellow]skipped {summary.skipped_not_dead_letters} record(s) that are not dead letters[/]")
    if summary.skipped_value_omitted:
        console.print(
            f"[yellow]skipped {summary.skipped_value_omitted} dead letter(s) kept without their value (too large "
            "when dead-lettered): replay them from the original topic, see the log for where[/]"
        )
    if summary.dry_run:
        console.print("dry run: nothing was published or committed")
    else:
        offsets = ", ".join(f"{p}→{o}" for p, o in sorted(summary.committed.items())) or "unchanged"
        console.print(f"[green]committed group {summary.group}[/]: {offsets}")
        if summary.left_for_later:
            console.print(
                f"{summary.left_for_later} letter(s) the filters skipped stay for a later run "
                "(the group's offset stops at the first of them)"
            )


def _print_listed(summary: ReplaySummary) -> None:
    table = Table("dlq partition", "dlq offset", "original", "error class", "to", title="would replay")
    for record in summary.listed:
        table.add_row(
            str(record.dlq_partition), str(record.dlq_offset), record.original, record.error_class, record.target
        )
    console.print(table)
    if summary.matched > len(summary.listed):
        console.print(f"… and {summary.matched - len(summary.listed)} more")
