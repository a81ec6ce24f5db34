"""`hubstream deliver`: a delivery node (mailboxes fed by a consumer group, and the delivery HTTP API)."""

from __future__ import annotations

from typing import Annotated

import typer

from delivery.node import DeliveryNode, NodeOptions
from delivery.routing import routed_topics
from devstack.discovery import with_local_secret, with_local_stack
from hubstream.heap import freeze_startup_objects
from hubstream.settings import with_overrides
from hubstream.tracing import configure_tracing
from hubstream_cli.common import StateDirOption, console, load_settings, setup_logging
from kafka_consumer.admin.group_registry import GroupRegistry


def deliver(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group of the delivery nodes")] = "delivery",
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic", "-t", help="Topic to deliver (repeatable) [default: every topic with delivery routing]"
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="sqlite:PATH or postgresql://... [default: settings delivery.store]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="HTTP port; 0 picks one [default: 8090]")] = None,
    consume: Annotated[
        bool, typer.Option("--consume/--no-consume", help="Join the group, or serve the API only (extra nodes)")
    ] = True,
    state_dir: StateDirOption = None,
) -> None:
    """Deliver events to end clients: each event goes to its recipients' mailboxes, committed once durable;
    clients pull with a cursor, ack, or follow a resumable SSE / WebSocket stream.

    SIGTERM or Ctrl-C: streams are told to reconnect, writes in flight finish, offsets are committed and the
    node leaves its group.
    """
    settings = load_settings(state_dir)
    settings = with_local_stack(settings) if consume else with_local_secret(settings)
    overrides = {k: v for k, v in (("store", store), ("host", host)) if v is not None}
    settings = with_overrides(settings, "delivery", **overrides)
    setup_logging(settings)
    configure_tracing("hubstream-delivery")  # only when OTEL_* configures an exporter
    topics = topic or (routed_topics(settings.topics_file) if consume else [])
    if consume:
        GroupRegistry.for_settings(settings).remember(group, topics)  # `hubstream groups list` shows it even when idle
    node = DeliveryNode(settings, NodeOptions(group=group, topics=topics, consume=consume, port=port))
    console.print(
        f"delivery node on [bold]{node.url}[/] ({'group ' + group if consume else 'API only'})", highlight=False
    )
    freeze_startup_objects()  # no full-collection pauses over the imported modules while delivering
    node.run()
