"""`hubstream webhooks …` against a running delivery node: every command, its --json output and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from hubstream.settings import Settings
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.delivery import delivery_settings, running_node, token
from tests.fixtures.events import chat_event
from tests.fixtures.receiver import receiver
from tests.fixtures.services import CHAT, make_settings, produce_events, register_contracts, write_catalog
from tests.fixtures.waiting import wait_for

FAST = {"retry_schedule_s": [0, 0.3, 0.3], "poll_interval_s": 0.1, "timeout_s": 1.0}


@pytest.fixture
def node_setup(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> tuple[Settings, str]:
    topic = kafka_broker.create_topic("hooks-cli", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), webhooks=FAST)
    register_contracts(settings)
    return delivery_settings(settings, f"sqlite:{tmp_path / 'm.db'}"), topic


def webhooks(node_url: str, *args: str, bearer: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUBSTREAM_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "hubstream_cli", "webhooks", *args, "--node", node_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "HUBSTREAM_ADMIN_TOKEN": bearer or token("ops", admin=True)},
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_webhooks_command_through_the_cli(node_setup: tuple[Settings, str]) -> None:
    settings, topic = node_setup
    with (
        receiver() as hooks,
        running_node(settings, [topic], group=unique("delivery")) as node,
    ):
        created = as_json(webhooks(node.url, "add", hooks.url, "--recipient", "u1", "--ordered", "--json"))
        endpoint = created["id"]
        assert created["secret"].startswith("whsec_") and created["recipients"] == ["u1"] and created["ordered"]
        assert [e["id"] for e in as_json(webhooks(node.url, "list", "--json"))] == [endpoint]
        assert endpoint in webhooks(node.url, "list").stdout  # the table

        first = chat_event("c", 0, userId="u1")
        produce_events(settings, topic, [first, chat_event("c", 0, userId="someone-else")])
        wait_for(lambda: len(hooks.received()) == 1, "the message for u1")
        Webhook(created["secret"]).verify(hooks.received()[0].body, hooks.received()[0].headers)
        wait_for(lambda: as_json(webhooks(node.url, "attempts", endpoint, "--json")), "the attempt logged")
        [attempt] = as_json(webhooks(node.url, "attempts", endpoint, "--json"))
        assert attempt["eventId"] == first["eventId"] and attempt["status"] == 200
        assert first["eventId"] in webhooks(node.url, "attempts", endpoint).stdout

        tested = webhooks(node.url, "test", endpoint, "--json")
        assert as_json(tested)["status"] == 200 and len(hooks.received()) == 2

        rotated = as_json(webhooks(node.url, "rotate", endpoint, "--overlap", "60", "--json"))
        produce_events(settings, topic, [chat_event("c", 1, userId="u1")])
        wait_for(lambda: len(hooks.received()) == 3, "a message after the rotation")
        latest = hooks.received()[-1]
        for secret in (created["secret"], rotated["secret"]):  # both sign during the overlap
            Webhook(secret).verify(latest.body, latest.headers)

        assert "disabled" in webhooks(node.url, "disable", endpoint).stdout
        assert as_json(webhooks(node.url, "show", endpoint, "--json"))["status"] == "disabled"
        assert "enabled" in webhooks(node.url, "enable", endpoint).stdout
        recovered = as_json(webhooks(node.url, "recover", endpoint, "--since", "1h", "--json"))
        assert recovered["recovered"] == 0  # nothing failed

        metrics = httpx.get(f"{node.url}/metrics").text
        assert f'hubstream_webhook_attempts_total{{endpoint="{endpoint}",outcome="ok"}}' in metrics
        wait_for(
            lambda: f'hubstream_webhook_backlog{{endpoint="{endpoint}"}} 0.0' in httpx.get(f"{node.url}/metrics").text,
            "the backlog gauge",
        )

        assert "deleted" in webhooks(node.url, "delete", endpoint).stdout
        gone = webhooks(node.url, "show", endpoint)
        assert gone.returncode != 0 and "HTTP 404" in gone.stderr


def test_cli_errors_say_what_went_wrong(node_setup: tuple[Settings, str]) -> None:
    settings, topic = node_setup
    with running_node(settings, [topic], group=unique("delivery")) as node:
        not_admin = webhooks(node.url, "list", bearer=token("u1"))
        assert not_admin.returncode != 0 and "HTTP 403" in not_admin.stderr
        private = webhooks(node.url, "add", "http://10.0.0.5/hook")
        assert private.returncode != 0 and "HTTP 422" in private.stderr
        bad_since = webhooks(node.url, "recover", "ep_x", "--since", "yesterday")
        assert bad_since.returncode == 2 and "hours back like 6h" in bad_since.stderr
    nobody = webhooks("http://127.0.0.1:9", "list")
    assert nobody.returncode != 0 and "did not answer" in nobody.stderr and "is it running?" in nobody.stderr
