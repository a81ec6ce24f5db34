"""Options and helpers every subcommand shares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hubstream import logs
from hubstream import settings as settings_module
from hubstream.errors import HubstreamError
from hubstream.settings import Settings

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class Commands(typer.Typer):
    """A typer app whose every command runs inside the one error boundary: a HubstreamError is printed for a
    person (no traceback) and exits with code 2."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            register(_reported(func))
            return func

        return decorator


def _reported(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)  # typer reads the options from the signature, which wraps keeps
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except HubstreamError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(code=2) from None

    return run


StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where the local stack keeps its state and stack.json (default: .hubstream/)"),
]


def load_settings(state_dir: Path | None = None, **values: object) -> Settings:
    """Settings from env/.env; --state-dir and other options given on the command line take precedence."""
    if state_dir is not None:
        values["state_dir"] = state_dir
    return settings_module.load_settings(**values)


def setup_logging(settings: Settings) -> None:
    logs.setup_logging(settings.log_level, settings.log_format)
