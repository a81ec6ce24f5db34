"""What the operators' read-only commands share: --json, --watch, the cluster from settings, ages for people."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from devstack.discovery import with_local_stack
from hubstream.settings import Settings
from hubstream_cli.common import console, load_settings
from kafka_consumer.admin.cluster import WAIT_S, Cluster

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout (JSON lines with --watch)")]
WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C")]
IntervalOption = Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch")]
TimesOption = Annotated[int | None, typer.Option("--times", min=1, help="With --watch: stop after this many refreshes")]
WaitOption = Annotated[
    float, typer.Option("--wait", min=0.5, help="Seconds to wait for the broker's answers before giving up")
]


def cluster_from(state_dir: Path | None, wait_s: float = WAIT_S) -> Cluster:
    return Cluster(settings_from(state_dir), wait_s=wait_s)


def settings_from(state_dir: Path | None) -> Settings:
    return with_local_stack(load_settings(state_dir))


def print_json(document: Any, *, lines: bool = False) -> None:
    if lines:
        print(json.dumps(document, separators=(",", ":"), ensure_ascii=False), flush=True)
    else:
        print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)


def show(
    read: Callable[[], T],
    render: Callable[[T], RenderableType],
    as_json: Callable[[T], Any] | None,
    *,
    watch: bool,
    interval: float,
    times: int | None,
) -> None:
    """Read once and show it (a table, or JSON when `as_json` is given); with watch, refresh in place (JSON lines)."""
    if not watch:
        value = read()
        if as_json is not None:
            print_json(as_json(value))
        else:
            console.print(render(value))
        return
    refreshes = 0
    try:
        if as_json is not None:
            while times is None or refreshes < times:
                print_json(as_json(read()), lines=True)
                refreshes += 1
                if times is None or refreshes < times:
                    time.sleep(interval)
            return
        with Live(console=console, auto_refresh=False) as live:
            while times is None or refreshes < times:
                live.update(render(read()), refresh=True)
                refreshes += 1
                if times is None or refreshes < times:
                    time.sleep(interval)
    except KeyboardInterrupt:
        return


def progress(enabled: bool = True) -> Progress:
    """A progress bar on stderr, shown only to a person at a terminal and gone once done."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


def age(when: datetime | None, now: datetime | None = None) -> str:
    """`3s ago`, `5m ago`, `2h ago`, `4d ago`; `-` when unknown."""
    if when is None:
        return "-"
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def stamp(when: datetime | None) -> str:
    if when is None:
        return "-"
    return f"{when.isoformat(timespec='milliseconds')} ({age(when)})"
