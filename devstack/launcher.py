"""``hubstream dev``: the whole path on one machine, without Docker.

Starts, in order, each as a child process that dies with its parent:
the broker → the Schema Registry emulator (HTTPS, local CA) → topics and contracts →
the producer HTTP API → a delivery node (SQLite mailboxes under the state dir) → one consumer-group worker
that logs what it consumes.
Then writes ``<state-dir>/stack.json`` so other commands find the stack.

The broker is Apache Kafka (devstack/kafka.py; data kept in the state dir) when a JDK 17+ is on PATH and its jars
are cached or Maven can fetch them, else Tansu (devstack/tansu.py; memory only). On Kafka the stack also opens
the Event Hubs door: a fake Entra ID (devstack/entra.py) first, then the broker with a SASL_SSL PLAIN listener
(``$ConnectionString``) and a SASL_SSL OAUTHBEARER listener that verifies the fake's tokens.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal

import httpx

from devstack import entra, kafka, kafka_jars, tansu
from devstack.discovery import EntraInfo, EventHubsInfo, StackInfo, local_delivery_secret
from devstack.kafka import EventHubsDoor
from devstack.processes import ChildProcess, wait_until
from devstack.provisioning import provision
from devstack.tls import ensure_tls_files
from hubstream import ports
from hubstream.errors import HubstreamError
from hubstream.settings import Settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEV_GROUP = "hubstream-dev"
DELIVERY_GROUP = "delivery"
# the door's namespace host: the connection string's Endpoint, and the token audience https://localhost
EVENTHUBS_HOST = "localhost"
EVENTHUBS_PORT = 9093  # Event Hubs' Kafka port
EVENTHUBS_OAUTH_PORT = 9094
BrokerChoice = Literal["auto", "kafka", "tansu"]
BrokerKind = Literal["kafka", "tansu"]


@dataclass(frozen=True)
class StackPorts:
    broker: int = ports.BROKER
    registry: int = ports.REGISTRY
    api: int = ports.PRODUCER_API
    consumer_ops: int = ports.CONSUMER_OPS
    delivery: int = ports.DELIVERY
    eventhubs: int = EVENTHUBS_PORT
    eventhubs_oauth: int = EVENTHUBS_OAUTH_PORT
    entra: int = entra.DEFAULT_PORT


def choose_broker(choice: BrokerChoice) -> tuple[BrokerKind, str]:
    """The broker to run and why, in one line: ``auto`` takes Apache Kafka when it can run here."""
    if choice != "auto":
        return choice, f"--broker {choice}"
    reason = kafka_jars.unavailable_reason()
    if reason is None:
        return "kafka", "a JDK 17+ is on PATH"
    return "tansu", f"{reason} (`--broker kafka` says what is missing)"


@dataclass
class LocalStack:
    settings: Settings
    ports: StackPorts = field(default_factory=StackPorts)
    partitions: int = 3
    with_consumer: bool = True
    broker: BrokerChoice = "auto"
    eventhubs: bool = True  # the Event Hubs door and the fake Entra ID, on Apache Kafka only
    reauth_ms: int = 60_000
    children: list[ChildProcess] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def start(self) -> StackInfo:
        """Start everything; on any failure stop what was started and raise."""
        kind, why = choose_broker(self.broker)
        log.info("broker: %s (%s)", "Apache Kafka " + kafka_jars.KAFKA_VERSION if kind == "kafka" else "Tansu", why)
        door = kind == "kafka" and self.eventhubs
        ports = [
            ("Kafka broker", self.ports.broker),
            ("schema registry", self.ports.registry),
            ("producer API", self.ports.api),
            ("delivery node", self.ports.delivery),
        ]
        if door:
            ports.append(("Event Hubs door (SASL PLAIN)", self.ports.eventhubs))
            ports.append(("Event Hubs door (OAUTHBEARER)", self.ports.eventhubs_oauth))
            ports.append(("fake Entra ID", self.ports.entra))
        if self.with_consumer:
            ports.append(("consumer's ops endpoint", self.ports.consumer_ops))
        for what, port in ports:
            kafka.ensure_bindable(HOST, port, what)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        StackInfo.remove(self.state_dir)
        try:
            return self._start(kind, door)
        except BaseException:
            self.stop()
            raise

    def _start_kafka(self, with_door: bool) -> tuple[str, EventHubsInfo | None]:
        door: EventHubsDoor | None = None
        info: EventHubsInfo | None = None
        if with_door:
            tls = ensure_tls_files(self.state_dir)
            fake, entra_proc = entra.start_entra(self.state_dir, self.ports.entra, log_file=self.logs / "entra.log")
            self.children.append(entra_proc)
            log.info("fake Entra ID on %s (tenant %s)", fake.authority, fake.tenant_id)
            door = EventHubsDoor(
                plain_port=self.ports.eventhubs,
                oauth_port=self.ports.eventhubs_oauth,
                cert_file=tls.cert_file,
                key_file=tls.key_file,
                connection_string=kafka.local_connection_string(self.state_dir, self.ports.eventhubs, EVENTHUBS_HOST),
                jwks_file=fake.jwks_file,
                issuer=fake.issuer,
                audience=f"https://{EVENTHUBS_HOST}",
                reauth_ms=self.reauth_ms,
            )
            info = EventHubsInfo(
                connection_string=door.connection_string,
                bootstrap=door.bootstrap(EVENTHUBS_HOST),
                oauth_bootstrap=door.oauth_bootstrap(EVENTHUBS_HOST),
                namespace=door.oauth_bootstrap(EVENTHUBS_HOST),
                ca_file=tls.ca_file,
                entra=EntraInfo(
                    authority=fake.authority,
                    tenant_id=fake.tenant_id,
                    client_id=fake.client_id,
                    client_secret=fake.client_secret,
                ),
            )
        broker = kafka.start_kafka(
            self.ports.broker, state_dir=self.state_dir, host=HOST, door=door, log_file=self.logs / "broker.log"
        )
        self.children.append(broker.process)
        log.info(
            "Apache Kafka %s ready on %s in %.1f s%s (data in %s)",
            kafka_jars.KAFKA_VERSION,
            broker.bootstrap_servers,
            broker.ready_s,
            ", data dir formatted" if broker.formatted else "",
            broker.data_dir,
        )
        if info is not None:
            log.info("Event Hubs door: PLAIN on %s, OAUTHBEARER on %s", info.bootstrap, info.oauth_bootstrap)
        return broker.bootstrap_servers, info

    def _start(self, kind: BrokerKind, with_door: bool) -> StackInfo:
        eventhubs: EventHubsInfo | None = None
        if kind == "kafka":
            bootstrap, eventhubs = self._start_kafka(with_door)
        else:
            bootstrap = f"{HOST}:{self.ports.broker}"
            self.children.append(tansu.start_broker(self.ports.broker, host=HOST, log_file=self.logs / "broker.log"))
            log.info("Tansu listening on %s (memory only: a restart starts empty)", bootstrap)

        tls = ensure_tls_files(self.state_dir)
        namespace = f"localhost:{self.ports.registry}"
        registry_proc = self._spawn(
            "registry",
            [
                "registry",
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.ports.registry),
                "--state-dir",
                str(self.state_dir),
            ],
            log_to_file=True,
        )
        wait_until(
            lambda: _https_up(f"https://{namespace}/$schemaGroups?api-version=2022-10", tls.ca_file),
            timeout=30,
            what="the schema registry emulator",
            process=registry_proc,
        )
        log.info("schema registry emulator on https://%s", namespace)

        settings = self.settings.model_copy(
            update={
                "profile": "local",
                "kafka": self.settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
                "registry": self.settings.registry.model_copy(update={"namespace": namespace, "ca_file": tls.ca_file}),
            }
        )
        self.settings = settings
        provisioned = provision(settings, default_partitions=self.partitions)
        topics = provisioned.topics
        log.info("topics %s ready; %d contracts registered", ", ".join(topics), len(provisioned.schema_ids))

        env = _child_env(settings)
        api_proc = self._spawn(
            "producer-api", ["produce-api", "--host", HOST, "--port", str(self.ports.api)], env=env, log_to_file=True
        )
        producer_url = f"http://{HOST}:{self.ports.api}"
        wait_until(
            lambda: httpx.get(f"{producer_url}/readyz", timeout=2).status_code == 200,
            timeout=30,
            what="the producer API",
            process=api_proc,
        )
        local_delivery_secret(self.state_dir, create=True)  # the node and `hubstream clients token` share it
        delivery_proc = self._spawn(
            "delivery",
            ["deliver", "--group", DELIVERY_GROUP, "--port", str(self.ports.delivery)],
            env=env,
            log_to_file=True,
        )
        delivery_url = f"http://{HOST}:{self.ports.delivery}"
        wait_until(
            lambda: httpx.get(f"{delivery_url}/readyz", timeout=2).status_code == 200,
            timeout=60,
            what="the delivery node",
            process=delivery_proc,
        )
        if self.with_consumer:
            argv = ["consume", "--group", DEV_GROUP, "--ops-port", str(self.ports.consumer_ops)]
            for topic in topics:
                argv += ["--topic", topic]
            self._spawn("consumer", argv, env=env, log_to_file=False)

        info = StackInfo(
            broker=kind,
            bootstrap_servers=bootstrap,
            schema_registry=namespace,
            ca_file=tls.ca_file,
            schema_group=settings.registry.group,
            producer_url=producer_url,
            delivery_url=delivery_url,
            topics=topics,
            pid=os.getpid(),
            eventhubs=eventhubs,
        )
        info.write(self.state_dir)
        return info

    def _spawn(
        self, name: str, args: list[str], *, env: dict[str, str] | None = None, log_to_file: bool
    ) -> ChildProcess:
        child = ChildProcess(
            name,
            [sys.executable, "-m", "hubstream_cli", *args],
            log_file=self.logs / f"{name}.log" if log_to_file else None,
            env=env,
        )
        self.children.append(child)
        return child

    def stopped_child(self) -> ChildProcess | None:
        return next((c for c in self.children if not c.alive()), None)

    def stop(self) -> None:
        """Stop children newest first (consumer commits and leaves before the broker goes)."""
        StackInfo.remove(self.state_dir)
        while self.children:
            child = self.children.pop()
            child.stop()


def _https_up(url: str, ca_file: Path) -> bool:
    return httpx.get(url, verify=str(ca_file), timeout=2).status_code < 500


def _child_env(settings: Settings) -> dict[str, str]:
    """Explicit settings for child processes, so they never depend on stack.json."""
    return {
        "HUBSTREAM_PROFILE": "local",
        "HUBSTREAM_STATE_DIR": str(settings.state_dir.resolve()),
        "HUBSTREAM_CONTRACTS_DIR": str(settings.contracts_dir.resolve()),
        "HUBSTREAM_TOPICS_FILE": str(settings.topics_file.resolve()),
        "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers or "",
        "HUBSTREAM_REGISTRY__NAMESPACE": settings.registry.namespace or "",
        "HUBSTREAM_REGISTRY__CA_FILE": str(settings.registry.ca_file or ""),
        "HUBSTREAM_REGISTRY__GROUP": settings.registry.group,
    }


def run_until_signalled(stack: LocalStack, on_ready: Callable[[StackInfo], None] | None = None) -> int:
    """Start the stack, then block until SIGINT/SIGTERM or a child dies; always stop every child."""
    stopping = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        info = stack.start()
        if on_ready is not None:
            on_ready(info)
        while not stopping.wait(0.5):
            dead = stack.stopped_child()
            if dead is not None:
                code = dead.process.returncode
                raise HubstreamError(
                    f"{dead.name} exited unexpectedly (code {code}); stopping the stack.\n{dead.tail()}"
                )
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
