"""`hubstream clients`: tokens for end clients of the delivery API."""

from __future__ import annotations

from typing import Annotated

import typer

from delivery.auth import mint_token
from devstack.discovery import with_local_secret
from hubstream.errors import ConfigurationError
from hubstream_cli.common import Commands, StateDirOption, load_settings

app = Commands(help="Tokens for end clients of the delivery API (pull, ack, streams).", no_args_is_help=True)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@app.command()
def token(
    recipient: Annotated[str, typer.Argument(help="Whose mailbox the token opens (its `sub`)")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 90s, 15m, 1h, 7d")] = "1h",
    admin: Annotated[bool, typer.Option(help="Also grant the admin scope (any mailbox, the admin API)")] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Print a signed token (HS256, with the configured or the local stack's secret), alone on stdout.

    e.g. curl -N -H "Authorization: Bearer $(hubstream clients token user-1)" http://127.0.0.1:8090/v1/mailboxes/user-1/stream
    """
    settings = with_local_secret(load_settings(state_dir))
    auth = settings.delivery.auth
    if auth.secret is None:
        raise ConfigurationError(
            "no token secret: set HUBSTREAM_DELIVERY__AUTH__SECRET, or start the local stack (`hubstream dev`) and "
            "pass its --state-dir. With a JWKS (your own identity provider) mint tokens there instead."
        )
    print(
        mint_token(
            auth.secret.get_secret_value(),
            recipient,
            ttl_s=_seconds(ttl),
            admin=admin,
            audience=auth.audience,
            issuer=auth.issuer,
            admin_scope=auth.admin_scope,
        )
    )


def _seconds(text: str) -> float:
    number, unit = text[:-1], text[-1:]
    if unit.isdigit():
        number, unit = text, "s"
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise typer.BadParameter(f"{text!r}: use a number with s, m, h or d, e.g. 15m") from None
    if value <= 0:
        raise typer.BadParameter("the lifetime must be positive")
    return value
