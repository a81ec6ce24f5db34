"""`hubstream dev` as a user runs it: starts, writes stack.json, serves, and stops with no orphans, on each broker
(Apache Kafka, with its Event Hubs door and fake Entra ID, when a JDK is present; Tansu always)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from devstack import kafka_jars
from hubstream.ports import free_port
from tests.fixtures.events import chat_event
from tests.fixtures.waiting import wait_for

STARTUP_TIMEOUT_S = 120
BROKERS = [
    pytest.param(
        "kafka",
        marks=pytest.mark.skipif(
            kafka_jars.unavailable_reason() is not None, reason=str(kafka_jars.unavailable_reason())
        ),
    ),
    "tansu",
]


def descendants(pid: int) -> set[int]:
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        if "State:\tZ" not in status:
            living.add(pid)
    return living


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    state_dir: Path
    output: Path

    def stack(self) -> dict[str, object]:
        return json.loads((self.state_dir / "stack.json").read_text())

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def start_dev(tmp_path: Path, *extra: str) -> DevStack:
    state_dir = tmp_path / "state"
    output = tmp_path / "dev.out"
    argv = [
        sys.executable,
        "-m",
        "hubstream_cli",
        "dev",
        "--state-dir",
        str(state_dir),
        "--broker-port",
        str(free_port()),
        "--registry-port",
        str(free_port()),
        "--api-port",
        str(free_port()),
        "--consumer-ops-port",
        str(free_port()),
        "--delivery-port",
        str(free_port()),
        "--eventhubs-port",
        str(free_port()),
        "--eventhubs-oauth-port",
        str(free_port()),
        "--entra-port",
        str(free_port()),
        "--partitions",
        "2",
        *extra,
    ]
    with open(output, "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    return DevStack(process, state_dir, output)


def wait_ready(dev: DevStack) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not (dev.state_dir / "stack.json").exists():
        assert dev.process.poll() is None, f"hubstream dev exited:\n{dev.log()}"
        assert time.monotonic() < deadline, f"no stack.json after {STARTUP_TIMEOUT_S} s:\n{dev.log()}"
        time.sleep(0.2)
    return dev.stack()


@pytest.fixture(params=BROKERS)
def dev(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DevStack]:
    stack = start_dev(tmp_path, "--broker", request.param)
    try:
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.process.kill()
            stack.process.wait(10)


def test_dev_starts_serves_and_stops_without_orphans(dev: DevStack, tmp_path: Path) -> None:
    info = wait_ready(dev)
    for key in (
        "bootstrap_servers",
        "schema_registry",
        "ca_file",
        "schema_group",
        "producer_url",
        "delivery_url",
        "topics",
    ):
        assert info[key], key
    assert info["topics"] == {"chat.responses": 2, "meetings.minutes-finalized": 2}
    assert Path(str(info["ca_file"])).read_text().startswith("-----BEGIN CERTIFICATE-----")
    broker = "kafka" if "--broker kafka" in " ".join(dev.process.args) else "tansu"  # type: ignore[arg-type]
    assert info["broker"] == broker
    if broker == "kafka":
        check_event_hubs_door(info)
    else:
        assert info["eventhubs"] is None

    event = chat_event("conv-dev")
    response = httpx.post(f"{info['producer_url']}/v1/topics/chat.responses/events", json=event, timeout=20)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while event["eventId"] not in dev.log():
        assert time.monotonic() < deadline, f"the dev consumer did not log the event:\n{dev.log()}"
        time.sleep(0.2)

    # a second terminal: commands find the stack through --state-dir, the client token too
    token = subprocess.run(
        [sys.executable, "-m", "hubstream_cli", "clients", "token", "user-1", "--state-dir", str(dev.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2 and token.stdout.strip() == token.stdout.rstrip("\n")  # a JWT, alone
    mailbox = f"{info['delivery_url']}/v1/mailboxes/user-1/messages"
    headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
    wait_for(
        lambda: any(
            m["eventId"] == event["eventId"] for m in httpx.get(mailbox, headers=headers, timeout=5).json()["messages"]
        ),
        "the event in user-1's mailbox",
    )
    assert "hubstream clients token user-1 --state-dir" in dev.log()  # the banner shows how to watch a stream
    provision = subprocess.run(
        [sys.executable, "-m", "hubstream_cli", "provision", "--state-dir", str(dev.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert provision.returncode == 0, provision.stderr
    assert "chat.responses" in provision.stderr + provision.stdout

    children = descendants(dev.process.pid)
    assert len(children) >= 5  # broker, registry, producer API, delivery node, consumer
    dev.process.send_signal(signal.SIGTERM)
    assert dev.process.wait(30) == 0, dev.log()
    assert wait_gone(children, 10) == set()
    assert not jvms_of(dev.state_dir)
    assert not (dev.state_dir / "stack.json").exists()
    assert "stack stopped" in dev.log()


def check_event_hubs_door(info: dict[str, Any]) -> None:
    """stack.json's eventhubs object is enough for a second terminal: the PLAIN door takes its connection string,
    the OAUTHBEARER door a token azure-identity gets from the fake Entra ID with its entra values."""
    from azure.identity import ClientSecretCredential

    door = info["eventhubs"]
    assert set(door) == {"connection_string", "bootstrap", "oauth_bootstrap", "namespace", "ca_file", "entra"}
    assert door["connection_string"].startswith(f"Endpoint=sb://{door['bootstrap']}/;SharedAccessKeyName=")
    entra = door["entra"]
    assert set(entra) == {"authority", "tenant_id", "client_id", "client_secret"}
    tls = {"security.protocol": "SASL_SSL", "ssl.ca.location": door["ca_file"], "broker.address.family": "v4"}
    plain = AdminClient(
        {
            "bootstrap.servers": door["bootstrap"],
            **tls,
            "sasl.mechanism": "PLAIN",
            "sasl.username": "$ConnectionString",
            "sasl.password": door["connection_string"],
        }
    )
    assert "chat.responses" in plain.list_topics(timeout=20).topics
    credential = ClientSecretCredential(
        entra["tenant_id"],
        entra["client_id"],
        entra["client_secret"],
        authority=entra["authority"],
        disable_instance_discovery=True,
        connection_verify=door["ca_file"],
    )
    host = door["namespace"].rsplit(":", 1)[0]

    def token(_config: str) -> tuple[str, float]:
        access = credential.get_token(f"https://{host}/.default")
        return access.token, access.expires_on

    oauth = AdminClient(
        {"bootstrap.servers": door["oauth_bootstrap"], **tls, "sasl.mechanism": "OAUTHBEARER", "oauth_cb": token}
    )
    assert "chat.responses" in oauth.list_topics(timeout=20).topics


def jvms_of(state_dir: Path) -> list[str]:
    """Java processes whose command line names this state dir (the broker's server.properties does)."""
    table = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line for line in table.splitlines() if "java" in line and str(state_dir) in line]


def test_children_die_with_a_killed_dev(dev: DevStack) -> None:
    wait_ready(dev)
    children = descendants(dev.process.pid)
    assert children
    dev.process.kill()  # no chance to clean up: the kernel's parent-death signal must stop the children
    dev.process.wait(10)
    assert wait_gone(children, 15) == set()
    assert not jvms_of(dev.state_dir)


def test_ctrl_c_stops_every_child(dev: DevStack) -> None:
    wait_ready(dev)
    children = descendants(dev.process.pid)
    dev.process.send_signal(signal.SIGINT)
    assert dev.process.wait(30) == 0, dev.log()
    assert wait_gone(children, 10) == set()
    assert not jvms_of(dev.state_dir)


def test_busy_port_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hubstream_cli",
                "dev",
                "--state-dir",
                str(tmp_path),
                "--api-port",
                str(busy),
                "--broker-port",
                str(free_port()),
                "--registry-port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
    assert result.returncode == 2
    assert f"port {busy}" in result.stderr and "already in use" in result.stderr and "producer API" in result.stderr
    assert time.monotonic() - started < 20
