"""`hubstream api-keys`: the producer API's keys (create, list, revoke), kept hashed in api.api_keys_file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hubstream_cli.common import Commands, StateDirOption, load_settings
from kafka_producer.api_keys import ApiKey, ApiKeyStore, key_store_path

app = Commands(help="API keys for the producer API: create, list and revoke them.", no_args_is_help=True)
stdout = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout")]


def _store(state_dir: StateDirOption) -> ApiKeyStore:
    settings = load_settings(state_dir)
    return ApiKeyStore(key_store_path(settings.state_dir, settings.api.api_keys_file))


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Who the key is for (shown in listings)")],
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="Only this topic (repeatable) [default: every topic]")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key, for scripts")] = False,
    as_json: JsonOption = False,
    state_dir: StateDirOption = None,
) -> None:
    """Create a key. It is printed once: only its hash is kept."""
    key, secret = _store(state_dir).create(name, topic)
    if quiet:
        typer.echo(secret)
    elif as_json:
        typer.echo(json.dumps({**key.public(), "key": secret}))
    else:
        stdout.print(f"API key {key.id} for {name!r} ({_topics(key)}):\n")
        stdout.print(secret, markup=False, highlight=False, soft_wrap=True)
        stdout.print("\nKeep it now: it is not shown again. Send it as Authorization: Bearer <key>.")


@app.command("list")
def list_keys(as_json: JsonOption = False, state_dir: StateDirOption = None) -> None:
    """List keys (never their secrets), revoked ones included."""
    keys = _store(state_dir).list()
    if as_json:
        typer.echo(json.dumps([key.public() for key in keys]))
        return
    table = Table("id", "name", "topics", "created", "status")
    for key in keys:
        status = "active" if key.active else f"revoked {_when(key.revoked_at)}"
        table.add_row(key.id, key.name, _topics(key), _when(key.created_at), status)
    stdout.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `hubstream api-keys list`)")],
    as_json: JsonOption = False,
    state_dir: StateDirOption = None,
) -> None:
    """Revoke a key; a running API refuses it within a second."""
    key = _store(state_dir).revoke(key_id)
    if as_json:
        typer.echo(json.dumps(key.public()))
    else:
        stdout.print(f"API key {key.id} ({key.name}) revoked {_when(key.revoked_at)}")


def _topics(key: ApiKey) -> str:
    return "every topic" if key.topics is None else ", ".join(key.topics)


def _when(timestamp: Any) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(float(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
