"""What the delivery and webhook benchmarks start, as real processes on real sockets, and how they report.

Everything is entered on one ExitStack, so Ctrl-C (or SIGTERM, which ``stop_on_sigterm`` turns into the same
KeyboardInterrupt) stops every child; each ChildProcess also dies with this process (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench.serde import local_emulator
from delivery.auth import mint_token
from devstack.processes import ChildProcess, wait_until
from devstack.provisioning import provision
from devstack.tansu import start_broker
from hubstream.ports import free_port
from hubstream.settings import Settings
from tests.fixtures.postgres import start_postgres
from tests.fixtures.services import write_catalog
from tests.fixtures.workers import settings_env

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 40
CHAT = "hubstream.chat.ChatResponse"


# --- the services ---------------------------------------------------------------------------------------------


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every context manager below stops what it started."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handle)


def raise_open_files(wanted: int) -> int:
    """Raise this process's (and so its children's) soft RLIMIT_NOFILE towards ``wanted``; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def broker_kind(choice: str) -> tuple[str, str]:
    """``tansu`` or ``kafka`` for ``--broker tansu|kafka|auto``, and why. Auto picks Apache Kafka when a JDK and its
    jars (or Maven to fetch them) are here, as the test session does, else Tansu."""
    if choice in ("tansu", "kafka"):
        return choice, "--broker " + choice
    try:
        from devstack import kafka_jars
    except ImportError:
        return "tansu", "devstack.kafka_jars is not available"
    reason = kafka_jars.unavailable_reason()
    if reason is not None:
        return "tansu", reason
    return "kafka", f"a JDK is on PATH: Apache Kafka {kafka_jars.KAFKA_VERSION}"


@contextlib.contextmanager
def broker(kind: str, workdir: Path) -> Iterator[str]:
    """The broker on a free port; yields its bootstrap address."""
    port = free_port()
    if kind == "tansu":
        tansu = start_broker(port, log_file=workdir / "broker.log")
        try:
            yield f"127.0.0.1:{port}"
        finally:
            tansu.stop(timeout=1)  # memory only: nothing to lose
        return
    from devstack.kafka import start_kafka

    kafka = start_kafka(port, state_dir=workdir, log_file=workdir / "broker.log")
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server of its own (Debian's binaries; as root it runs as `postgres`); yields an admin DSN."""
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))  # not under a 0700 dir of root's: the server user enters it
    try:
        server = start_postgres(root)
        try:
            yield server.admin_dsn
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_database(admin_dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_dsn.rpartition("/")[0] + "/" + name


@dataclass
class Stack:
    """Broker, registry emulator and settings pointing at them; services are started from it."""

    settings: Settings
    workdir: Path
    broker: str  # tansu or kafka
    stack: contextlib.ExitStack

    def env(self, store: str, **extra: str) -> dict[str, str]:
        settings = self.settings.model_copy(
            update={"delivery": self.settings.delivery.model_copy(update={"store": store})}
        )
        return {**settings_env(settings), "HUBSTREAM_LOG_LEVEL": "WARNING", **extra}

    def producer_api(self) -> Service:
        port = free_port()
        child = ChildProcess(
            "producer-api",
            [sys.executable, "-m", "hubstream_cli", "produce-api", "--port", str(port)],
            log_file=self.workdir / f"producer-api-{port}.log",
            env=self.env("sqlite:"),
            cwd=REPO_ROOT,
        )
        return self._started(Service("producer API", child, f"http://127.0.0.1:{port}"))

    def node(self, store: str, topic: str | None = None, **env: str) -> Service:
        """``hubstream deliver`` on a free port, consuming ``topic`` (None: --no-consume); ready (in its group, when
        consuming) when this returns."""
        port = free_port()
        args = ["--group", f"bench-{topic}", "--topic", topic] if topic else ["--no-consume"]
        child = ChildProcess(
            "delivery",
            [sys.executable, "-m", "hubstream_cli", "deliver", "--store", store, "--port", str(port), *args],
            log_file=self.workdir / f"delivery-{port}.log",
            env=self.env(store, **env),
            cwd=REPO_ROOT,
        )
        return self._started(Service("delivery node", child, f"http://127.0.0.1:{port}"), timeout=90)

    def child(self, name: str, argv: Sequence[str], **env: str) -> ChildProcess:
        """A helper process of the bench (python -m bench._clients ...), stopped with the stack."""
        child = ChildProcess(
            name,
            [sys.executable, *argv],
            log_file=self.workdir / f"{name}-{time.monotonic_ns()}.log",
            env={**self.env("sqlite:"), **env},
            cwd=REPO_ROOT,
        )
        self.stack.callback(child.stop)
        return child

    def _started(self, service: Service, timeout: float = 60) -> Service:
        self.stack.callback(service.child.stop, 20)
        wait_until(
            lambda: httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200,
            timeout=timeout,
            what=f"the {service.what}",
            process=service.child,
        )
        return service


@dataclass
class Service:
    what: str
    child: ChildProcess
    url: str

    def rss_kb(self) -> int:
        return rss_kb(self.child.pid)

    def stop(self) -> None:
        self.child.stop(20)


@contextlib.contextmanager
def local_stack(broker_choice: str, workdir: Path, topics: Sequence[str]) -> Iterator[Stack]:
    """Broker, emulator, and ``topics`` (3 partitions each) bound to ChatResponse and routed for delivery as the
    project's catalog routes chat.responses; a fresh topic per measurement, so no node replays another's events."""
    kind, why = broker_kind(broker_choice)
    print(f"broker: {kind} ({why}); {load_note()}", flush=True)
    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(broker(kind, workdir))
        namespace, ca_file = stack.enter_context(local_emulator("hubstream-local"))
        settings = Settings(
            _env_file=None,
            profile="local",
            state_dir=workdir,
            topics_file=write_catalog(workdir, dict.fromkeys(topics, CHAT)),
            kafka={"bootstrap_servers": bootstrap},
            registry={"namespace": namespace, "ca_file": ca_file, "group": "hubstream"},
            consumer={"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000, "assignor": "range"},
            delivery={"auth": {"secret": SECRET}},
        )
        provision(settings, default_partitions=3)
        yield Stack(settings, workdir, kind, stack)


def token(recipient: str, *, admin: bool = False, ttl_s: float = 7200) -> str:
    return mint_token(SECRET, recipient, ttl_s=ttl_s, admin=admin)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def metrics(url: str) -> dict[str, float]:
    """A node's /metrics samples, by name with labels (``name{a="b"}``)."""
    samples = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


# --- events ---------------------------------------------------------------------------------------------------

_WORDS = ["the", "agent", "streams", "a", "response", "to", "the", "user", "chunk", "by", "while", "it", "thinks"]


def chat_event(i: int, recipient: str, run: str) -> dict[str, Any]:
    """A ChatResponse chunk; its conversationId (the Kafka key) is unique, so a raw consumer can tell events apart
    by key without decoding."""
    return {
        "eventId": f"{run}-{i}",
        "conversationId": f"{run}-{i}",
        "userId": recipient,
        "sequence": i % 40,
        "content": " ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(12)),
        "final": i % 40 == 39,
        "createdAt": "2026-03-01T09:30:00Z",
        "metadata": {"model": "gpt-4o", "region": "westeurope"},
    }


def chat_json(i: int, recipient: str, run: str) -> str:
    """The event as the node stores it (natural JSON)."""
    return json.dumps(chat_event(i, recipient, run), separators=(",", ":"))


# --- statistics -----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values or [0])}


def spread(values: Sequence[float], fmt: str = ".1f") -> str:
    """``median (min–max)`` over repeats."""
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def dump_json(path_or_dash: str, data: Any) -> None:
    text = json.dumps(data, indent=2, default=str)
    if path_or_dash == "-":
        print(text)
    else:
        Path(path_or_dash).write_text(text + "\n")
