"""The eventhubs profile through the local broker's Event Hubs doors, configured from the environment only.

A broker of this module's own (devstack.kafka, Apache Kafka) opens SASL_SSL PLAIN with a connection string and
SASL_SSL OAUTHBEARER validating RS256 tokens of the fake Entra ID (devstack.entra) for audience
``https://hubstream-test.servicebus.windows.net``; the registry emulator takes only Entra tokens too. Each door
carries the producer API, a consumer group, a delivery node, ``hubstream dlq replay`` and ``hubstream groups
reset-offsets``; a wrong key and a wrong audience fail fast; a slow run outlives three 90 s token lifetimes.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from devstack.entra_server import EntraServer, serving
from devstack.tls import ensure_tls_files
from devstack.topics import ensure_topics
from hubstream import kafka_config
from hubstream.credentials import OAuthBearerTokens
from hubstream.errors import BrokerLoginError
from hubstream.ports import free_port
from hubstream.settings import ApiSettings, Settings, load_settings
from kafka_consumer import PermanentError
from kafka_consumer.events import ConsumedEvent
from tests.fixtures.delivery import auth, delivery_settings, running_node
from tests.fixtures.events import chat_event
from tests.fixtures.registry import RegistryEmulator, running_emulator
from tests.fixtures.services import CHAT, Collected, producer_api, register_contracts, running_worker, write_catalog

kafka = pytest.importorskip("devstack.kafka", reason="the local Apache Kafka broker (devstack/kafka.py) is not here")
kafka_jars = pytest.importorskip("devstack.kafka_jars", reason="devstack/kafka_jars.py is not here")

pytestmark = pytest.mark.broker
NAMESPACE = "hubstream-test.servicebus.windows.net"
REPO = Path(__file__).resolve().parents[1]
DOORS = ["connection-string", "entra"]


@dataclass
class Doors:
    state_dir: Path
    entra: EntraServer
    broker: Any  # devstack.kafka.KafkaBroker
    emulator: RegistryEmulator
    ca_file: Path
    plain: AdminClient  # the broker's PLAINTEXT listener, to create topics as Azure's portal would

    @property
    def door(self) -> Any:
        return self.broker.door

    def env(self, door: str, **overrides: str) -> dict[str, str]:
        """The variables a user sets for this door, and nothing else."""
        env = {
            "HUBSTREAM_PROFILE": "eventhubs",
            "HUBSTREAM_EVENTHUBS__CA_FILE": str(self.ca_file),
            "HUBSTREAM_REGISTRY__NAMESPACE": self.emulator.namespace,
            "HUBSTREAM_REGISTRY__CA_FILE": str(self.emulator.ca_file),
            "HUBSTREAM_REGISTRY__CREDENTIAL": "azure",
            "HUBSTREAM_REGISTRY__GROUP": self.emulator.group,
            "HUBSTREAM_STATE_DIR": str(self.state_dir),
            # the azure-identity variables: the Entra-protected emulator needs them on both doors
            **self.entra.entra.env(),
            "HUBSTREAM_EVENTHUBS__AUTHORITY": self.entra.entra.authority,
        }
        if door == "connection-string":
            env["HUBSTREAM_EVENTHUBS__CONNECTION_STRING"] = self.door.connection_string
        else:
            env["HUBSTREAM_EVENTHUBS__AUTH"] = "entra"
            env["HUBSTREAM_EVENTHUBS__NAMESPACE"] = NAMESPACE
            env["HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS"] = self.door.oauth_bootstrap()
        return {**env, **overrides}

    def topics(self, *names: str) -> None:
        ensure_topics(self.plain, dict.fromkeys(names, 3))


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    reason = kafka_jars.unavailable_reason()
    if reason:
        pytest.skip(f"no Apache Kafka here: {reason}")
    state_dir = tmp_path_factory.mktemp("doors")
    tls = ensure_tls_files(state_dir)
    with serving(state_dir, token_lifetime_s=300) as entra:
        plain_port = free_port()
        door = kafka.EventHubsDoor(
            plain_port=plain_port,
            oauth_port=free_port(),
            cert_file=tls.cert_file,
            key_file=tls.key_file,
            connection_string=(
                f"Endpoint=sb://localhost:{plain_port}/;SharedAccessKeyName=RootManageSharedAccessKey;"
                f"SharedAccessKey={uuid.uuid4().hex}"
            ),
            jwks_file=entra.entra.jwks_file,
            issuer=entra.entra.issuer,
            audience=f"https://{NAMESPACE}",
            reauth_ms=30_000,
        )
        broker = kafka.start_kafka(free_port(), state_dir=state_dir, door=door)
        args = ["--entra-jwks", str(entra.entra.jwks_file), "--entra-issuer", entra.entra.issuer]
        try:
            with running_emulator(state_dir / "registry", extra_args=args) as emulator:
                yield Doors(
                    state_dir,
                    entra,
                    broker,
                    emulator,
                    tls.ca_file,
                    AdminClient({"bootstrap.servers": broker.bootstrap_servers}),
                )
        finally:
            broker.stop()


@pytest.fixture
def door_env(doors: Doors, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's door, set in the environment; also a topic catalog and short group timings."""
    env = doors.env(request.param)
    topic = f"chat-{uuid.uuid4().hex[:8]}"
    (doors.state_dir / topic).mkdir()
    catalog = write_catalog(doors.state_dir / topic, {topic: CHAT})
    env.update(
        {
            "HUBSTREAM_TOPICS_FILE": str(catalog),
            "HUBSTREAM_CONSUMER__SESSION_TIMEOUT_MS": "6000",
            "HUBSTREAM_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
            "HUBSTREAM_CONSUMER__ASSIGNOR": "range",
            "HS_TEST_TOPIC": topic,
        }
    )
    if "auth" in ApiSettings.model_fields:
        env["HUBSTREAM_API__AUTH"] = "false"  # the producer API's own callers are not what this test is about
    for name, value in env.items():
        if name.startswith(("HUBSTREAM_", "AZURE_")):
            monkeypatch.setenv(name, value)
    return env


def env_settings() -> Settings:
    return load_settings(_env_file=None)


def hubstream(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The installed command line as a user runs it, with exactly ``env`` on top of a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSTREAM_", "AZURE_"))}
    return subprocess.run(
        [sys.executable, "-m", "hubstream_cli", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_topic(settings: Settings, topic: str, count: int, timeout_s: float = 30) -> list[Any]:
    consumer = Consumer(kafka_config.consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(message)
    finally:
        consumer.close()
    return records


class FailMarked(Collected):
    """Collects events; an event whose content is ``poison`` is refused for good (it goes to the DLQ)."""

    def __call__(self, event: ConsumedEvent) -> None:
        if event.value.get("content") == "poison":
            raise PermanentError("poison")
        super().__call__(event)


@pytest.mark.parametrize("door_env", DOORS, indirect=True)
def test_everything_runs_through_the_door(doors: Doors, door_env: dict[str, str], tmp_path: Path) -> None:
    topic, dlq, replayed = (
        door_env["HS_TEST_TOPIC"],
        door_env["HS_TEST_TOPIC"] + ".dlq",
        door_env["HS_TEST_TOPIC"] + ".r",
    )
    doors.topics(topic, dlq, replayed)
    settings = env_settings()
    register_contracts(settings)  # through the Entra-protected registry
    events = [chat_event(f"conv-{i % 3}", i, userId="u1") for i in range(12)] + [
        chat_event(content="poison", userId="u1")
    ]
    group = f"workers-{uuid.uuid4().hex[:6]}"
    collected = FailMarked()
    node_settings = delivery_settings(settings, f"sqlite:{tmp_path / 'mailboxes.db'}")
    with (
        running_node(node_settings, [topic], group=f"delivery-{uuid.uuid4().hex[:6]}") as node,
        running_worker(settings, group, [topic], handler=collected),
        producer_api(settings) as api,
    ):
        response = httpx.post(f"{api}/v1/topics/{topic}/events:batch", json={"events": events}, timeout=60)
        assert response.status_code == 200, response.text
        assert all(item["ok"] for item in response.json()["results"]), response.text
        got = collected.wait_for(12, timeout=60)
        assert sorted(e.value["eventId"] for e in got) == sorted(e["eventId"] for e in events[:12])
        deadline = time.monotonic() + 30
        while True:
            page = httpx.get(f"{node.url}/v1/mailboxes/u1/messages", headers=auth("u1"), timeout=10).json()
            if len(page["messages"]) >= 13 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # the poison event is a message too: only the worker refuses it
        missing = {e["eventId"] for e in events} - {m["eventId"] for m in page["messages"]}
        assert not missing, f"not in u1's mailbox after 30 s: {missing}; poison is {events[-1]['eventId']}"
        assert len(page["messages"]) == 13, page

    replay = hubstream(door_env, "dlq", "replay", "--topic", dlq, "--to", replayed, "--from-beginning")
    assert replay.returncode == 0, replay.stderr + replay.stdout
    [record] = read_topic(settings, replayed, 1)
    assert dict(record.headers() or []).get("hubstream.dlq.replayed-from") is not None

    reset = hubstream(door_env, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to", "earliest")
    assert reset.returncode == 0, reset.stderr + reset.stdout
    admin = AdminClient(kafka_config.admin_config(settings))
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(3)])
    committed = admin.list_consumer_group_offsets([request])[group].result(15)
    assert {tp.offset for tp in committed.topic_partitions} == {0}


def test_a_wrong_connection_string_key_fails_fast_and_says_so(doors: Doors) -> None:
    wrong = doors.door.connection_string.rsplit("SharedAccessKey=", 1)[0] + "SharedAccessKey=not-the-key"
    env = doors.env("connection-string", HUBSTREAM_EVENTHUBS__CONNECTION_STRING=wrong)
    started = time.monotonic()
    result = hubstream(env, "consume", "--group", "g-wrong-key", "--topic", "chat.responses")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert "refused the connection string" in result.stderr and "SharedAccessKey" in result.stderr
    assert "not-the-key" not in result.stderr  # the secret is never printed
    assert elapsed < 20, elapsed
    logging.getLogger(__name__).info("wrong key failed in %.1f s (process start included)", elapsed)


def test_a_token_for_the_wrong_audience_fails_fast_and_says_so(doors: Doors) -> None:
    env = doors.env("entra", HUBSTREAM_EVENTHUBS__NAMESPACE="someone-else.servicebus.windows.net")
    started = time.monotonic()
    result = hubstream(env, "consume", "--group", "g-wrong-aud", "--topic", "chat.responses")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    flat = " ".join(result.stderr.split())
    assert "refused the Entra ID token" in flat and "https://someone-else.servicebus.windows.net" in flat
    assert elapsed < 20, elapsed


def test_the_login_check_itself_names_the_audience(doors: Doors, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in doors.env("entra", HUBSTREAM_EVENTHUBS__NAMESPACE="nope.servicebus.windows.net").items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(BrokerLoginError, match=re.escape("audience 'https://nope.servicebus.windows.net'")):
        kafka_config.producer_config(env_settings())
    assert time.monotonic() - started < 5


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("door_env", ["entra"], indirect=True)
def test_a_run_through_three_token_lifetimes_loses_and_duplicates_nothing(
    doors: Doors, door_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hubstream.credentials")
    doors.entra.set_token_lifetime(90)
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__TOKEN_TIMEOUT_S", "19")  # a credential of its own, with 90 s tokens
    topic = door_env["HS_TEST_TOPIC"]
    doors.topics(topic, topic + ".dlq")
    settings = env_settings()
    register_contracts(settings)
    oauth_cb = kafka_config.client_config(settings)["oauth_cb"]
    assert isinstance(oauth_cb, OAuthBearerTokens)
    issued_before = doors.entra.stats["tokens_issued"]
    collected = Collected()
    sent: list[str] = []
    run_s = float(os.environ.get("HS_TEST_TOKEN_RUN_S", "300"))
    try:
        with (
            running_worker(settings, f"long-{uuid.uuid4().hex[:6]}", [topic], handler=collected),
            producer_api(settings) as api,
            httpx.Client(timeout=60) as http,
        ):
            deadline = time.monotonic() + run_s
            i = 0
            while time.monotonic() < deadline:
                event = chat_event(f"conv-{i % 5}", i)
                response = http.post(f"{api}/v1/topics/{topic}/events", json=event)
                assert response.status_code < 300, response.text
                sent.append(event["eventId"])
                i += 1
                time.sleep(0.5)
            got = collected.wait_for(len(sent), timeout=60)
    finally:
        doors.entra.set_token_lifetime(300)
    ids = [e.value["eventId"] for e in got]
    assert sorted(ids) == sorted(sent), "lost or duplicated events"
    refreshes = [r for r in caplog.records if "Entra ID token refreshed" in r.getMessage()]
    lifetimes = run_s / 90
    assert oauth_cb.refreshes >= int(lifetimes) and len(refreshes) == oauth_cb.refreshes
    assert oauth_cb.failures == 0
    issued = doors.entra.stats["tokens_issued"] - issued_before
    # no storm: about one token per 72 s (librdkafka refreshes at 80 %) for Kafka, plus the registry's
    assert issued <= 3 * (lifetimes + 2), issued
    print(
        f"\n{len(sent)} events over {run_s:.0f} s; {oauth_cb.tokens} Kafka tokens ({oauth_cb.refreshes} refreshes), "
        f"{issued} tokens issued in all, last fetch {1000 * (oauth_cb.last_fetch_s or 0):.0f} ms"
    )
