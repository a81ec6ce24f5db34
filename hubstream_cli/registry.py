"""``hubstream registry``: run the local Azure Schema Registry emulator and manage its schema groups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from devstack.discovery import StackInfo
from hubstream import ports
from hubstream.errors import ConfigurationError
from hubstream_cli.common import Commands, StateDirOption, console, load_settings, setup_logging

if TYPE_CHECKING:
    from schemas.emulator.admin_client import EmulatorAdminClient

app = Commands(
    help="The local Azure Schema Registry emulator (HTTPS, the API azure-schemaregistry uses).",
    no_args_is_help=True,
)
group_app = Commands(help="Schema groups of a running emulator (format and compatibility mode).", no_args_is_help=True)
app.add_typer(group_app, name="group")

stdout = Console()

_COMPATIBILITY_HELP = (
    "None, Backward or Forward (as in Azure); Full, BackwardTransitive, ForwardTransitive or "
    "FullTransitive are a hubstream extension Azure does not offer"
)
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Emulator URL, e.g. https://localhost:8443 (default: the local stack's)"),
]
CaFileOption = Annotated[
    Path | None, typer.Option("--ca-file", help="CA that signed the emulator's certificate (with --url)")
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port")] = ports.REGISTRY,
    state_dir: StateDirOption = None,
    groups: Annotated[
        Path | None,
        typer.Option("--groups", help="TOML file of schema groups to create: one \\[groups.NAME] table each"),
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            "--auth-token",
            envvar="HUBSTREAM_REGISTRY__TOKEN",  # the clients' own setting; an environment keeps it out of argv
            help="Require 'Authorization: Bearer <token>' on every request",
        ),
    ] = None,
    entra_jwks: Annotated[
        str | None,
        typer.Option(
            "--entra-jwks",
            help="Accept only Entra ID tokens for https://eventhubs.azure.net, signed by a key of this JWKS "
            "(a file, e.g. <state-dir>/entra/jwks.json, or an https URL); needs --entra-issuer",
        ),
    ] = None,
    entra_issuer: Annotated[
        str | None,
        typer.Option("--entra-issuer", help="The tokens' issuer, https://sts.windows.net/<tenant>/"),
    ] = None,
    tls_host: Annotated[
        list[str] | None,
        typer.Option(
            "--tls-host", help="Extra host name the certificate must name, e.g. a compose service (repeatable)"
        ),
    ] = None,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM. Data and certificates live under the state dir."""
    from devstack.tls import ensure_tls_files
    from schemas.emulator.entra_auth import EntraAuth
    from schemas.emulator.server import EmulatorServer, ServeOptions

    if bool(entra_jwks) != bool(entra_issuer):
        raise ConfigurationError("--entra-jwks and --entra-issuer go together: the JWKS and the tenant's issuer")
    entra = EntraAuth(entra_jwks, entra_issuer) if entra_jwks and entra_issuer else None
    settings = load_settings(state_dir)
    setup_logging(settings)
    tls = ensure_tls_files(settings.state_dir, hosts=[host, *(tls_host or ())])
    options = ServeOptions(
        state_dir=settings.state_dir,
        cert_file=tls.cert_file,
        key_file=tls.key_file,
        host=host,
        port=port,
        groups_file=groups,
        auth_token=auth_token,
        entra=entra,
        default_group=settings.registry.group,
        log_level=settings.log_level,
    )
    server = EmulatorServer(options)
    console.print(f"Schema Registry emulator on [bold]{server.url}[/]")
    console.print(f"  fully_qualified_namespace  {server.namespace}")
    console.print(f"  CA file                    {tls.ca_file}")
    console.print(f"  database                   {server.store.path}")
    console.print(f"  groups                     {', '.join(g.name for g in server.groups)}")
    if auth_token:
        console.print("  bearer token required")
    if entra:
        console.print(f"  Entra ID tokens required   issuer {entra.issuer}, audience {entra.audience}")
    server.run()
    console.print("[green]emulator stopped[/]")


@group_app.command("create")
def group_create(
    name: Annotated[str, typer.Argument(help="Schema group name")],
    fmt: Annotated[str, typer.Option("--format", help="Avro, Json or Custom")] = "avro",
    compatibility: Annotated[str, typer.Option("--compatibility", help=_COMPATIBILITY_HELP)] = "backward",
    url: UrlOption = None,
    ca_file: CaFileOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Create a schema group, or change the compatibility mode of an existing one."""
    from schemas.compatibility import Mode
    from schemas.emulator.groups import SchemaFormat

    try:
        fmt, mode = SchemaFormat.parse(fmt), Mode.parse(compatibility)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with _admin_client(url, ca_file, state_dir) as client:
        group = client.put_group(name, format=fmt.value, compatibility=mode.azure_name)
    note = "" if group["compatibility_in_azure"] else " (hubstream extension: Azure has no such mode)"
    console.print(f"schema group [bold]{group['name']}[/]: {group['format']}, {group['compatibility']}{note}")


@group_app.command("list")
def group_list(url: UrlOption = None, ca_file: CaFileOption = None, state_dir: StateDirOption = None) -> None:
    """List schema groups with their format, compatibility mode and how many schemas they hold."""
    with _admin_client(url, ca_file, state_dir) as client:
        groups = client.list_groups()
    table = Table("group", "format", "compatibility", "schemas", "versions")
    for group in groups:
        mode = group["compatibility"] + ("" if group["compatibility_in_azure"] else " *")
        table.add_row(group["name"], group["format"], mode, str(group["schemas"]), str(group["versions"]))
    stdout.print(table)
    if not all(group["compatibility_in_azure"] for group in groups):
        stdout.print("* hubstream extension: Azure Schema Registry offers only None, Backward and Forward")


def _admin_client(url: str | None, ca_file: Path | None, state_dir: Path | None) -> EmulatorAdminClient:
    """The emulator at --url, else the one the running local stack's stack.json names."""
    from schemas.emulator.admin_client import EmulatorAdminClient

    settings = load_settings(state_dir)
    token = settings.registry.token.get_secret_value()
    if url:
        ca = ca_file or settings.registry.ca_file
        if ca is None:
            raise ConfigurationError("--url needs --ca-file (or HUBSTREAM_REGISTRY__CA_FILE)")
        return EmulatorAdminClient(url, ca, token=token)
    info = StackInfo.read(settings.state_dir)
    return EmulatorAdminClient(f"https://{info.schema_registry}", ca_file or info.ca_file, token=token)
