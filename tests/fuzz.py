"""``make fuzz``: schemathesis against the producer API and the registry emulator, on a local stack of its own.

Starts ``hubstream dev`` in a temporary state dir on free ports (so it runs beside a developer's own stack), with a
bearer token the emulator then requires of every client; waits for its stack.json; runs ``st run`` with the
server-error check only against the producer API's ``/openapi.json`` (a path per topic, see
kafka_producer/openapi.py) and the emulator's document (schemas/emulator/openapi.py, which the emulator does not
serve), each bounded by ``--max-examples`` per operation and ``--max-time``; stops the stack and checks that none of
its processes is left. It prints, per API, the requests made by status and how many were 5xx, and exits 1 on any
5xx, on a schemathesis failure or on a leftover process.

    FUZZ_MAX_EXAMPLES   test cases per operation and phase (default 50)
    FUZZ_MAX_TIME       seconds per API (default 120); the run is also killed past twice that
    FUZZ_SEED           schemathesis' seed, to replay a run
    FUZZ_BROKER         auto (default), kafka or tansu
    FUZZ_KEEP=1         keep the state dir (logs, reports) even when all went well
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.discovery import StackInfo
from devstack.processes import ChildProcess
from hubstream.errors import StackNotRunningError
from hubstream.ports import free_port
from schemas.emulator.openapi import openapi_document

TOKEN_ENV = "HUBSTREAM_FUZZ_REGISTRY_TOKEN"
STACK_START_S = 300  # Apache Kafka's first start fetches nothing but still takes a while
ST = Path(sys.executable).with_name("st")


@dataclass
class Outcome:
    api: str
    exit_code: int
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    test_cases: int = 0
    note: str = ""

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.server_errors == 0 and self.requests > 0

    def line(self) -> str:
        by_status = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        verdict = "ok" if self.ok else f"FAILED (st exit {self.exit_code}{'; ' + self.note if self.note else ''})"
        return (
            f"{self.api}: {self.requests} requests, {self.test_cases} test cases, {self.server_errors} 5xx "
            f"[{by_status}] {verdict}"
        )


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="hubstream-fuzz-")).resolve()
    token = secrets.token_urlsafe(24)
    dev = start_stack(state, token)
    outcomes: list[Outcome] = []
    leftovers: list[str] = []
    try:
        info = wait_for_stack(state, dev)
        print(f"stack up: producer API {info.producer_url}, registry https://{info.schema_registry}", flush=True)
        outcomes.append(fuzz_producer(state, info))
        outcomes.append(fuzz_emulator(state, info, token))
        if not dev.alive():  # a child died under fuzzing (hubstream dev then stops the stack)
            outcomes.append(
                Outcome("stack", dev.process.returncode or 1, note="stopped during the run:\n" + dev.tail(40))
            )
    finally:
        dev.stop(timeout=60)
        leftovers = stop_leftovers(state)
    print("\n== make fuzz ==")
    for outcome in outcomes:
        print(outcome.line())
    if leftovers:
        print("processes of the stack left running (stopped now): " + "; ".join(leftovers))
    passed = len(outcomes) == 2 and all(o.ok for o in outcomes) and not leftovers
    if passed and os.environ.get("FUZZ_KEEP") != "1":
        shutil.rmtree(state, ignore_errors=True)
    else:
        print(f"logs and reports: {state}")
    print("fuzz: " + ("0 server errors" if passed else "FAILED"))
    return 0 if passed else 1


def start_stack(state: Path, token: str) -> ChildProcess:
    ports = {
        name: str(free_port())
        for name in ("broker-port", "registry-port", "api-port", "consumer-ops-port", "delivery-port")
    }
    argv = [sys.executable, "-m", "hubstream_cli", "dev", "--state-dir", str(state), "--no-eventhubs"]
    argv += ["--broker", os.environ.get("FUZZ_BROKER", "auto")]
    for name, port in ports.items():
        argv += [f"--{name}", port]
    # the emulator reads its --auth-token from this variable, and every client of the stack sends it
    env = {"HUBSTREAM_REGISTRY__TOKEN": token, "HUBSTREAM_PROFILE": "local"}
    print(f"starting hubstream dev in {state}", flush=True)
    return ChildProcess("hubstream dev", argv, log_file=state / "dev.log", env=env)


def wait_for_stack(state: Path, dev: ChildProcess) -> StackInfo:
    deadline = time.monotonic() + STACK_START_S
    while time.monotonic() < deadline:
        if not dev.alive():
            raise SystemExit(f"hubstream dev exited with code {dev.process.returncode}:\n{dev.tail(40)}")
        try:
            return StackInfo.read(state)
        except (StackNotRunningError, ValueError):
            time.sleep(0.5)
    raise SystemExit(f"the stack was not up within {STACK_START_S} s:\n{dev.tail(40)}")


def fuzz_producer(state: Path, info: StackInfo) -> Outcome:
    return run_schemathesis("producer API", state, [f"{info.producer_url}/openapi.json"])


def fuzz_emulator(state: Path, info: StackInfo, token: str) -> Outcome:
    document = state / "emulator-openapi.json"
    document.write_text(json.dumps(openapi_document(), indent=1))
    # the token goes through the environment into schemathesis' config, not onto a command line
    config = state / "schemathesis-emulator.toml"
    config.write_text(f'[headers]\nAuthorization = "Bearer ${{{TOKEN_ENV}}}"\n')
    url = f"https://{info.schema_registry}"
    args = [str(document), "--url", url, "--tls-verify", str(info.ca_file)]
    return run_schemathesis("registry emulator", state, args, config=config, env={TOKEN_ENV: token})


def run_schemathesis(
    api: str, state: Path, args: list[str], *, config: Path | None = None, env: dict[str, str] | None = None
) -> Outcome:
    reports = state / "reports" / api.replace(" ", "-")
    max_time = int(os.environ.get("FUZZ_MAX_TIME", "120"))
    argv = [str(ST), *(["--config-file", str(config)] if config else []), "run", *args]
    argv += ["--checks", "not_a_server_error", "--max-examples", os.environ.get("FUZZ_MAX_EXAMPLES", "50")]
    argv += ["--max-time", str(max_time), "--request-timeout", "30", "--report", "json,har"]
    argv += ["--report-json-path", str(reports / "run.json"), "--report-har-path", str(reports / "requests.har")]
    if os.environ.get("FUZZ_SEED"):
        argv += ["--seed", os.environ["FUZZ_SEED"]]
    print(f"\n== {api}: {' '.join(argv[1:])}", flush=True)
    try:
        code = subprocess.run(
            argv, env={**os.environ, **(env or {})}, timeout=2 * max_time + 60, check=False
        ).returncode
        note = ""
    except subprocess.TimeoutExpired:
        code, note = -1, f"killed after {2 * max_time + 60} s"
    outcome = Outcome(api, code, note=note)
    read_reports(reports, outcome)
    return outcome


def read_reports(reports: Path, outcome: Outcome) -> None:
    """Every request's status from the HAR file, the test cases from the JSON report (either may be missing when
    schemathesis failed before it wrote them)."""
    har, run = reports / "requests.har", reports / "run.json"
    if har.exists():
        for entry in json.loads(har.read_text())["log"]["entries"]:
            outcome.statuses[int(entry["response"]["status"])] += 1
    if run.exists():
        outcome.test_cases = int(json.loads(run.read_text()).get("test_cases", {}).get("generated", 0))


def stop_leftovers(state: Path) -> list[str]:
    """Processes that still name the state dir (argv or environment) after the stack stopped: stop them by pid."""
    found = []
    marker = str(state).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = marker in (proc / "cmdline").read_bytes() or marker in (proc / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if seen:
            found.append(f"{proc.name} {_command(proc)}")
            _terminate(int(proc.name))
    return found


def _command(proc: Path) -> str:
    try:
        return proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "(exited)"


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            time.sleep(0.1)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
