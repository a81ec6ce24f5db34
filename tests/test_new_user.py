"""What a new user runs into, tried as they would: a second worker on the same machine, and a schema owner's
`hubstream schemas check` in their own clone. Each runs the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hubstream import ports
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.services import CHAT, make_settings, write_catalog
from tests.fixtures.workers import settings_env

REPO = Path(__file__).resolve().parents[1]
HUBSTREAM = str(Path(sys.executable).parent / "hubstream")


def test_a_second_worker_takes_a_free_ops_port_when_the_default_is_taken(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("second", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    env = {**os.environ, **settings_env(settings), "HUBSTREAM_LOG_FORMAT": "json"}
    env.pop("HUBSTREAM_CONSUMER__OPS_PORT", None)
    with socket.socket() as holder:  # what the dev stack's worker does with the default port
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", ports.CONSUMER_OPS))
            holder.listen()
        except OSError:
            pass  # something on this machine holds it already: the same situation
        log = tmp_path / "second.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [HUBSTREAM, "consume", "--group", unique("g"), "--topic", topic],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        try:
            url = _ops_url(log, worker)
            assert not url.endswith(f":{ports.CONSUMER_OPS}")
            assert httpx.get(f"{url}/healthz", timeout=5).status_code in (200, 503)
            explicit = subprocess.run(
                [HUBSTREAM, "consume", "--group", "g", "--topic", topic, "--ops-port", str(ports.CONSUMER_OPS)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert explicit.returncode == 2 and "already in use" in explicit.stderr, explicit.stderr
    assert "Traceback" not in explicit.stderr


def _ops_url(log: Path, worker: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if '"ops_endpoint"' in line:
                return str(json.loads(line)["url"])
        assert worker.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"the worker never logged its ops endpoint:\n{log.read_text()}")


def test_schemas_check_reads_the_contracts_of_the_directory_it_runs_in(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    check = [HUBSTREAM, "schemas", "check", "--against", "git:HEAD", "--mode", "FORWARD"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSTREAM_")}
    unchanged = subprocess.run(check, cwd=clone, capture_output=True, text=True, timeout=120, env=env)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert f"contracts from {clone / 'schemas' / 'avro'}" in unchanged.stderr

    contract = clone / "schemas" / "avro" / "hubstream.chat.ChatResponse.avsc"
    schema = json.loads(contract.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "userId"]  # a required field removed
    contract.write_text(json.dumps(schema, indent=2))
    changed = subprocess.run(check, cwd=clone, capture_output=True, text=True, timeout=120, env=env)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "userId" in changed.stdout and "hubstream.chat.ChatResponse" in changed.stdout
    assert re.search(r"contracts from .*clone/schemas/avro", changed.stderr)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_option = subprocess.run(
        [*check, "--contracts-dir", str(clone / "schemas" / "avro")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert by_option.returncode == 1 and "userId" in by_option.stdout
