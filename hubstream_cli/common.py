"""Options and helpers every subcommand shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hubstream import logs
from hubstream import settings as settings_module
from hubstream.settings import Settings

console = Console(stderr=True)

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where the local stack keeps its state and stack.json (default: .hubstream/)"),
]


def load_settings(state_dir: Path | None = None) -> Settings:
    """Settings from env/.env, with --state-dir taking precedence when given."""
    return settings_module.load_settings(**({"state_dir": state_dir} if state_dir is not None else {}))


def setup_logging(settings: Settings) -> None:
    logs.setup_logging(settings.log_level, settings.log_format)
