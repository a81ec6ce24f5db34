"""``hubstream schemas``: check, register and inspect the Avro contracts in the schema group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devstack.discovery import with_local_stack
from hubstream.errors import ContractError, HubstreamError, RegistryError
from hubstream.settings import Settings
from hubstream_cli.common import Commands, StateDirOption, console, load_settings
from schemas import evolution as ops
from schemas.compatibility import Finding, Mode, UnknownModeError
from schemas.contracts import Contract, load_contracts
from schemas.registry import SchemaRegistry

app = Commands(
    help="The Avro contracts against the schema registry: compatibility checks, registration, versions.",
    no_args_is_help=True,
)
stdout = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable result to stdout")]
ContractsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--contracts-dir",
        help="Directory of .avsc contracts [default: ./schemas/avro when it exists, else HUBSTREAM_CONTRACTS_DIR or "
        "the contracts installed with hubstream]",
    ),
]


@app.command()
def check(
    against: Annotated[
        str, typer.Option("--against", help="'registry' (every registered version) or 'git:REF' (the file at REF)")
    ] = "registry",
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="e.g. BACKWARD, FORWARD, FULL_TRANSITIVE [default: the group's, or BACKWARD]"),
    ] = None,
    quota: Annotated[
        int | None, typer.Option("--quota", help="Warn if registering would exceed N versions (Standard tier: 25)")
    ] = None,
    as_json: JsonOption = False,
    contracts_dir: ContractsDirOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Exit 0 if every contract is compatible with what came before it, 1 (with the reasons) if not."""
    try:
        chosen = Mode.parse(mode) if mode is not None else None
    except UnknownModeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mode") from None
    if against != "registry" and not against.startswith("git:"):
        raise typer.BadParameter("use 'registry' or 'git:REF'", param_hint="--against")
    if against.startswith("git:") and quota is not None:
        raise typer.BadParameter("--quota needs --against registry (it counts registered versions)")
    usage: ops.QuotaUsage | None = None
    if against == "registry":
        settings = _settings(state_dir, contracts_dir)
        contracts = _contracts(settings)
        group = ops.emulator_group(settings)
        effective = chosen or (group.mode if group is not None else ops.DEFAULT_MODE)
        with SchemaRegistry.from_settings(settings) as registry:
            checks, history = ops.check_against_registry(registry, contracts.values(), effective)
        if quota is not None:
            usage = ops.quota_usage(quota, checks, history, group)
    else:
        settings = _local_settings(state_dir, contracts_dir)
        effective = chosen or ops.DEFAULT_MODE
        checks = ops.check_against_git(_contracts(settings).values(), against.removeprefix("git:"), effective)
    compatible = all(c.compatible for c in checks)
    if as_json:
        result = {
            "against": against,
            "contractsDir": str(settings.contracts_dir),
            "mode": effective.value,
            "compatible": compatible,
            "schemas": [c.as_dict() for c in checks],
            "quota": usage.as_dict() if usage else None,
        }
        print(json.dumps(result, indent=2))
    else:
        _print_check(against, effective, checks)
    if usage is not None and usage.exceeded:
        console.print(
            f"[bold yellow]warning:[/] registering would bring the group to {usage.after} schema versions "
            f"({usage.current} now + {usage.added}), over the quota of {usage.limit}"
        )
    raise typer.Exit(0 if compatible else 1)


@app.command()
def register(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change, register nothing")] = False,
    as_json: JsonOption = False,
    contracts_dir: ContractsDirOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Register every contract in the schema group (idempotent: unchanged ones keep their version)."""
    rows: list[dict[str, Any]] = []
    try:
        settings = _settings(state_dir, contracts_dir)
        contracts = _contracts(settings)
        with SchemaRegistry.from_settings(settings) as registry:
            for contract in contracts.values():
                versions = ops.registered_versions(registry, contract.name)
                status = ops.plan(contract, versions)
                version = versions[-1].version if status is ops.Status.UNCHANGED else len(versions) + 1
                schema_id = None if dry_run else registry.register(contract)
                rows.append({"name": contract.name, "status": status.value, "version": version, "id": schema_id})
    except HubstreamError:
        _print_register(rows, dry_run, as_json)  # what was registered before the failure
        raise
    _print_register(rows, dry_run, as_json)


@app.command("list")
def list_schemas(
    as_json: JsonOption = False, contracts_dir: ContractsDirOption = None, state_dir: StateDirOption = None
) -> None:
    """The contracts' schemas and their registered versions in the group.

    Azure's API cannot list a group's schema names, so the names come from the contracts directory.
    """
    settings = _settings(state_dir, contracts_dir)
    contracts = _contracts(settings)
    with SchemaRegistry.from_settings(settings) as registry:
        listed = {name: [v.version for v in ops.registered_versions(registry, name)] for name in contracts}
    if as_json:
        print(json.dumps({"group": settings.registry.group, "schemas": listed}, indent=2))
        return
    table = Table("schema", "versions", "latest", title=f"schema group {settings.registry.group}")
    for name, versions in listed.items():
        table.add_row(name, ", ".join(map(str, versions)) or "(not registered)", str(versions[-1]) if versions else "-")
    stdout.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Schema name (the record's full name)")],
    version: Annotated[int | None, typer.Option("--version", help="Version number [default: the latest]")] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print one version of a schema as pretty JSON."""
    with SchemaRegistry.from_settings(_settings(state_dir)) as registry:
        chosen = version if version is not None else _latest(registry, name)
        text = ops.schema_version(registry, name, chosen)
    print(ops.pretty(text))


@app.command()
def diff(
    name: Annotated[str, typer.Argument(help="Schema name (the record's full name)")],
    a: Annotated[int, typer.Argument(help="Older version")],
    b: Annotated[int, typer.Argument(help="Newer version")],
    state_dir: StateDirOption = None,
) -> None:
    """Unified diff of versions A and B, and the compatibility findings between them both ways."""
    with SchemaRegistry.from_settings(_settings(state_dir)) as registry:
        old = ops.RegisteredVersion(a, ops.schema_version(registry, name, a))
        new = ops.RegisteredVersion(b, ops.schema_version(registry, name, b))
    text, backward, forward = ops.diff_versions(name, old, new)
    print(text or "(no difference)")  # plain, so it can be piped to patch or a pager
    _print_findings(f"v{b} reading data written with v{a} (backward)", backward)
    _print_findings(f"v{a} reading data written with v{b} (forward)", forward)


def _settings(state_dir: Path | None, contracts_dir: Path | None = None) -> Settings:
    return with_local_stack(_local_settings(state_dir, contracts_dir))


def _local_settings(state_dir: Path | None, contracts_dir: Path | None) -> Settings:
    return load_settings(state_dir, **({"contracts_dir": contracts_dir.resolve()} if contracts_dir else {}))


def _contracts(settings: Settings) -> dict[str, Contract]:
    """The contracts, saying where they came from (on stderr, so --json output stays clean)."""
    console.print(f"contracts from {settings.contracts_dir}", highlight=False, soft_wrap=True)
    contracts = load_contracts(settings.contracts_dir)
    if not contracts:
        raise ContractError(f"no .avsc contracts in {settings.contracts_dir} (set HUBSTREAM_CONTRACTS_DIR)")
    return contracts


def _latest(registry: SchemaRegistry, name: str) -> int:
    versions = ops.registered_versions(registry, name)
    if not versions:
        raise RegistryError(f"schema {name} is not registered in group {registry.group!r}")
    return versions[-1].version


def _print_check(against: str, mode: Mode, checks: list[ops.ContractCheck]) -> None:
    table = Table("schema", "status", "against", "result", title=f"compatibility ({mode.value}) against {against}")
    for c in checks:
        previous = f"v{', v'.join(map(str, c.previous_versions))}" if c.previous_versions else against
        versus = "-" if c.status is ops.Status.NEW_SCHEMA else previous
        result = "[green]compatible[/]" if c.compatible else f"[red]{len(c.findings)} finding(s)[/]"
        table.add_row(c.name, c.status.value, escape(versus), result)
    stdout.print(table)
    for c in checks:
        if c.findings:
            stdout.print(f"\n[bold red]{escape(c.name)}[/] ({escape(c.path)})")
            _print_finding_rows(c.findings)


def _print_findings(title: str, findings: list[Finding]) -> None:
    if not findings:
        stdout.print(f"{title}: [green]compatible[/]")
        return
    stdout.print(f"{title}: [red]{len(findings)} finding(s)[/]")
    _print_finding_rows(findings)


def _print_finding_rows(findings: list[Finding]) -> None:
    table = Table("path", "rule", "message")
    for f in findings:
        table.add_row(escape(f.path), f.rule, escape(f.message))
    stdout.print(table)


def _print_register(rows: list[dict[str, Any]], dry_run: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"dry_run": dry_run, "schemas": rows}, indent=2))
        return
    table = Table("schema", "status", "version", "id", title="registration plan (dry run)" if dry_run else "registered")
    for row in rows:
        table.add_row(row["name"], row["status"], str(row["version"]), row["id"] or "-")
    stdout.print(table)
