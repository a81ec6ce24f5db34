"""Webhook benchmarks: throughput of one node to a fast receiver, and the latency a webhook adds to a message.

    .venv/bin/python bench/webhooks.py                          # or: make bench-webhooks (about 4 minutes)
    .venv/bin/python bench/webhooks.py --only latency --stores postgresql --repeat 5

It starts what it measures as real processes on real sockets and stops them at the end (also on Ctrl-C): the
broker (``--broker auto``: Apache Kafka when a JDK is here, else Tansu), the registry emulator, the producer API,
delivery nodes (``hubstream deliver``), a PostgreSQL server, and a receiver (bench/_receiver.py: raw asyncio
HTTP/1.1 keep-alive, a 200 to every POST, in a process of its own). Two measurements, each against a floor from
the same run:

throughput  ``--messages`` messages for 1,000 recipients are written into a store through MailboxStore.write with
            one enabled endpoint (``recipients: "*"``, unordered unless ``--ordered``), so each has a pending
            delivery; then a node starts on that store (``--no-consume``) and sends them all. Messages/s is the
            receiver's count over the time from its first to its last request. The floor is a plain POST loop with
            the node's HTTP client (aiohttp) to the same receiver, with the node's concurrency
            (``--max-in-flight``, the node's default 10) and bodies of the same size.
latency     A consuming node with one endpoint; events are POSTed to the producer API at ``--rate`` (500/s). The
            added latency is from the mailbox write (the message's arrivedAt: when its write transaction began) to
            the receiver's 2xx, p50/p99; POST -> 2xx is shown too. The floor is a plain open-loop POST at the same
            rate to the same receiver (raw HTTP/1.1, 16 connections): just before the POST -> the receiver's 2xx.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project is imported

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import aiohttp
import httpx

from bench._stack import (
    CHAT,
    Stack,
    chat_json,
    dump_json,
    load_note,
    local_stack,
    new_database,
    postgres,
    spread,
    stop_on_sigterm,
    summary,
    token,
)
from bench._traffic import publish, read_status
from delivery.mailbox import Delivery
from delivery.stores import Retention, open_store
from delivery.wakeups import Wakeups
from delivery.webhooks.model import Endpoint, SigningSecret
from delivery.webhooks.signing import new_secret
from hubstream.ports import free_port

PARTS = ("throughput", "latency")
STORES = ("sqlite", "postgresql")
RECIPIENTS = 1000
WARM_UP_S = 3.0


@dataclass
class Receiver:
    url: str
    out: Path
    status: Path

    def count(self) -> int:
        return int(read_status(self.status).get("received", 0))  # type: ignore[call-overload]

    def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        time.sleep(0.3)  # the last batch of lines
        return True

    def received(self, prefix: str = "") -> list[tuple[str, float, str]]:
        """(webhook-id, time of the 2xx, arrivedAt) per request, in arrival order."""
        rows = []
        for line in self.out.read_text().splitlines():
            webhook_id, at, arrived = line.split("\t")
            if webhook_id.startswith(prefix):
                rows.append((webhook_id, float(at), arrived))
        return rows


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    stack: Stack
    pg_dsn: str | None

    def store_url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:{self.workdir / (name + '.db')}"
        assert self.pg_dsn is not None
        return new_database(self.pg_dsn, name)

    def node_env(self) -> dict[str, str]:
        return {"HUBSTREAM_WEBHOOKS__MAX_IN_FLIGHT": str(self.args.max_in_flight)}

    def receiver(self, name: str) -> Receiver:
        port = free_port()
        out, status = self.workdir / f"{name}.tsv", self.workdir / f"{name}.json"
        argv = ["-m", "bench._receiver", "--port", str(port), "--out", str(out), "--status", str(status)]
        self.stack.child(name, argv)
        receiver = Receiver(f"http://127.0.0.1:{port}/hook", out, status)
        deadline = time.monotonic() + 20
        while not status.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the receiver did not start")
            time.sleep(0.05)
        return receiver


def message_body(i: int, run: str) -> bytes:
    """A body the size of a webhook's (a pulled message: cursor, ids, topic, schema, arrivedAt, the event)."""
    return (
        f'{{"cursor":"00000000-{i}","eventId":"{run}-{i}","topic":"chat.responses","schema":"{CHAT}",'
        f'"schemaId":"{"0" * 32}","conversation":"{run}-{i}","arrivedAt":"","event":'
        f"{chat_json(i, f'user-{i % RECIPIENTS}', run)}}}"
    ).encode()


# --- throughput -----------------------------------------------------------------------------------------------


async def _prefill(url: str, workdir: Path, receiver_url: str, count: int, ordered: bool, run: str) -> None:
    """An endpoint for every recipient, then ``count`` messages: each gets a pending delivery, due now."""
    store = open_store(url, retention=Retention(10_000, 7 * 86400, 3600), wakeups=Wakeups(), state_dir=workdir)
    await store.open()
    try:
        endpoint = Endpoint(
            id=f"ep_{uuid.uuid4().hex[:16]}",
            url=receiver_url,
            recipients=None,
            topics=None,
            ordered=ordered,
            description="bench",
            secrets=(SigningSecret(new_secret()),),
        )
        await store.webhooks.add_endpoint(endpoint)
        for start in range(0, count, 500):
            await store.write(
                [
                    Delivery(
                        f"user-{o % RECIPIENTS}",
                        f"{run}-{o}",
                        "chat.responses",
                        0,
                        o,
                        CHAT,
                        "0" * 32,
                        f"{run}-{o}",
                        chat_json(o, f"user-{o % RECIPIENTS}", run),
                    )
                    for o in range(start, min(count, start + 500))
                ]
            )
    finally:
        await store.close()


def _rate(rows: list[tuple[str, float, str]]) -> float:
    times = [at for _, at, _ in rows]
    return (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0


def node_throughput(bench: Bench, kind: str, round_: int) -> dict[str, Any]:
    args = bench.args
    run = f"t{uuid.uuid4().hex[:8]}"
    url = bench.store_url(kind, f"wh_tp_{kind}_{round_}")
    receiver = bench.receiver(f"receiver-tp-{kind}-{round_}")
    started = time.perf_counter()
    asyncio.run(_prefill(url, bench.workdir, receiver.url, args.messages, args.ordered, run))
    fill_s = time.perf_counter() - started
    node = bench.stack.node(url, **bench.node_env())
    try:
        complete = receiver.wait_for(args.messages, max(60, args.messages / 100))
    finally:
        node.stop()
    rows = receiver.received(run)
    unique = {webhook_id for webhook_id, _, _ in rows}
    return {
        "rate": _rate(rows),
        "received": len(rows),
        "unique": len(unique),
        "complete": complete,
        "prefill_s": fill_s,
    }


async def _post_loop(receiver: Receiver, count: int, concurrency: int, run: str) -> None:
    queue = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:

        async def worker() -> None:
            for i in queue:
                body = message_body(i, run)
                headers = {"content-type": "application/json", "webhook-id": f"{run}-{i}"}
                async with client.post(receiver.url, data=body, headers=headers) as response:
                    response.raise_for_status()
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def floor_throughput(bench: Bench, receiver: Receiver) -> float:
    run = f"f{uuid.uuid4().hex[:8]}"
    asyncio.run(_post_loop(receiver, bench.args.messages, bench.args.max_in_flight, run))
    time.sleep(0.5)  # the receiver's last batch of lines
    return _rate(receiver.received(run))


def throughput(bench: Bench) -> dict[str, Any]:
    args = bench.args
    results: dict[str, Any] = {kind: [] for kind in args.stores} | {"floor": []}
    floor_receiver = bench.receiver("receiver-floor")
    for round_ in range(args.repeat):
        order = [*args.stores, "floor"] if round_ % 2 == 0 else ["floor", *reversed(args.stores)]
        for kind in order:
            if kind == "floor":
                results["floor"].append(floor_throughput(bench, floor_receiver))
                print(f"  round {round_ + 1} plain POST loop {results['floor'][-1]:8,.0f} msgs/s", flush=True)
                continue
            r = node_throughput(bench, kind, round_)
            results[kind].append(r)
            print(
                f"  round {round_ + 1} {kind:10} {r['rate']:8,.0f} msgs/s ({r['unique']:,} of {args.messages:,} "
                f"delivered, {r['received'] - r['unique']} twice; prefill {r['prefill_s']:.1f} s)",
                flush=True,
            )
    return {"messages": args.messages, "ordered": args.ordered, "max_in_flight": args.max_in_flight, "runs": results}


def report_throughput(result: dict[str, Any]) -> None:
    mode = "ordered" if result["ordered"] else "unordered"
    print(
        f"\nwebhook throughput, one node, {result['messages']:,} pending deliveries for {RECIPIENTS:,} recipients, one "
        f"{mode} endpoint; msgs/s, median (min–max) over runs\n"
    )
    floor = result["runs"]["floor"]
    print(f"{'sender':30}{'msgs/s':>26}{'ratio to floor':>22}")
    sender = f"aiohttp POST loop, {result['max_in_flight']} conns"
    print(f"{sender:30}{spread(floor, ',.0f'):>26}{'1.00x':>22}")
    for kind, runs in result["runs"].items():
        if kind == "floor":
            continue
        rates = [r["rate"] for r in runs]
        ratios = [r / f for r, f in zip(rates, floor, strict=True)]
        lost = sum(result["messages"] - r["unique"] for r in runs)
        note = "" if not lost else f"  ({lost} not delivered in time)"
        print(f"{'hubstream node, ' + kind:30}{spread(rates, ',.0f'):>26}{spread(ratios, '.2f') + 'x':>22}{note}")


# --- latency --------------------------------------------------------------------------------------------------


def _epoch(arrived_at: str) -> float:
    return datetime.fromisoformat(arrived_at.replace("Z", "+00:00")).timestamp()


def node_latency(bench: Bench, api_url: str, receiver: Receiver, topic: str, seconds: float) -> dict[str, Any]:
    args = bench.args
    run = f"l{uuid.uuid4().hex[:8]}"
    rng = random.Random()
    count = int(args.rate * seconds)
    published = asyncio.run(
        publish(api_url, topic, count, args.rate, lambda _: f"user-{rng.randrange(RECIPIENTS)}", run)
    )
    deadline = time.monotonic() + 30
    while len(receiver.received(run)) < count and time.monotonic() < deadline:
        time.sleep(0.3)
    rows = {webhook_id: (at, arrived) for webhook_id, at, arrived in receiver.received(run)}
    measured = sorted(published.sent, key=published.sent.__getitem__)[int(args.rate) :]  # the first second: warm-up
    added = [(rows[k][0] - _epoch(rows[k][1])) * 1000 for k in measured if k in rows]
    total = [(rows[k][0] - published.sent[k]) * 1000 for k in measured if k in rows]
    return {
        "achieved_rate": published.rate,
        "post_errors": published.errors,
        "added": summary(added),
        "post_to_2xx": summary(total),
        "missing": len(measured) - len(added),
    }


async def _paced_posts(receiver: Receiver, count: int, rate: float, run: str) -> dict[str, float]:
    """The floor's sender: raw HTTP/1.1 over 16 keep-alive connections, each request's time taken just before it is
    written (httpx's pool, open loop at 500/s on this machine, queued requests for tens of seconds)."""
    sent: dict[str, float] = {}
    parts = urlsplit(receiver.url)
    due: asyncio.Queue[int | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while (i := await due.get()) is not None:
                body = message_body(i, run)
                head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\ncontent-type: application/json\r\n"
                head += f"webhook-id: {run}-{i}\r\ncontent-length: {len(body)}\r\n\r\n"
                sent[f"{run}-{i}"] = time.time()
                writer.write(head.encode() + body)
                await reader.readuntil(b"\r\n\r\nok")
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(16)]
    start = time.perf_counter() + 0.05
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(i)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return sent


def floor_latency(bench: Bench, receiver: Receiver, seconds: float) -> dict[str, Any]:
    args = bench.args
    run = f"p{uuid.uuid4().hex[:8]}"
    sent = asyncio.run(_paced_posts(receiver, int(args.rate * seconds), args.rate, run))
    time.sleep(0.5)
    rows = {webhook_id: at for webhook_id, at, _ in receiver.received(run)}
    measured = sorted(sent, key=sent.__getitem__)[int(args.rate) :]
    return {"added": summary([(rows[k] - sent[k]) * 1000 for k in measured if k in rows])}


def latency(bench: Bench) -> dict[str, Any]:
    args, stack = bench.args, bench.stack
    api = stack.producer_api()
    admin = {"Authorization": f"Bearer {token('bench', admin=True)}"}
    nodes = {}
    for kind in args.stores:
        topic = f"webhooks-{kind}"
        node = stack.node(bench.store_url(kind, f"wh_lat_{kind}"), topic, **bench.node_env())
        receiver = bench.receiver(f"receiver-lat-{kind}")
        response = httpx.post(
            f"{node.url}/v1/webhooks", headers=admin, json={"url": receiver.url, "recipients": "*"}, timeout=30
        )
        response.raise_for_status()
        nodes[kind] = (node, receiver, topic)
        node_latency(bench, api.url, receiver, topic, WARM_UP_S)  # not counted
    floor_receiver = bench.receiver("receiver-lat-floor")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in [*args.stores, "floor"]}
    for round_ in range(args.repeat):
        order = [*args.stores, "floor"] if round_ % 2 == 0 else ["floor", *reversed(args.stores)]
        for kind in order:
            if kind == "floor":
                r = floor_latency(bench, floor_receiver, args.seconds)
                print(f"  round {round_ + 1} plain POST  p50 {r['added']['p50']:6.1f} p99 {r['added']['p99']:6.1f} ms")
            else:
                _, receiver, topic = nodes[kind]
                r = node_latency(bench, api.url, receiver, topic, args.seconds)
                print(
                    f"  round {round_ + 1} {kind:10} write -> 2xx p50 {r['added']['p50']:6.1f} p99 "
                    f"{r['added']['p99']:6.1f} ms | POST -> 2xx p50 {r['post_to_2xx']['p50']:6.1f} p99 "
                    f"{r['post_to_2xx']['p99']:6.1f} ms | {r['achieved_rate']:.0f}/s, {r['missing']} missing",
                    flush=True,
                )
            results[kind].append(r)
    return {"rate": args.rate, "seconds": args.seconds, "runs": results}


def report_latency(result: dict[str, Any]) -> None:
    print(
        f"\nwebhook latency at {result['rate']:.0f} msgs/s ({result['seconds']:.0f} s runs); ms, median (min–max) "
        "over runs\n"
    )
    print(f"{'path':34}{'p50':>20}{'p99':>20}{'p99 ratio':>16}")
    floor = [r["added"]["p99"] for r in result["runs"]["floor"]]
    for kind, runs in result["runs"].items():
        label = "plain POST -> 2xx (floor)" if kind == "floor" else f"mailbox write -> 2xx, {kind}"
        p50, p99 = [r["added"]["p50"] for r in runs], [r["added"]["p99"] for r in runs]
        ratios = [a / b for a, b in zip(p99, floor, strict=True)]
        print(f"{label:34}{spread(p50):>20}{spread(p99):>20}{spread(ratios, '.1f') + 'x':>16}")
    for kind, runs in result["runs"].items():
        if kind != "floor":
            p50 = [r["post_to_2xx"]["p50"] for r in runs]
            p99 = [r["post_to_2xx"]["p99"] for r in runs]
            print(f"{'POST event -> 2xx, ' + kind:34}{spread(p50):>20}{spread(p99):>20}")


# --- main -----------------------------------------------------------------------------------------------------


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v for v in text.split(",") if v]
        if not set(values) <= set(choices):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return values

    return parse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=_csv(PARTS), default=list(PARTS), help="parts to run (comma-separated)")
    parser.add_argument("--stores", type=_csv(STORES), default=list(STORES), help="sqlite,postgresql")
    parser.add_argument("--broker", choices=("auto", "tansu", "kafka"), default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (spreads are over these)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (- for stdout)")
    parser.add_argument("--messages", type=int, default=5000, help="throughput: pending deliveries per run")
    parser.add_argument("--ordered", action="store_true", help="throughput: an ordered endpoint")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=10,
        help="the node's requests in flight per endpoint (its default: 10), and the floor's connections",
    )
    parser.add_argument("--rate", type=float, default=500, help="latency: events/s offered")
    parser.add_argument("--seconds", type=float, default=10, help="latency: length of each run")
    parser.add_argument("--per-post", type=int, default=10, help="latency: events per POST to the producer API")
    return parser.parse_args()


@contextlib.contextmanager
def bench_environment(args: argparse.Namespace, workdir: Path) -> Iterator[Bench]:
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres()) if "postgresql" in args.stores else None
        services = stack.enter_context(local_stack(args.broker, workdir, [f"webhooks-{k}" for k in STORES]))
        yield Bench(args, workdir, services, pg)


def main() -> int:
    args = parse_args()
    stop_on_sigterm()
    print(f"webhook benchmarks: {', '.join(args.only)} on {', '.join(args.stores)}; {load_note()}", flush=True)
    results: dict[str, Any] = {"load": load_note()}
    parts = {"throughput": (throughput, report_throughput), "latency": (latency, report_latency)}
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp, bench_environment(args, Path(tmp)) as bench:
        results["broker"] = bench.stack.broker
        for name in args.only:
            print(f"\n== {name}", flush=True)
            results[name] = parts[name][0](bench)
    for name in args.only:
        parts[name][1](results[name])
    results["load_after"] = load_note()
    print(f"\n{results['load_after']}")
    if args.json:
        dump_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
