"""HTTP ingest: the producer API against a bare FastAPI endpoint on the same server stack, in the same run.

    .venv/bin/python bench/http_ingest.py                     # or: make bench-http (about 6 minutes)
    .venv/bin/python bench/http_ingest.py --workers 1 --rounds 3 --seconds 5

It starts a broker (``--broker auto``: Apache Kafka when a JDK is here, else Tansu), the registry emulator, and for
each worker count two servers as processes: ``hubstream produce-api --workers N`` and the floor
(``bench/_http_floor.py``: the same uvicorn options and process model, an endpoint that only parses the body).
Rounds interleave the two servers (the first of each round alternates); per round and server:

saturation  ``wrk`` (Debian's; one thread, pinned to the last core, ``--connections`` keep-alive connections) for
            ``--seconds``: requests/s, and wrk's p99 (closed loop: the latency at that throughput).
batch       the same with ``--batch`` events per ``POST …/events:batch`` over 8 connections: events/s.
1,000/s     a paced open-loop client (``--rate``; python on asyncio, its own process, pinned to the same core):
            each request is due at start + i/rate whatever the earlier answers did, and its latency counts from
            when it was due. wrk2 is not in Debian, and wrk's ``delay()`` paces each connection only after its
            previous answer, so a stalled server would be sent less and its stall would not show.

Bodies are realistic ChatResponse chunks (``bench._stack.chat_event``), 500 different ones cycled, each with its
own conversationId (the Kafka key). The producer API answers after the broker acknowledged each event (acks=all);
the floor does no Kafka work at all, on the same two cores, so the ratio also counts the broker's CPU.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project is imported

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench._server_cost import cpu_seconds, sampled
from bench._stack import Stack, chat_json, load_note, local_stack, percentile, spread, stop_on_sigterm
from devstack.processes import ChildProcess, wait_until
from hubstream.ports import free_port

TOPIC = "bench-http"
GOALS = {"single": 0.8, "batch": 100_000.0}
_BODIES = 500
_BATCH_CONNECTIONS = 8


# --- the servers ----------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str  # floor or hubstream
    url: str
    child: ChildProcess


def start_servers(stack: Stack, workers: int, loop: str, http: str) -> dict[str, Server]:
    stack_args = ["--workers", str(workers), "--loop", loop, "--http", http]
    ports = {"hubstream": free_port(), "floor": free_port()}
    argv = {
        "hubstream": ["-m", "hubstream_cli", "produce-api", "--port", str(ports["hubstream"]), *stack_args],
        "floor": ["-m", "bench._http_floor", "--port", str(ports["floor"]), *stack_args],
    }
    servers = {}
    for name, args in argv.items():
        child = stack.child(f"{name}-w{workers}", args)
        url = f"http://127.0.0.1:{ports[name]}"
        wait_until(
            lambda url=url: httpx.get(f"{url}/readyz", timeout=2).status_code == 200,
            timeout=60,
            what=f"the {name} server",
            process=child,
        )
        servers[name] = Server(name, url, child)
    return servers


# --- load -----------------------------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    assert "]==]" not in text
    return "[==[" + text + "]==]"


def wrk_script(workdir: Path, path: str, bodies: list[str]) -> Path:
    """A wrk script cycling through ``bodies`` and printing its result as one JSON line."""
    script = workdir / f"wrk-{time.monotonic_ns()}.lua"
    script.write_text(
        "local bodies = {" + ",\n".join(_lua_string(b) for b in bodies) + "}\n"
        f'local path = "{path}"\n'
        'local headers = {["Content-Type"] = "application/json"}\n'
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        '  return wrk.format("POST", path, headers, bodies[i])\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format(\'{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d,'
        '"non2xx":%d}\\n\', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), '
        "e.connect + e.read + e.write + e.timeout, e.status))\n"
        "end\n"
    )
    return script


def load_cpu() -> int:
    return max(os.sched_getaffinity(0))


def pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    cpu = load_cpu()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, preexec_fn=lambda: pin(cpu)).stdout
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def paced(stack: Stack, url: str, rate: float, seconds: float, run: str) -> dict[str, Any]:
    """The open-loop client in its own process (``python bench/http_ingest.py paced``); its JSON result."""
    out = stack.workdir / f"paced-{run}.json"
    child = stack.child(
        f"paced-{run}",
        [
            "bench/http_ingest.py",
            "paced",
            url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--run",
            run,
            "--out",
            str(out),
        ],
    )
    child.process.wait(seconds + 60)
    return dict(json.loads(out.read_text()))


def paced_main(args: argparse.Namespace) -> None:
    import uvloop

    from bench._traffic import publish

    pin(load_cpu())
    count = int(args.rate * args.seconds)
    published = uvloop.run(publish(args.url, TOPIC, count, args.rate, lambda i: f"user-{i % 1000}", args.run))
    measured = published.answered_ms[count // 10 :]  # the first tenth warms the connections up
    result = {
        "rate": published.rate,
        "errors": published.errors,
        "first_error": published.first_error,
        "p50_ms": percentile(measured, 50),
        "p99_ms": percentile(measured, 99),
    }
    Path(args.out).write_text(json.dumps(result))


# --- rounds ---------------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Per worker count, per server, per measure: one value per round."""

    values: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, workers: int, server: str, measure: str, value: float) -> None:
        self.values.setdefault((workers, server, measure), []).append(value)

    def get(self, workers: int, server: str, measure: str) -> list[float]:
        return self.values.get((workers, server, measure), [])


def one_round(
    stack: Stack,
    servers: dict[str, Server],
    scripts: dict[str, Path],
    args: argparse.Namespace,
    workers: int,
    n: int,
    results: Results,
) -> None:
    order = ["floor", "hubstream"] if n % 2 == 0 else ["hubstream", "floor"]
    line = [f"  w{workers} round {n + 1 if n >= 0 else 'profiled (not counted)'}:"]
    for name in order:
        server = servers[name]
        profiled = args.profile if n < 0 and name == "hubstream" else None
        cpu = cpu_seconds(server.child.pid)
        with sampled(server.child.pid, profiled, f"single-w{workers}", args.seconds):
            single = wrk(server.url, scripts["single"], args.connections, args.seconds)
        single_cpu, cpu = cpu_seconds(server.child.pid) - cpu, cpu_seconds(server.child.pid)
        with sampled(server.child.pid, profiled, f"batch-w{workers}", args.seconds):
            batch = wrk(server.url, scripts["batch"], _BATCH_CONNECTIONS, args.seconds)
        batch_cpu = cpu_seconds(server.child.pid) - cpu
        rate = paced(stack, server.url, args.rate, args.seconds, f"{name}-w{workers}-r{n}-{time.time_ns()}")
        for measure, result in (("single", single), ("batch", batch)):
            if result["errors"] or result["non2xx"]:
                results.errors.append(f"{name} w{workers} {measure}: {result}")
        if rate["errors"]:
            results.errors.append(f"{name} w{workers} paced: {rate['errors']} errors, {rate['first_error']}")
        results.add(workers, name, "rps", single["rps"])
        results.add(workers, name, "cpu_us", single_cpu.total / single["requests"] * 1e6)
        results.add(workers, name, "rdk_us", single_cpu.librdkafka / single["requests"] * 1e6)
        results.add(workers, name, "batch_cpu_us", batch_cpu.total / (batch["requests"] * args.batch) * 1e6)
        results.add(workers, name, "batch_rdk_us", batch_cpu.librdkafka / (batch["requests"] * args.batch) * 1e6)
        results.add(workers, name, "sat_p99", single["p99_us"] / 1000)
        results.add(workers, name, "events", batch["rps"] * args.batch)
        results.add(workers, name, "rate_p50", rate["p50_ms"])
        results.add(workers, name, "rate_p99", rate["p99_ms"])
        line.append(
            f"{name} {single['rps']:,.0f} req/s (p99 {single['p99_us'] / 1000:.1f} ms), "
            f"batch {batch['rps'] * args.batch:,.0f} ev/s, at {args.rate:,.0f}/s p99 {rate['p99_ms']:.1f} ms;"
        )
    print(" ".join(line), flush=True)


def ratios(results: Results, workers: int) -> list[float]:
    """hubstream / floor requests per second, round by round."""
    return [
        h / f
        for h, f in zip(results.get(workers, "hubstream", "rps"), results.get(workers, "floor", "rps"), strict=True)
    ]


def report(results: Results, worker_counts: list[int], args: argparse.Namespace) -> bool:
    print(f"\n{args.rounds} interleaved rounds per worker count; median (min–max) over rounds\n")
    header = f"{'measure':40}{'floor':>24}{'hubstream':>24}{'ratio':>22}{'goal':>10}  met"
    print(header)
    met_all = True
    for w in worker_counts:
        floor, ours = results.get(w, "floor", "rps"), results.get(w, "hubstream", "rps")
        r = ratios(results, w)
        met = statistics.median(r) >= GOALS["single"]
        met_all &= met
        print(
            f"{f'single POST req/s, {w} worker(s)':40}{spread(floor, ',.0f'):>24}{spread(ours, ',.0f'):>24}"
            f"{spread(r, '.2f') + 'x':>22}{GOALS['single']:9.1f}x  {'yes' if met else 'NO'}"
        )
        rows = (
            ("sat_p99", "p99 ms at saturation"),
            ("rate_p99", f"p99 ms at {args.rate:,.0f}/s"),
            ("cpu_us", "server CPU µs per single POST"),
            ("rdk_us", "  of which librdkafka's threads"),
            ("batch_cpu_us", "server CPU µs per event in batches"),
            ("batch_rdk_us", "  of which librdkafka's threads"),
        )
        for measure, what in rows:
            print(
                f"{f'{what}, {w} worker(s)':40}{spread(results.get(w, 'floor', measure)):>24}"
                f"{spread(results.get(w, 'hubstream', measure)):>24}"
            )
        events = results.get(w, "hubstream", "events")
        met = statistics.median(events) >= GOALS["batch"]
        met_all &= met
        print(
            f"{f'{args.batch}-event batches ev/s, {w} worker(s)':40}"
            f"{spread(results.get(w, 'floor', 'events'), ',.0f'):>24}{spread(events, ',.0f'):>24}{'':>22}"
            f"{GOALS['batch']:10,.0f}  {'yes' if met else 'NO'}"
        )
    for error in results.errors:
        print("ERROR", error)
    return met_all and not results.errors


def bodies(batch: int) -> dict[str, list[str]]:
    singles = [chat_json(i, f"user-{i % 100}", "bench") for i in range(_BODIES)]
    batches = ['{"events":[' + ",".join(singles[(k + j) % _BODIES] for j in range(batch)) + "]}" for k in range(4)]
    return {"single": singles, "batch": batches}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("paced", help="(internal) the open-loop client")
    client.add_argument("url")
    client.add_argument("--rate", type=float, required=True)
    client.add_argument("--seconds", type=float, required=True)
    client.add_argument("--run", required=True)
    client.add_argument("--out", required=True)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="per measurement")
    parser.add_argument("--connections", type=int, default=64, help="wrk's, for single POSTs")
    parser.add_argument("--rate", type=float, default=1000, help="requests/s of the paced run")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--loop", default="uvloop", help="uvloop or asyncio (for before/after runs)")
    parser.add_argument("--http", default="httptools", help="httptools or h11 (for before/after runs)")
    parser.add_argument("--broker", choices=("auto", "tansu", "kafka"), default="auto")
    parser.add_argument("--profile", type=Path, help="py-spy the producer API in an extra round, raw stacks here")
    args = parser.parse_args()
    if args.command == "paced":
        paced_main(args)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk")
        return 2
    stop_on_sigterm()
    worker_counts = [int(w) for w in args.workers.split(",")]
    results = Results()
    print(f"http ingest; server stack: loop {args.loop}, http {args.http}", flush=True)
    with contextlib.ExitStack() as exits:
        workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        stack = exits.enter_context(local_stack(args.broker, workdir, [TOPIC]))
        texts = bodies(args.batch)
        scripts = {
            "single": wrk_script(workdir, f"/v1/topics/{TOPIC}/events", texts["single"]),
            "batch": wrk_script(workdir, f"/v1/topics/{TOPIC}/events:batch", texts["batch"]),
        }
        for w in worker_counts:
            servers = start_servers(stack, w, args.loop, args.http)
            for server in servers.values():  # warm-up: connections, metadata, caches
                wrk(server.url, scripts["single"], args.connections, 2)
                wrk(server.url, scripts["batch"], _BATCH_CONNECTIONS, 2)
            if args.profile:  # a round of its own: py-spy slows the server down
                one_round(stack, servers, scripts, args, w, -1, Results())
            for n in range(args.rounds):
                one_round(stack, servers, scripts, args, w, n, results)
            for server in servers.values():
                server.child.stop(20)
    print(load_note())
    return 0 if report(results, worker_counts, args) else 1


if __name__ == "__main__":
    sys.exit(main())
