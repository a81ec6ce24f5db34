"""`hubstream webhooks`: the delivery node's webhook endpoints, through its admin API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from delivery.auth import mint_token
from devstack.discovery import StackInfo, with_local_secret
from hubstream.errors import ConfigurationError, HubstreamError
from hubstream_cli.common import Commands, StateDirOption, load_settings

app = Commands(
    help="Signed webhooks from the mailboxes: add endpoints, watch their attempts, recover.", no_args_is_help=True
)
stdout = Console()

NodeOption = Annotated[
    str | None, typer.Option("--node", help="Delivery node URL [default: the local stack's, or settings]")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="HUBSTREAM_ADMIN_TOKEN", help="Admin token [default: minted locally]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer to stdout")]


class WebhookApiError(HubstreamError):
    """The delivery node refused a webhook request or could not be reached."""


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="Where to POST (https; http only to loopback on the local stack)")],
    recipient: Annotated[
        list[str] | None, typer.Option("--recipient", "-r", help="Recipient (repeatable) [default: all]")
    ] = None,
    topic: Annotated[list[str] | None, typer.Option("--topic", "-t", help="Only this topic (repeatable)")] = None,
    ordered: Annotated[bool, typer.Option(help="Each recipient's messages in mailbox order, one at a time")] = False,
    description: Annotated[str, typer.Option(help="A note for operators")] = "",
    as_json: JsonOption = False,
    node: NodeOption = None,
    token: TokenOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Add an endpoint. Prints its secret (whsec_...) once: keep it to verify signatures."""
    body = {
        "url": url,
        "recipients": recipient or "*",
        "topics": topic or None,
        "ordered": ordered,
        "description": description,
    }
    created = _call("POST", "/v1/webhooks", node, token, state_dir, body)
    _print(created, as_json, lambda e: f"endpoint {e['id']} -> {e['url']}\nsecret {e['secret']}")


@app.command("list")
def list_endpoints(
    as_json: JsonOption = False, node: NodeOption = None, token: TokenOption = None, state_dir: StateDirOption = None
) -> None:
    """Every endpoint with its status."""
    endpoints = _call("GET", "/v1/webhooks", node, token, state_dir)
    if as_json:
        print(json.dumps(endpoints, indent=2))
        return
    table = Table("id", "url", "recipients", "ordered", "status")
    for e in endpoints:
        recipients = e["recipients"] if e["recipients"] == "*" else ", ".join(e["recipients"])
        status = e["status"] + (f" ({e['disabledReason']})" if e["disabledReason"] else "")
        table.add_row(e["id"], e["url"], recipients, "yes" if e["ordered"] else "no", status)
    stdout.print(table)


@app.command()
def show(
    endpoint_id: str,
    as_json: JsonOption = False,
    node: NodeOption = None,
    token: TokenOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """One endpoint, with its backlog of deliveries not yet done."""
    _print(
        _call("GET", f"/v1/webhooks/{endpoint_id}", node, token, state_dir),
        as_json,
        lambda e: "\n".join(f"{k:15} {v}" for k, v in e.items()),
    )


@app.command()
def disable(
    endpoint_id: str, node: NodeOption = None, token: TokenOption = None, state_dir: StateDirOption = None
) -> None:
    """Stop sending; deliveries wait, and resume on enable."""
    _call("PATCH", f"/v1/webhooks/{endpoint_id}", node, token, state_dir, {"status": "disabled"})
    stdout.print(f"{endpoint_id} disabled")


@app.command()
def enable(
    endpoint_id: str, node: NodeOption = None, token: TokenOption = None, state_dir: StateDirOption = None
) -> None:
    """Send again, starting with what waited."""
    _call("PATCH", f"/v1/webhooks/{endpoint_id}", node, token, state_dir, {"status": "enabled"})
    stdout.print(f"{endpoint_id} enabled")


@app.command()
def rotate(
    endpoint_id: str,
    overlap: Annotated[float, typer.Option(help="Seconds the old secret keeps signing too")] = 86400,
    as_json: JsonOption = False,
    node: NodeOption = None,
    token: TokenOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """A new secret; requests carry signatures of both until the overlap ends."""
    rotated = _call("POST", f"/v1/webhooks/{endpoint_id}/rotate-secret", node, token, state_dir, {"overlap_s": overlap})
    _print(rotated, as_json, lambda r: f"new secret {r['secret']}")


@app.command()
def recover(
    endpoint_id: str,
    since: Annotated[str, typer.Option(help="ISO-8601 time, or hours back like 6h")] = "24h",
    as_json: JsonOption = False,
    node: NodeOption = None,
    token: TokenOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Send again the deliveries that failed since a time."""
    result = _call("POST", f"/v1/webhooks/{endpoint_id}/recover", node, token, state_dir, {"since": _since(since)})
    _print(result, as_json, lambda r: f"{r['recovered']} deliveries of {endpoint_id} will be sent again")


@app.command()
def attempts(
    endpoint_id: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
    node: NodeOption = None,
    token: TokenOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """The newest attempts: when, status, latency, error."""
    rows = _call("GET", f"/v1/webhooks/{endpoint_id}/attempts?limit={limit}", node, token, state_dir)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("at", "event", "recipient", "attempt", "status", "ms", "error")
    for a in rows:
        at = datetime.fromtimestamp(a["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            at,
            a["eventId"],
            a["recipient"],
            str(a["attempt"]),
            str(a["status"] or "-"),
            f"{a['latencyMs']:.0f}",
            a["error"] or "",
        )
    stdout.print(table)


@app.command("test")
def send_test(
    endpoint_id: str,
    as_json: JsonOption = False,
    node: NodeOption = None,
    token: TokenOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """POST a test message to the endpoint now and show the outcome (exit 1 when it was not a 2xx)."""
    a = _call("POST", f"/v1/webhooks/{endpoint_id}/test", node, token, state_dir)
    _print(
        a,
        as_json,
        lambda a: f"HTTP {a['status']} in {a['latencyMs']:.0f} ms" if a["status"] else f"failed: {a['error']}",
    )
    if not (a["status"] and 200 <= a["status"] < 300):
        raise typer.Exit(1)


@app.command()
def delete(
    endpoint_id: str, node: NodeOption = None, token: TokenOption = None, state_dir: StateDirOption = None
) -> None:
    """Remove an endpoint and its pending deliveries."""
    _call("DELETE", f"/v1/webhooks/{endpoint_id}", node, token, state_dir)
    stdout.print(f"{endpoint_id} deleted")


def _call(
    method: str,
    path: str,
    node: str | None,
    token: str | None,
    state_dir: Path | None,
    body: dict[str, Any] | None = None,
) -> Any:
    base, bearer = _target(node, token, state_dir)
    try:
        response = httpx.request(
            method, base + path, json=body, headers={"authorization": f"Bearer {bearer}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise WebhookApiError(f"the delivery node at {base} did not answer ({exc}); is it running?") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise WebhookApiError(f"{method} {path}: HTTP {response.status_code}: {message}")
    return response.json() if response.content else None


def _target(node: str | None, token: str | None, state_dir: Path | None) -> tuple[str, str]:
    settings = with_local_secret(load_settings(state_dir))
    if node is None:
        try:
            node = StackInfo.read(settings.state_dir).delivery_url
        except HubstreamError:
            node = None
        node = node or f"http://{settings.delivery.host}:{settings.delivery.port}"
    if token is None:
        auth = settings.delivery.auth
        if auth.secret is None:
            raise ConfigurationError(
                "no admin token: pass --token (or HUBSTREAM_ADMIN_TOKEN), or set "
                "HUBSTREAM_DELIVERY__AUTH__SECRET so one can be minted"
            )
        token = mint_token(
            auth.secret.get_secret_value(),
            "hubstream-cli",
            ttl_s=300,
            admin=True,
            audience=auth.audience,
            issuer=auth.issuer,
            admin_scope=auth.admin_scope,
        )
    return node.rstrip("/"), token


def _since(text: str) -> str:
    if text.endswith("h") and text[:-1].replace(".", "", 1).isdigit():
        return (datetime.now(UTC) - timedelta(hours=float(text[:-1]))).isoformat()
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise typer.BadParameter(f"{text!r}: an ISO-8601 time or hours back like 6h") from None


def _print(data: dict[str, Any], as_json: bool, text: Any) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        stdout.print(text(data), highlight=False, soft_wrap=True)
