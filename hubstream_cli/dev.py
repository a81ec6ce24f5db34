"""`hubstream dev`: the local stack in one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from devstack import entra
from devstack.discovery import STACK_FILE, StackInfo
from devstack.launcher import (
    EVENTHUBS_OAUTH_PORT,
    EVENTHUBS_PORT,
    BrokerChoice,
    LocalStack,
    StackPorts,
    run_until_signalled,
)
from hubstream import ports
from hubstream_cli.common import StateDirOption, console, load_settings, setup_logging


def dev(
    state_dir: StateDirOption = None,
    broker_port: Annotated[int, typer.Option(help="Kafka broker port")] = ports.BROKER,
    registry_port: Annotated[int, typer.Option(help="Schema Registry emulator (HTTPS) port")] = ports.REGISTRY,
    api_port: Annotated[int, typer.Option(help="Producer HTTP API port")] = ports.PRODUCER_API,
    consumer_ops_port: Annotated[
        int, typer.Option(help="The consumer's /metrics, /healthz, /readyz port")
    ] = ports.CONSUMER_OPS,
    delivery_port: Annotated[int, typer.Option(help="The delivery node's API port")] = ports.DELIVERY,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions per topic")] = 3,
    consumer: Annotated[bool, typer.Option(help="Also run a consumer-group worker that logs each event")] = True,
    broker: Annotated[
        BrokerChoice,
        typer.Option(help="auto: Apache Kafka when a JDK 17+ is on PATH (jars cached or fetched by Maven), else Tansu"),
    ] = "auto",
    eventhubs: Annotated[
        bool, typer.Option(help="On Apache Kafka, also open the Event Hubs door and a fake Entra ID")
    ] = True,
    eventhubs_port: Annotated[
        int, typer.Option(help="The Event Hubs door: SASL_SSL PLAIN, user $ConnectionString")
    ] = EVENTHUBS_PORT,
    eventhubs_oauth_port: Annotated[
        int, typer.Option(help="The Event Hubs door: SASL_SSL OAUTHBEARER, Entra tokens")
    ] = EVENTHUBS_OAUTH_PORT,
    entra_port: Annotated[int, typer.Option(help="The fake Entra ID (HTTPS) port")] = entra.DEFAULT_PORT,
    reauth_ms: Annotated[int, typer.Option(min=1000, help="The OAUTHBEARER door's connections.max.reauth.ms")] = 60_000,
) -> None:
    """Start the local stack: broker, schema registry emulator, producer API and a consumer. Ctrl-C stops it all."""
    settings = load_settings(state_dir)
    setup_logging(settings)
    stack = LocalStack(
        settings,
        StackPorts(
            broker=broker_port,
            registry=registry_port,
            api=api_port,
            consumer_ops=consumer_ops_port,
            delivery=delivery_port,
            eventhubs=eventhubs_port,
            eventhubs_oauth=eventhubs_oauth_port,
            entra=entra_port,
        ),
        partitions=partitions,
        with_consumer=consumer,
        broker=broker,
        eventhubs=eventhubs,
        reauth_ms=reauth_ms,
    )
    run_until_signalled(stack, on_ready=lambda info: _print_ready(info, stack.state_dir))
    console.print("[green]stack stopped[/]")


def _broker_name(info: StackInfo) -> str:
    return "Apache Kafka, data kept in the state dir" if info.broker == "kafka" else "Tansu, memory only"


def _door_lines(info: StackInfo) -> list[str]:
    if info.eventhubs is None:
        return []
    door = info.eventhubs
    lines = [
        f"Event Hubs door    {door.bootstrap} SASL PLAIN ($ConnectionString; the string is in stack.json)",
        f"                   {door.oauth_bootstrap} OAUTHBEARER (CA {door.ca_file})",
    ]
    if door.entra is not None:
        lines.append(f"Fake Entra ID      {door.entra.authority}  (tenant {door.entra.tenant_id})")
    return lines


def _print_ready(info: StackInfo, state_dir: Path) -> None:
    topic = next(iter(info.topics), "chat.responses")
    example = {
        "eventId": "evt-1",
        "conversationId": "conv-1",
        "userId": "user-1",
        "sequence": 0,
        "content": "Hello!",
        "final": True,
        "createdAt": "2026-01-01T12:00:00Z",
        "metadata": {"model": "gpt"},
    }
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"Kafka bootstrap    {info.bootstrap_servers}  ({_broker_name(info)})",
                    *_door_lines(info),
                    f"Schema registry    https://{info.schema_registry}  "
                    f"(CA {info.ca_file}, group {info.schema_group})",
                    f"Producer API       {info.producer_url}  (docs {info.producer_url}/docs)",
                    f"Delivery API       {info.delivery_url}  (docs {info.delivery_url}/docs)",
                    f"Topics             {', '.join(f'{t} ({n})' for t, n in info.topics.items())}",
                    f"Stack file         {state_dir / STACK_FILE}",
                ]
            ),
            title="hubstream dev is ready",
        )
    )
    state = "" if state_dir.resolve() == (Path.cwd() / ".hubstream").resolve() else f" --state-dir {state_dir}"
    # plain text, unwrapped, so it can be copied and pasted as it is
    for title, command in (
        (
            "Watch user-1's stream (in another terminal):",
            f'curl -N -H "Authorization: Bearer $(hubstream clients token user-1{state})" '
            f"{info.delivery_url}/v1/mailboxes/user-1/stream",
        ),
        (
            "Publish an event for user-1:",
            f"curl -s -X POST {info.producer_url}/v1/topics/{topic}/events "
            f"-H 'content-type: application/json' -d '{json.dumps(example)}'",
        ),
    ):
        console.print(title, highlight=False)
        console.print(command, soft_wrap=True, highlight=False, markup=False)
