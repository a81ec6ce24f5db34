"""The ``hubstream`` command. Each subcommand lives in its own module and is registered here."""

from __future__ import annotations

from hubstream_cli.common import Commands

app = Commands(
    name="hubstream",
    help="Event streaming on Azure Event Hubs' Kafka endpoint, with a local stack for development.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _register() -> None:
    # imported here so `hubstream --help` stays fast and modules do not import each other through the app
    from hubstream_cli import (
        api_keys,
        clients,
        consume,
        deliver,
        dev,
        dlq,
        entra,
        groups,
        partitions,
        produce_api,
        provision,
        registry,
        schemas,
        send_test_event,
        tail,
        webhooks,
    )

    app.command("dev")(dev.dev)
    app.command("produce-api")(produce_api.produce_api)
    app.command("consume")(consume.consume)
    app.command("deliver")(deliver.deliver)
    app.command("provision")(provision.provision)
    app.command("partitions")(partitions.partitions)
    app.command("tail")(tail.tail_command)
    app.command("send-test-event")(send_test_event.send_test_event)
    app.add_typer(registry.app, name="registry")
    app.add_typer(groups.app, name="groups")
    app.add_typer(schemas.app, name="schemas")
    app.add_typer(dlq.app, name="dlq")
    app.add_typer(clients.app, name="clients")
    app.add_typer(webhooks.app, name="webhooks")
    app.add_typer(entra.app, name="entra")
    app.add_typer(api_keys.app, name="api-keys")


def main() -> None:
    _register()
    app()
