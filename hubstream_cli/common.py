"""Options and helpers every subcommand shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hubstream import logs
from hubstream.errors import HubstreamError
from hubstream.settings import Settings

console = Console(stderr=True)

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where the local stack keeps its state and stack.json (default: .hubstream/)"),
]


def load_settings(state_dir: Path | None = None) -> Settings:
    """Settings from env/.env, with --state-dir taking precedence when given."""
    settings = Settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    return settings


def setup_logging(settings: Settings) -> None:
    logs.setup_logging(settings.log_level, settings.log_format)


def fail(error: HubstreamError) -> typer.Exit:
    """Print a hubstream error for a person (no traceback) and return the exit to raise."""
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=2)
