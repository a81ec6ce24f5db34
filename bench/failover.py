"""Failover time of hubstream workers against bare confluent-kafka consumers, on the same broker in one run.

    .venv/bin/python bench/failover.py [--rounds 6]      # or: make bench-failover

Starts its own local broker (Tansu) and schema registry emulator, and stops them at the end. A round measures
four cases, each on a fresh 2-partition topic and group with two members, while a producer writes a record to
each partition every 25 ms:

    kill -9   SIGKILL the member owning partition 0: the time until the other member handles a record of it
    SIGTERM   the same with SIGTERM: hubstream drains, commits and leaves the group; bare commits and close()s

"hubstream" members are `hubstream consume` workers (handler bench.failover_members:record); "bare" members are
plain confluent_kafka Consumers (python -m bench.failover_members). Both build their config with
kafka_config.consumer_config from the same HUBSTREAM_* settings, so the group timing is identical: the local
profile's session 3000 ms, heartbeat 1000 ms, range. Bare is the broker's own floor; on the local broker
kill -9 costs about session + heartbeat + session/2 and a LeaveGroup about heartbeat + session/2.

Where the signal falls in the heartbeat cycle moves a result by up to a heartbeat (the broker notices a dead or
departed member only at the survivor's next heartbeat), and both members' heartbeats start when they join. So
the signal goes a fixed delay after the members settle, a different one each round, spread evenly over one
heartbeat interval and the same for both sides. The sides alternate which goes first in each round, so a noisy
neighbour slows both alike. Goal: the median of ours is within 1 s of the median of bare, for kill -9 and
SIGTERM alike.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench.failover_members import FILE_ENV, Line, read_lines, wait_for
from bench.serde import CONTRACT, chat_responses, local_emulator
from devstack.processes import ChildProcess
from devstack.tansu import start_broker
from devstack.topics import ensure_topics
from hubstream import kafka_config
from hubstream.ports import free_port
from hubstream.settings import Settings
from schemas.contracts import load_contracts
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.workers import settings_env

GOAL_S = 1.0
PRODUCE_EVERY_S = 0.025
MEASURED = 0  # the partition whose owner is stopped
SIDES = ("bare", "hubstream")
CASES = {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
_TIMING_KEYS = (
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "max.poll.interval.ms",
    "fetch.wait.max.ms",
    "enable.auto.commit",
    "auto.offset.reset",
)


@contextlib.contextmanager
def local_services(workdir: Path) -> Iterator[Settings]:
    """The broker and the registry emulator, stopped on exit; settings pointing at them."""
    port = free_port()
    broker = start_broker(port, log_file=workdir / "broker.log")  # a child that dies with this process
    try:
        with local_emulator("hubstream-local") as (namespace, ca_file):
            yield Settings(
                _env_file=None,
                profile="local",
                state_dir=workdir,
                kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
                registry={"namespace": namespace, "ca_file": ca_file, "group": "hubstream"},
            )
    finally:
        broker.stop()


class Feed:
    """Writes the same ChatResponse record (Azure wire format) to every partition of a topic on a period."""

    def __init__(self, settings: Settings, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 0})
        self._value, self._headers = value, headers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def writing(self, topic: str, partitions: int) -> Iterator[None]:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(topic, partitions), daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join(10)
            self._producer.flush(10)

    def _run(self, topic: str, partitions: int) -> None:
        while not self._stop.wait(PRODUCE_EVERY_S):
            for partition in range(partitions):
                self._producer.produce(topic, self._value, headers=self._headers, partition=partition)
            self._producer.poll(0)


def encoded_record(settings: Settings) -> tuple[bytes, list[tuple[str, bytes]]]:
    contract = load_contracts(settings.contracts_dir)[CONTRACT]
    with SchemaRegistry.from_settings(settings) as registry:
        registry.register(contract)
        encoded = AvroSerde(registry).encode(chat_responses(1)[0], contract)
    return encoded.value, encoded.headers


@dataclass
class Bench:
    settings: Settings
    workdir: Path
    admin: AdminClient  # kept referenced: futures of a collected AdminClient never resolve
    feed: Feed

    def measure(self, side: str, case: str, delay_s: float) -> tuple[float, int | None]:
        """Seconds from the signal (sent `delay_s` after the members settled) to the other member's first record
        of the measured partition, and the stopped member's exit code (None after kill -9)."""
        name = f"{side}-{case.replace(' ', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"
        ensure_topics(self.admin, {name: 2})
        record_file = self.workdir / f"{name}.txt"
        env = {**settings_env(self.settings), FILE_ENV: str(record_file)}
        members = [self._member(side, f"{name}-{i}", name, env) for i in range(2)]
        try:
            with self.feed.writing(name, 2):
                owners = wait_for(lambda: _settled(record_file), 60, f"{name}: one partition per member")
                victim = next(m for m in members if m.pid == owners[MEASURED])
                heir = next(m for m in members if m is not victim)
                time.sleep(delay_s)
                sent_at = time.time()
                victim.process.send_signal(CASES[case])
                code = victim.process.wait(30)
                first = wait_for(
                    lambda: _first_after(record_file, heir.pid, sent_at),
                    60,
                    f"{name}: partition {MEASURED} handled again",
                )
            return first.at - sent_at, (None if case == "kill -9" else code)
        finally:
            for member in members:
                member.stop()

    def _member(self, side: str, name: str, topic: str, env: dict[str, str]) -> ChildProcess:
        if side == "hubstream":
            args = ["-m", "hubstream_cli", "consume", "--handler", "bench.failover_members:record", "--ops-port", "0"]
        else:
            args = ["-m", "bench.failover_members"]
        return ChildProcess(
            name,
            [sys.executable, *args, "--group", topic, "--topic", topic],
            log_file=self.workdir / f"{name}.log",
            env=env,
            cwd=REPO_ROOT,
        )


def _settled(record_file: Path) -> dict[int, int] | None:
    """partition -> pid once each member has handled records of one partition for the last second."""
    recent = [line for line in read_lines(record_file) if line.what == "start" and time.time() - line.at < 1.0]
    owners: dict[int, set[int]] = {}
    for line in recent:
        owners.setdefault(line.partition, set()).add(line.pid)
    if len(owners) != 2 or any(len(pids) != 1 for pids in owners.values()):
        return None
    pids = {partition: next(iter(found)) for partition, found in owners.items()}
    oldest = min((line.at for line in recent), default=time.time())
    return pids if len(set(pids.values())) == 2 and time.time() - oldest > 0.8 else None


def _first_after(record_file: Path, pid: int, since: float) -> Line | None:
    return next(
        (
            line
            for line in read_lines(record_file)
            if line.pid == pid and line.what == "start" and line.partition == MEASURED and line.at > since
        ),
        None,
    )


def run(bench: Bench, delays: list[float]) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {(case, side): [] for case in CASES for side in SIDES}
    for round_, delay_s in enumerate(delays):
        for case in CASES:
            for side in SIDES if round_ % 2 == 0 else reversed(SIDES):
                seconds, code = bench.measure(side, case, delay_s)
                results[(case, side)].append(seconds)
                exit_note = "" if code is None else f" (exit code {code})"
                print(
                    f"  round {round_ + 1} (+{delay_s:.2f} s) {case:8} {side:9} {seconds:5.2f} s{exit_note}", flush=True
                )
                if code not in (None, 0):
                    raise SystemExit(f"the SIGTERMed {side} member exited with {code}")
    return results


def report(results: dict[tuple[str, str], list[float]], delays: list[float]) -> bool:
    print(f"\nFailover on the local broker, two members, {len(delays)} interleaved rounds (seconds)\n")
    print(f"{'signal delay':19}" + "".join(f"{'+' + format(d, '.2f'):>7}" for d in delays))
    header = "".join(f"{f'r{i + 1}':>7}" for i in range(len(delays)))
    print(f"{'case':9}{'side':10}{header}{'median':>8}")
    for (case, side), values in results.items():
        print(f"{case:9}{side:10}{''.join(f'{v:7.2f}' for v in values)}{statistics.median(values):8.2f}")
    medians = {key: statistics.median(values) for key, values in results.items()}
    over = {case: medians[(case, "hubstream")] - medians[(case, "bare")] for case in CASES}
    print(f"\n{'case':9}{'bare':>7}{'hubstream':>11}{'ours - bare':>13}{'goal':>8}  met")
    for case, extra in over.items():
        print(
            f"{case:9}{medians[(case, 'bare')]:7.2f}{medians[(case, 'hubstream')]:11.2f}{extra:+13.2f}"
            f"{'<= ' + format(GOAL_S, '.0f'):>8}  {'yes' if extra <= GOAL_S else 'NO'}"
        )
    print()
    return all(extra <= GOAL_S for extra in over.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp, local_services(Path(tmp)) as settings:
        config = kafka_config.consumer_config(settings, "<group>")
        print(
            "consumer config of both sides (profile local): " + ", ".join(f"{k}={config[k]}" for k in _TIMING_KEYS),
            flush=True,
        )
        admin = AdminClient(kafka_config.admin_config(settings))
        value, headers = encoded_record(settings)
        heartbeat_s = config["heartbeat.interval.ms"] / 1000
        delays = [heartbeat_s * (i + 0.5) / args.rounds for i in range(args.rounds)]
        results = run(Bench(settings, Path(tmp), admin, Feed(settings, value, headers)), delays)
    return 0 if report(results, delays) else 1


if __name__ == "__main__":
    sys.exit(main())
