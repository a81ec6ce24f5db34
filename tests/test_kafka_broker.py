"""The local Apache Kafka broker (devstack/kafka.py): start, restart with data, stop, errors, the Event Hubs door.

Door tests use the session broker when it is Apache Kafka; the others start private brokers in temp dirs.
All of them need a JDK and skip without one.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from devstack import kafka, kafka_jars
from devstack.kafka import EventHubsDoor, KafkaBroker, start_kafka
from devstack.topics import ensure_topics
from hubstream.errors import BrokerStartError, JavaNotFoundError, KafkaJarsError, PortInUseError
from hubstream.ports import free_port
from tests.fixtures.broker import (
    AUDIENCE,
    ISSUER,
    LocalKafka,
    TokenSigner,
    connection_string,
    event_hubs_door,
    unique,
)
from tests.fixtures.events import chat_event
from tests.fixtures.services import (
    CHAT,
    Collected,
    make_settings,
    producer_api,
    register_contracts,
    running_worker,
    write_catalog,
)
from tests.fixtures.waiting import wait_for

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(kafka_jars.unavailable_reason() is not None, reason=f"{kafka_jars.unavailable_reason()}"),
]


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Callable[..., KafkaBroker]]:
    """Start brokers on one state dir (the same port each time); all stopped at the end."""
    started: list[KafkaBroker] = []
    port = free_port()

    def start(**options: Any) -> KafkaBroker:
        broker = start_kafka(port, state_dir=tmp_path / "state", **options)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


def produce(bootstrap: str, topic: str, values: list[bytes], **config: Any) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, **config})
    for value in values:
        producer.produce(topic, value, key=value)
    assert producer.flush(30) == 0


def consume(bootstrap: str, topic: str, group: str, count: int, timeout: float = 30, **config: Any) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 3000,
            **config,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def test_starts_within_seconds_and_a_restart_keeps_topics_records_and_commits(
    private_broker: Callable[..., KafkaBroker],
) -> None:
    first = private_broker()
    assert first.formatted and first.ready_s < 60, first.ready_s
    admin = AdminClient({"bootstrap.servers": first.bootstrap_servers})
    topic = unique("keep")
    ensure_topics(admin, {topic: 2})
    produce(first.bootstrap_servers, topic, [f"v{i}".encode() for i in range(50)])
    group = unique("g")
    assert len(consume(first.bootstrap_servers, topic, group, 50)) == 50

    started = time.monotonic()
    assert first.stop() in (0, 143)  # SIGTERM: a controlled shutdown, not a kill
    assert time.monotonic() - started < 10

    second = private_broker()
    assert not second.formatted and second.ready_s < 60
    produce(second.bootstrap_servers, topic, [b"after"])
    # the group resumes from its commit: only the record written after the restart is new to it
    assert consume(second.bootstrap_servers, topic, group, 1) == [b"after"]
    consumer = Consumer({"bootstrap.servers": second.bootstrap_servers, "group.id": unique("w")})
    try:
        total = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(2))
    finally:
        consumer.close()
    assert total == 51


def test_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(tmp_path))  # neither java nor mvn
        with pytest.raises(JavaNotFoundError, match=r"Java 17 or newer.*--broker tansu"):
            kafka_jars.find_java()
        with pytest.raises(KafkaJarsError, match="Maven \\(mvn\\) is not on PATH"):
            kafka_jars.resolve_jars(root=tmp_path / "empty-cache")
        assert "java" in (kafka_jars.unavailable_reason() or "").lower()

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(PortInUseError, match="already in use"):
            start_kafka(holder.getsockname()[1], state_dir=tmp_path / "busy")


def test_a_second_broker_on_the_same_data_dir_fails_with_its_log(private_broker: Callable[..., KafkaBroker]) -> None:
    first = private_broker()
    state_dir = first.data_dir.parents[1]
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match="exited with code") as failure:
        start_kafka(free_port(), state_dir=state_dir, log_file=state_dir / "logs" / "second.log")
    assert "lock" in str(failure.value).lower()
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_jars_resolve_cold_from_maven_central(tmp_path: Path) -> None:
    """An empty jar cache and an empty Maven repository: everything comes from Maven Central, once."""
    if shutil.which("mvn") is None:
        pytest.skip("no mvn on PATH")
    env = {"MAVEN_OPTS": f"-Dmaven.repo.local={tmp_path / 'm2'}"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        started = time.monotonic()
        libs = kafka_jars.resolve_jars(root=tmp_path / "cache")
        cold = time.monotonic() - started
        started = time.monotonic()
        assert kafka_jars.resolve_jars(root=tmp_path / "cache") == libs
        assert time.monotonic() - started < 0.5  # cached: no Maven at all
    names = {p.name for p in libs.iterdir()}
    assert f"kafka_2.13-{kafka_jars.KAFKA_VERSION}.jar" in names
    assert any(n.startswith("log4j-slf4j-impl") for n in names)
    print(f"cold resolve {cold:.1f} s, {sum(p.stat().st_size for p in libs.iterdir()) / 1e6:.0f} MB")


# --- the Event Hubs door on the session broker -------------------------------------------------------------------


@pytest.fixture
def door_broker(kafka_broker: LocalKafka) -> LocalKafka:
    if kafka_broker.door is None:
        pytest.skip("the Event Hubs door needs the session broker to be Apache Kafka")
    return kafka_broker


def tls_config(broker: LocalKafka) -> dict[str, Any]:
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(broker.ca_file), "broker.address.family": "v4"}


def plain_config(broker: LocalKafka, password: str) -> dict[str, Any]:
    assert broker.door is not None
    return {
        "bootstrap.servers": broker.door.bootstrap(),
        **tls_config(broker),
        "sasl.mechanism": "PLAIN",
        "sasl.username": "$ConnectionString",
        "sasl.password": password,
    }


def oauth_config(broker: LocalKafka, token: Callable[[], tuple[str, float]]) -> dict[str, Any]:
    assert broker.door is not None
    return {
        "bootstrap.servers": broker.door.oauth_bootstrap(),
        **tls_config(broker),
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": lambda _config: token(),
    }


def first_error(config: dict[str, Any], timeout: float = 15) -> tuple[KafkaError | None, float]:
    """Connect an admin client; the first error its error_cb reports and how long it took to come."""
    errors: list[KafkaError] = []
    started = time.monotonic()
    admin = AdminClient({**config, "error_cb": errors.append})
    deadline = started + timeout
    while not errors and time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return None, time.monotonic() - started
        except Exception:  # noqa: BLE001 - the error_cb says why
            admin.poll(0.05)
    return (errors[0] if errors else None), time.monotonic() - started


def test_plain_door_takes_the_connection_string_and_refuses_a_wrong_key(door_broker: LocalKafka) -> None:
    assert door_broker.door is not None
    right = door_broker.door.connection_string
    topic = door_broker.create_topic("door", partitions=1)
    produce(
        door_broker.door.bootstrap(),
        topic,
        [b"through-the-door"],
        **_without_bootstrap(plain_config(door_broker, right)),
    )
    assert consume(door_broker.bootstrap_servers, topic, unique("g"), 1) == [b"through-the-door"]

    wrong = connection_string(door_broker.door.plain_port, key="d3Jvbmcta2V5")
    error, took = first_error(plain_config(door_broker, wrong))
    assert error is not None and error.code() == KafkaError._AUTHENTICATION, error
    assert "Invalid username or password" in error.str()
    assert took < 3, took


def test_oauth_door_verifies_signature_issuer_and_audience(door_broker: LocalKafka, tmp_path: Path) -> None:
    signer = door_broker.signer
    assert signer is not None and door_broker.door is not None
    topic = door_broker.create_topic("oauth", partitions=1)
    good = oauth_config(door_broker, lambda: signer.token())
    produce(door_broker.door.oauth_bootstrap(), topic, [b"with-a-token"], **_without_bootstrap(good))
    assert consume(door_broker.door.oauth_bootstrap(), topic, unique("g"), 1, **_without_bootstrap(good)) == [
        b"with-a-token"
    ]

    stranger = TokenSigner.create(tmp_path)  # same kid, a key the broker never saw
    cases = {
        "audience": lambda: signer.token(audience="https://someone-else.servicebus.windows.net"),
        "issuer": lambda: signer.token(issuer="https://sts.windows.net/another-tenant/"),
        "signature": lambda: stranger.token(),
    }
    for what, token in cases.items():
        error, took = first_error(oauth_config(door_broker, token))
        assert error is not None and error.code() == KafkaError._AUTHENTICATION, (what, error)
        assert "invalid_token" in error.str(), (what, error.str())
        assert took < 5, (what, took)


def test_oauth_door_forces_reauthentication_and_clients_keep_working(tmp_path: Path) -> None:
    """connections.max.reauth.ms=2000: the broker ends every session after 2 s unless the client re-authenticates
    in-band (KIP-368). A producer and a consumer run 12 s (about five sessions each) and see no error at all: no
    disconnect, no authentication failure, every record read.

    Sessions bounded by a short token's expiry instead (tokens of 6-10 s, the 60 s default reauth) sometimes fail
    re-authentication with ILLEGAL_SASL_STATE on librdkafka 2.16 + Kafka 4.1: the broker refuses a re-authentication
    started within 1 s of the previous one. Real tokens live an hour, so sessions end by connections.max.reauth.ms.
    """
    door, signer, ca_file = event_hubs_door(tmp_path / "state", reauth_ms=2000)
    broker = start_kafka(free_port(), state_dir=tmp_path / "state", door=door)
    try:
        local = LocalKafka(
            broker.bootstrap_servers, "kafka", AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        )
        local.door, local.ca_file, local.signer = door, ca_file, signer
        issued: list[float] = []

        def token() -> tuple[str, float]:
            issued.append(time.monotonic())
            return signer.token(ttl_s=600)

        config = _without_bootstrap(oauth_config(local, token))
        errors: list[KafkaError] = []
        topic = local.create_topic("reauth", partitions=1)
        producer = Producer({"bootstrap.servers": door.oauth_bootstrap(), **config, "error_cb": errors.append})
        consumer = Consumer(
            {
                "bootstrap.servers": door.oauth_bootstrap(),
                **config,
                "group.id": unique("g"),
                "auto.offset.reset": "earliest",
                "error_cb": errors.append,
            }
        )
        consumer.subscribe([topic])
        seen = sent = 0
        try:
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                producer.produce(topic, f"{sent}".encode())
                sent += 1
                producer.poll(0)
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    seen += 1
            assert producer.flush(15) == 0
            while seen < sent:
                message = consumer.poll(5)
                assert message is not None, f"read {seen} of {sent}"
                if message.error() is None:
                    seen += 1
        finally:
            consumer.close()
        assert not errors, errors
        assert seen == sent and sent > 50
        assert len(issued) <= 2  # one token each, re-presented at every re-authentication
    finally:
        broker.stop()


def _without_bootstrap(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "bootstrap.servers"}


def test_door_keystore_and_properties_hold_what_the_broker_needs(tmp_path: Path) -> None:
    """server.properties is what a reader would check by hand: the JAAS line, the validator, the JWKS URL."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n")
    door = EventHubsDoor(1, 2, cert, key, connection_string(1, key="k"), tmp_path / "jwks.json", ISSUER, AUDIENCE, 5000)
    keystore = kafka.write_keystore(door, tmp_path / "keystore.pem")
    assert keystore.read_text().index("PRIVATE KEY") < keystore.read_text().index("CERTIFICATE")
    assert oct(keystore.stat().st_mode & 0o777) == "0o600"
    props = kafka.server_properties(
        host="127.0.0.1", port=3, controller_port=4, data_dir=tmp_path, door=door, keystore=keystore
    )
    assert props["listener.name.ehplain.plain.sasl.jaas.config"].endswith(
        f'user_$ConnectionString="{door.connection_string}";'
    )
    assert props["listener.name.ehoauth.oauthbearer.sasl.oauthbearer.jwt.validator.class"].endswith(
        "BrokerJwtValidator"
    )
    assert props["listener.name.ehoauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url"] == door.jwks_url
    assert props["listener.name.ehoauth.oauthbearer.connections.max.reauth.ms"] == "5000"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:3,EHPLAIN://localhost:1,EHOAUTH://localhost:2"


# --- the broker stopped and killed under load (chaos) -----------------------------------------------------------


@dataclass
class Load:
    """Posts chat events to the producer API from a thread; remembers the ones it acknowledged (HTTP 200)."""

    url: str
    topic: str
    acked: set[str] = field(default_factory=set)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            sequence = 0
            while not self.stop.is_set():
                event = chat_event(f"conv-{sequence % 20}", sequence)
                sequence += 1
                try:
                    response = client.post(f"{self.url}/v1/topics/{self.topic}/events", json=event)
                except httpx.HTTPError:
                    self.refused += 1
                    continue
                if response.status_code == 200:
                    self.acked.add(event["eventId"])
                else:
                    self.refused += 1
                    time.sleep(0.05)


@pytest.mark.chaos
@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_a_broker_restart_under_load_loses_no_acknowledged_event(
    how: str, tmp_path: Path, registry_emulator: Any
) -> None:
    """The producer API takes events while the broker is stopped (SIGTERM) or killed (kill -9) and started again
    on its data. Every event the API acknowledged is consumed afterwards, and the group resumes from its commits:
    once it caught up, nothing is left between its committed offsets and the end of the log."""
    state_dir, port = tmp_path / "state", free_port()
    broker = start_kafka(port, state_dir=state_dir)
    try:
        local = LocalKafka(
            broker.bootstrap_servers, "kafka", AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        )
        topic = local.create_topic("restart", partitions=3)
        settings = make_settings(local, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
        register_contracts(settings)
        consumed = Collected()
        group = unique("g")
        with producer_api(settings) as url, running_worker(settings, group, [topic], consumed):
            load = Load(url, topic)
            sender = threading.Thread(target=load.run, daemon=True)
            sender.start()
            wait_for(lambda: len(load.acked) >= 200, "200 acknowledged events before the restart", timeout_s=60)
            if how == "sigterm":
                assert broker.stop() in (0, 143)
            else:
                broker.process.process.kill()
                broker.stop()
            time.sleep(1)
            broker = start_kafka(port, state_dir=state_dir)
            before = len(load.acked)
            wait_for(lambda: len(load.acked) >= before + 200, "200 more acknowledged after the restart", timeout_s=90)
            load.stop.set()
            sender.join(60)
            acked = set(load.acked)
            wait_for(
                lambda: acked <= {e.value["eventId"] for e in list(consumed.events)},
                f"all {len(acked)} acknowledged events consumed",
                timeout_s=90,
            )
            lost = acked - {e.value["eventId"] for e in consumed.events}
            assert not lost
        committed = local_committed(broker.bootstrap_servers, group, topic, 3)
        ends = end_offsets(broker.bootstrap_servers, topic, 3)
        assert committed == ends, (committed, ends)
    finally:
        broker.stop()


def local_committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    return LocalKafka(bootstrap, "kafka", AdminClient({"bootstrap.servers": bootstrap})).committed(
        group, topic, partitions
    )


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("w")})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def test_a_cluster_id_that_starts_with_a_dash_formats_and_starts(
    private_broker: Callable[..., KafkaBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    # URL-safe base64 of a first byte 0xF8 begins with "-": once in 64 starts, the format step took it for an option
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: uuid.UUID(bytes=b"\xf8" + b"\x01" * 15))
    broker = private_broker()
    assert broker.formatted
    meta = (broker.data_dir / "meta.properties").read_text()
    assert "cluster.id=-" in meta
    produce(broker.bootstrap_servers, "dash-cluster", [b"one"])
