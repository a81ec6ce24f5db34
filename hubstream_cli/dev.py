"""`hubstream dev`: the local stack in one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from devstack.discovery import STACK_FILE, StackInfo
from devstack.launcher import LocalStack, StackPorts, run_until_signalled
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
        ),
        partitions=partitions,
        with_consumer=consumer,
    )
    run_until_signalled(stack, on_ready=lambda info: _print_ready(info, stack.state_dir))
    console.print("[green]stack stopped[/]")


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
                    f"Kafka bootstrap    {info.bootstrap_servers}",
                    f"Schema registry    https://{info.schema_registry}  (CA {info.ca_file}, group {info.schema_group})",
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
