"""``hubstream entra serve`` (hidden): the local fake Entra ID that ``devstack.entra.start_entra`` runs as a child."""

from __future__ import annotations

import json
import signal
from types import FrameType
from typing import Annotated

import typer

from hubstream_cli.common import Commands, StateDirOption, console, load_settings, setup_logging

app = Commands(help="A local fake Entra ID (client-credentials tokens for azure-identity).", hidden=True)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTPS port on 127.0.0.1")] = 8444,
    token_lifetime: Annotated[int, typer.Option("--token-lifetime", help="Seconds each token is valid")] = 3600,
    state_dir: StateDirOption = None,
) -> None:
    """Serve until SIGINT or SIGTERM; the tenant, application and signing key live under <state-dir>/entra/."""
    from devstack.entra import prepare
    from devstack.entra_server import EntraServer

    settings = load_settings(state_dir)
    setup_logging(settings)
    server = EntraServer(prepare(settings.state_dir, port, token_lifetime_s=token_lifetime))
    info = server.entra.to_json()
    info.pop("client_secret")
    console.print(
        f"fake Entra ID on [bold]{server.entra.authority}[/]: {json.dumps(info)}", highlight=False, soft_wrap=True
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop_listening()
    console.print("fake Entra ID stopped")
