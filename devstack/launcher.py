"""``hubstream dev``: the whole path on one machine, without Docker.

Starts, in order, each as a child process that dies with its parent:
the Tansu broker → the Schema Registry emulator (HTTPS, local CA) → topics and contracts →
the producer HTTP API → a delivery node (SQLite mailboxes under the state dir) → one consumer-group worker
that logs what it consumes.
Then writes ``<state-dir>/stack.json`` so other commands find the stack.
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

import httpx

from devstack.discovery import StackInfo, local_delivery_secret
from devstack.processes import ChildProcess, wait_until
from devstack.provisioning import provision
from devstack.tansu import start_broker
from devstack.tls import ensure_tls_files
from hubstream import ports
from hubstream.errors import HubstreamError
from hubstream.ports import ensure_port_free
from hubstream.settings import Settings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEV_GROUP = "hubstream-dev"
DELIVERY_GROUP = "delivery"


@dataclass(frozen=True)
class StackPorts:
    broker: int = ports.BROKER
    registry: int = ports.REGISTRY
    api: int = ports.PRODUCER_API
    consumer_ops: int = ports.CONSUMER_OPS
    delivery: int = ports.DELIVERY


@dataclass
class LocalStack:
    settings: Settings
    ports: StackPorts = field(default_factory=StackPorts)
    partitions: int = 3
    with_consumer: bool = True
    children: list[ChildProcess] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def start(self) -> StackInfo:
        """Start everything; on any failure stop what was started and raise."""
        ports = [
            ("Kafka broker", self.ports.broker),
            ("schema registry", self.ports.registry),
            ("producer API", self.ports.api),
            ("delivery node", self.ports.delivery),
        ]
        if self.with_consumer:
            ports.append(("consumer's ops endpoint", self.ports.consumer_ops))
        for what, port in ports:
            ensure_port_free(HOST, port, what)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        StackInfo.remove(self.state_dir)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        bootstrap = f"{HOST}:{self.ports.broker}"
        self.children.append(start_broker(self.ports.broker, host=HOST, log_file=self.logs / "broker.log"))
        log.info("broker listening on %s", bootstrap)

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
            bootstrap_servers=bootstrap,
            schema_registry=namespace,
            ca_file=tls.ca_file,
            schema_group=settings.registry.group,
            producer_url=producer_url,
            delivery_url=delivery_url,
            topics=topics,
            pid=os.getpid(),
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
                raise HubstreamError(
                    f"{dead.name} exited unexpectedly (code {dead.process.returncode}); stopping the stack.\n{dead.tail()}"
                )
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
