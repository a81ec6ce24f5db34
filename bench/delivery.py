"""Delivery benchmarks: end-to-end latency, mailbox writes, pulls at a million messages, thousands of streams.

    .venv/bin/python bench/delivery.py                         # or: make bench-delivery (about 5 minutes)
    .venv/bin/python bench/delivery.py --only e2e --broker kafka --repeat 5
    .venv/bin/python bench/delivery.py --pull-messages 1000000 --streams 10000   # the full sizes (~10 minutes)

It starts what it measures as real processes on real sockets, and stops them at the end (also on Ctrl-C): the
broker (``--broker auto`` picks Apache Kafka when a JDK is here, like the test session, else Tansu), the registry
emulator, the producer API (``hubstream produce-api``), delivery nodes (``hubstream deliver``) and a PostgreSQL
server (Debian's binaries). Each part compares against a floor measured in the same run:

e2e      POST -> SSE client, p50/p99, a paced open-loop publisher at ``--rate`` (1,000/s), ``--per-post`` (10)
         events per POST (one producer API process answers ~600 single POSTs/s here), for each store; the floor
         is a bare confluent-kafka consumer (the node's own consumer config) on the same topic: POST -> its receipt.
         Split at the mailbox write (the message's arrivedAt): what happens before (broker, fetch, hand-off, decode)
         and after (commit, wake-up, read, SSE send). Repeats interleave stores.
writes   Mailbox write throughput through the store interface (MailboxStore.write), batches of consecutive records
         of one partition for 1,000 recipients; the floor inserts the same rows into the same table (same indexes,
         same durability: SQLite WAL synchronous=FULL, a PostgreSQL commit) in the same transaction sizes, raw SQL.
pull     GET .../messages?after=<random cursor>&limit=100 on a store holding ``--pull-messages`` (1,000 recipients),
         and a recipient with 5 messages in that table; the floor is the store's own query, sent directly.
streams  ``--streams`` concurrent SSE streams on one node (SQLite), one recipient each, held by two probe
         processes: the node's RSS per stream, then POST -> SSE p50/p99 at ``--stream-rate`` (100/s) to random
         recipients, with the raw-consumer floor.

The machine is small and shared: read the spreads (median, min–max over ``--repeat``), not one number.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project is imported

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx
import psycopg

from bench._stack import (
    CHAT,
    Service,
    Stack,
    chat_json,
    dump_json,
    load_note,
    local_stack,
    metrics,
    new_database,
    percentile,
    postgres,
    raise_open_files,
    rss_kb,
    spread,
    stop_on_sigterm,
    summary,
    token,
)
from bench._traffic import latencies_ms, publish, read_status, wait_arrivals
from delivery.mailbox import Delivery
from delivery.stores import MailboxStore, Retention, open_store
from delivery.stores import postgres as pg_store
from delivery.stores import sqlite as sqlite_store
from delivery.wakeups import Wakeups

PARTS = ("e2e", "writes", "pull", "streams")
STORES = ("sqlite", "postgresql")
GOALS_P99_MS = {"sqlite": 50.0, "postgresql": 100.0}
RETENTION = Retention(max_messages=10_000, ttl_s=7 * 86400, acked_grace_s=3600)
SCHEMA_ID = "0" * 32
WARM_UP_S = 3.0  # a window published and thrown away after the probes connect: first fetches, JIT, pools


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    stack: Stack | None  # None when no part needs the broker
    pg_dsn: str | None  # the admin DSN of the bench's PostgreSQL

    def store_url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:{self.workdir / (name + '.db')}"
        assert self.pg_dsn is not None
        return new_database(self.pg_dsn, name)


# --- e2e ------------------------------------------------------------------------------------------------------


@dataclass
class Probes:
    node: Service
    topic: str
    sse_out: list[Path]
    raw_out: Path
    sse_pids: list[int]

    def outputs(self) -> tuple[list[Path], list[Path]]:
        return self.sse_out, [self.raw_out]


def start_probes(bench: Bench, node: Service, topic: str, recipients: int, sse_processes: int = 1) -> Probes:
    """Raw consumer and SSE streams (split over ``sse_processes``) on ``topic``; returns once all are open."""
    stack = bench.stack
    assert stack is not None
    raw_out, raw_status = bench.workdir / f"raw-{topic}.tsv", bench.workdir / f"raw-{topic}.json"
    stack.child(
        "raw", ["-m", "bench._clients", "raw", "--topic", topic, "--out", str(raw_out), "--status", str(raw_status)]
    )
    outs, statuses, pids = [], [], []
    per = -(-recipients // sse_processes)
    for k in range(sse_processes):
        start, count = k * per, min(per, recipients - k * per)
        out, status = bench.workdir / f"sse-{topic}-{k}.tsv", bench.workdir / f"sse-{topic}-{k}.json"
        child = stack.child(
            "sse",
            [
                *("-m", "bench._clients", "sse", "--url", node.url, "--recipients", f"user-:{start}:{count}"),
                *("--out", str(out), "--status", str(status)),
            ],
        )
        outs.append(out)
        statuses.append(status)
        pids.append(child.pid)
    deadline = time.monotonic() + max(60, recipients / 100)
    while True:
        states = [read_status(s) for s in statuses]
        opened = sum(int(s.get("open", 0)) for s in states)  # type: ignore[call-overload]
        failed = sum(int(s.get("failed", 0)) for s in states)  # type: ignore[call-overload]
        if read_status(raw_status).get("assigned") and opened + failed >= recipients:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"probes not ready: {opened} of {recipients} streams open, {failed} failed; {states}")
        time.sleep(0.2)
    if failed:
        errors = "; ".join(str(s.get("errors")) for s in states if s.get("errors"))
        print(f"  {failed} of {recipients} streams failed to open: {errors}", flush=True)
    return Probes(node, topic, outs, raw_out, pids)


def measure_window(
    api: Service,
    probes: Probes,
    rate: float,
    seconds: float,
    recipient_of: Callable[[int], str],
    split_over: list[str] | None = None,
    per_post: int = 1,
) -> dict[str, Any]:
    """Publish for ``seconds`` at ``rate``; latencies POST -> SSE and POST -> raw consumer (first second skipped);
    with ``split_over`` (the recipients) also split at the mailbox write."""
    run = f"r{uuid.uuid4().hex[:8]}"
    count = int(rate * seconds)
    published = asyncio.run(publish(api.url, probes.topic, count, rate, recipient_of, run, per_post))
    sse_files, raw_files = probes.outputs()
    ids = set(published.sent)
    sse = wait_arrivals(sse_files, ids, run, 20)
    raw = wait_arrivals(raw_files, ids, run, 5)
    skip = int(rate)  # the first second: connections warming up
    sse_ms, sse_missing = latencies_ms(published.sent, sse, skip)
    raw_ms, raw_missing = latencies_ms(published.sent, raw, skip)
    split = split_at_mailbox(probes.node.url, split_over, published.sent, sse, raw, skip) if split_over else None
    return {
        "offered_rate": rate,
        "achieved_rate": published.rate,
        "post_errors": published.errors,
        "first_error": published.first_error,
        "sse": summary(sse_ms),
        "raw": summary(raw_ms),
        "sse_missing": sse_missing,
        "raw_missing": raw_missing,
        "split": split,
    }


def split_at_mailbox(
    url: str, recipients: list[str], sent: dict[str, float], sse: dict[str, float], raw: dict[str, float], skip: int
) -> dict[str, Any]:
    """Where the time goes, from each message's arrivedAt (when the node's write transaction began, in ms):
    raw receipt -> mailbox write, and mailbox write -> SSE arrival."""
    wanted = set(sorted(sent, key=sent.__getitem__)[skip:])
    arrived_at = _arrived_at(url, recipients, wanted)
    before = [(arrived_at[k] - raw[k]) * 1000 for k in wanted if k in arrived_at and k in raw]
    after = [(sse[k] - arrived_at[k]) * 1000 for k in wanted if k in arrived_at and k in sse]
    return {"raw_to_write": summary(before), "write_to_sse": summary(after)}


def _arrived_at(url: str, recipients: list[str], wanted: set[str]) -> dict[str, float]:
    """eventId -> arrivedAt (epoch seconds) of the ``wanted`` messages, read back from the recipients' mailboxes."""
    found: dict[str, float] = {}
    admin = {"Authorization": f"Bearer {token('bench', admin=True)}"}
    with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
        for recipient in recipients:
            after = None
            while True:
                params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after else {})
                page = client.get(f"/v1/mailboxes/{recipient}/messages", params=params).json()
                for m in page["messages"]:
                    if m["eventId"] in wanted:
                        found[m["eventId"]] = datetime.fromisoformat(m["arrivedAt"].replace("Z", "+00:00")).timestamp()
                if len(page["messages"]) < 1000:
                    break
                after = page["next"]
    return found


def e2e(bench: Bench) -> dict[str, Any]:
    args, stack = bench.args, bench.stack
    assert stack is not None
    api = stack.producer_api()
    rng = random.Random(1)
    recipients = [f"user-{i}" for i in range(args.recipients)]
    probes = {}
    for kind in args.stores:
        topic = f"e2e-{kind}"
        node = stack.node(bench.store_url(kind, f"e2e_{kind}"), topic)
        probes[kind] = start_probes(bench, node, topic, args.recipients)
        # not counted: first fetches, pools
        measure_window(api, probes[kind], args.rate, WARM_UP_S, lambda _: rng.choice(recipients), None, args.per_post)
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in args.stores}
    for round_ in range(args.repeat):
        for kind in args.stores if round_ % 2 == 0 else reversed(args.stores):
            r = measure_window(
                api, probes[kind], args.rate, args.seconds, lambda _: rng.choice(recipients), recipients, args.per_post
            )
            results[kind].append(r)
            print(
                f"  round {round_ + 1} {kind:10} sse p50 {r['sse']['p50']:6.1f} p99 {r['sse']['p99']:6.1f} ms | "
                f"raw p50 {r['raw']['p50']:6.1f} p99 {r['raw']['p99']:6.1f} ms | "
                f"{r['achieved_rate']:.0f}/s, {r['post_errors']} errors, {r['sse_missing']} missing",
                flush=True,
            )
    writes = {kind: _write_metrics(probes[kind].node.url) for kind in args.stores}
    return {
        "rate": args.rate,
        "per_post": args.per_post,
        "seconds": args.seconds,
        "recipients": args.recipients,
        "runs": results,
        "node": writes,
    }


def _write_metrics(url: str) -> dict[str, float]:
    samples = metrics(url)
    count = samples.get("hubstream_delivery_write_seconds_count", 0.0)
    total = samples.get("hubstream_delivery_write_seconds_sum", 0.0)
    return {"write_transactions": count, "mean_write_ms": total / count * 1000 if count else 0.0}


def report_e2e(result: dict[str, Any]) -> None:
    print(
        f"\nPOST -> SSE at {result['rate']:.0f} events/s ({result['per_post']} per POST, {result['seconds']:.0f} s "
        f"windows, {result['recipients']} streams), against a raw consumer of the same topic; ms, median (min–max) "
        "over runs\n"
    )
    print(f"{'store':11}{'raw p50':>18}{'raw p99':>20}{'SSE p50':>20}{'SSE p99':>20}{'p99 ratio':>18}{'goal':>8}  met")
    for kind, runs in result["runs"].items():
        col = {
            k: [r[side][q] for r in runs] for side in ("raw", "sse") for q in ("p50", "p99") for k in [f"{side}_{q}"]
        }
        ratios = [r["sse"]["p99"] / r["raw"]["p99"] for r in runs]
        p99 = statistics.median(col["sse_p99"])
        print(
            f"{kind:11}{spread(col['raw_p50']):>18}{spread(col['raw_p99']):>20}{spread(col['sse_p50']):>20}"
            f"{spread(col['sse_p99']):>20}{spread(ratios, '.2f') + 'x':>18}{GOALS_P99_MS[kind]:>8.0f}  "
            f"{'yes' if p99 <= GOALS_P99_MS[kind] else 'NO'}"
        )
    print("\nwhere the time goes (ms, median over runs): raw receipt -> mailbox write began; write began -> SSE")
    for kind, runs in result["runs"].items():
        b50 = [r["split"]["raw_to_write"]["p50"] for r in runs]
        b99 = [r["split"]["raw_to_write"]["p99"] for r in runs]
        a50 = [r["split"]["write_to_sse"]["p50"] for r in runs]
        a99 = [r["split"]["write_to_sse"]["p99"] for r in runs]
        rates = [r["achieved_rate"] for r in runs]
        print(
            f"  {kind:11} raw->write p50 {spread(b50)} p99 {spread(b99)} | write->SSE p50 {spread(a50)} p99 "
            f"{spread(a99)} | offered {spread(rates, '.0f')}/s"
        )


# --- writes ---------------------------------------------------------------------------------------------------


def deliveries(start: int, count: int, run: str, recipients: int = 1000) -> list[Delivery]:
    """Consecutive records of partition 0 (offsets start..), each for one of ``recipients``."""
    return [
        Delivery(
            f"user-{o % recipients}",
            f"{run}-{o}",
            "chat.responses",
            0,
            o,
            CHAT,
            SCHEMA_ID,
            f"{run}-{o}",
            chat_json(o, f"user-{o % recipients}", run),
        )
        for o in range(start, start + count)
    ]


def _rows(batch: list[Delivery], seqs: dict[str, int]) -> list[tuple[Any, ...]]:
    now = int(time.time() * 1000)
    rows = []
    for d in batch:
        seqs[d.recipient] = seqs.get(d.recipient, 0) + 1
        rows.append(
            (
                d.recipient,
                seqs[d.recipient],
                d.event_id,
                d.topic,
                d.partition,
                d.offset,
                d.schema_name,
                d.schema_id,
                d.conversation,
                d.event_json,
                now,
            )
        )
    return rows


class SqliteFloor:
    """The same rows into the store's own messages table (its schema, WAL, synchronous=FULL), raw SQL."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in sqlite_store._SCHEMA:
            self._db.execute(statement)
        self._seqs: dict[str, int] = {}

    async def write(self, batch: list[Delivery]) -> None:
        rows = _rows(batch, self._seqs)
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)", rows)
        self._db.execute("COMMIT")

    async def close(self) -> None:
        self._db.close()


class PostgresFloor:
    """The same rows into mailbox_messages (the store's schema) of a database of its own, one unnest INSERT per
    transaction, raw SQL."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._seqs: dict[str, int] = {}

    async def open(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await self._conn.execute(pg_store._SCHEMA)

    async def write(self, batch: list[Delivery]) -> None:
        assert self._conn is not None
        rows = _rows(batch, self._seqs)
        columns = [list(c) for c in zip(*rows, strict=True)]
        async with self._conn.transaction():
            await self._conn.execute(
                "INSERT INTO mailbox_messages SELECT *, NULL FROM unnest(%s::text[], %s::bigint[], %s::text[], "
                "%s::text[], %s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[])",
                columns,
            )

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def _open(url: str, workdir: Path) -> MailboxStore:
    store = open_store(url, retention=RETENTION, wakeups=Wakeups(), state_dir=workdir)
    await store.open()
    return store


async def _write_rates(bench: Bench, kind: str) -> dict[int, dict[str, list[float]]]:
    args = bench.args
    store = await _open(bench.store_url(kind, f"writes_{kind}"), bench.workdir)
    if kind == "sqlite":
        floor: SqliteFloor | PostgresFloor = SqliteFloor(bench.workdir / "writes_floor.db")
    else:
        floor = PostgresFloor(bench.store_url(kind, "writes_floor"))
        await floor.open()
    rates: dict[int, dict[str, list[float]]] = {b: {"ours": [], "floor": []} for b in args.write_batches}
    offset = 0
    try:
        for round_ in range(args.repeat):
            for b in args.write_batches:
                count = min(args.write_max_events, max(b, b * args.write_txns))
                batch_list = [deliveries(offset + i, b, "w") for i in range(0, count, b)]
                offset += count
                sides: list[tuple[str, Callable[[list[Delivery]], Any]]] = [
                    ("ours", store.write),
                    ("floor", floor.write),
                ]
                for side, write in sides if round_ % 2 == 0 else reversed(sides):
                    started = time.perf_counter()
                    for batch in batch_list:
                        await write(batch)
                    rates[b][side].append(count / (time.perf_counter() - started))
                print(
                    f"  round {round_ + 1} {kind:10} batch {b:4}: hubstream {rates[b]['ours'][-1]:9,.0f}/s, "
                    f"raw SQL {rates[b]['floor'][-1]:9,.0f}/s",
                    flush=True,
                )
    finally:
        await store.close()
        await floor.close()
    return rates


def writes(bench: Bench) -> dict[str, Any]:
    return {kind: asyncio.run(_write_rates(bench, kind)) for kind in bench.args.stores}


def report_writes(result: dict[str, Any]) -> None:
    print("\nmailbox writes, events/s (1,000 recipients, consecutive offsets of one partition); median (min–max)\n")
    print(f"{'store':11}{'batch':>6}{'raw SQL':>26}{'hubstream':>26}{'ratio':>22}")
    for kind, by_batch in result.items():
        for b, sides in by_batch.items():
            ratios = [o / f for o, f in zip(sides["ours"], sides["floor"], strict=True)]
            print(
                f"{kind:11}{b:>6}{spread(sides['floor'], ',.0f'):>26}{spread(sides['ours'], ',.0f'):>26}"
                f"{spread(ratios, '.2f') + 'x':>22}"
            )


# --- pull -----------------------------------------------------------------------------------------------------

PER_RECIPIENT = 1000
SPARSE = "user-sparse"


async def _fill(url: str, workdir: Path, total: int) -> tuple[str, float]:
    """``total`` messages for total/1000 recipients, interleaved as live traffic is, and 5 for SPARSE spread
    through them; returns the store's epoch and the fill rate."""
    store = await _open(url, workdir)
    recipients = max(1, total // PER_RECIPIENT)
    sparse_every = max(1, total // 5)
    started = time.perf_counter()
    try:
        for start in range(0, total, 500):
            batch = deliveries(start, min(500, total - start), "p", recipients)
            batch += [_sparse(o) for o in range(start, start + len(batch)) if o % sparse_every == 0]
            await store.write(batch)
        return store.epoch, total / (time.perf_counter() - started)
    finally:
        await store.close()


def _sparse(offset: int) -> Delivery:
    return Delivery(
        SPARSE, f"s-{offset}", "chat.responses", 0, offset, CHAT, SCHEMA_ID, None, chat_json(offset, SPARSE, "s")
    )


def pull(bench: Bench) -> dict[str, Any]:
    args, stack = bench.args, bench.stack
    results: dict[str, Any] = {}
    for kind in args.stores:
        url = bench.store_url(kind, f"pull_{kind}")
        print(f"  filling the {kind} store with {args.pull_messages:,} messages ...", flush=True)
        epoch, fill_rate = asyncio.run(_fill(url, bench.workdir, args.pull_messages))
        print(f"  filled at {fill_rate:,.0f} events/s (batches of 500)", flush=True)
        assert stack is not None
        node = stack.node(url)
        try:
            results[kind] = {"fill_rate": fill_rate, **_pull_latencies(url, node.url, epoch, args)}
        finally:
            node.stop()
        r = results[kind]
        print(
            f"  {kind:10} random cursor p50 {spread(r['random']['p50'], '.2f')} p99 {spread(r['random']['p99'], '.2f')}"
            f" ms (floor p50 {spread(r['floor']['p50'], '.2f')}); sparse p50 {spread(r['sparse']['p50'], '.2f')} ms",
            flush=True,
        )
    return {"messages": args.pull_messages, "requests": args.pull_requests, "stores": results}


def _pull_latencies(store_url: str, node_url: str, epoch: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    recipients = max(1, args.pull_messages // PER_RECIPIENT)
    floor = _floor_reader(store_url)
    cases: dict[str, dict[str, list[float]]] = {c: {"p50": [], "p99": []} for c in ("random", "sparse", "floor")}
    admin = {"Authorization": f"Bearer {token('bench', admin=True)}"}
    with httpx.Client(base_url=node_url, headers=admin, timeout=30) as client:
        for _ in range(args.repeat):
            timings: dict[str, list[float]] = {c: [] for c in cases}
            for _ in range(args.pull_requests):
                recipient = f"user-{rng.randrange(recipients)}"
                seq = rng.randrange(0, max(1, PER_RECIPIENT - 100))
                for case in ("random", "floor", "sparse"):
                    started = time.perf_counter()
                    if case == "random":
                        got = _get(client, recipient, f"{epoch}-{seq}", 100)
                    elif case == "floor":
                        got = floor(recipient, seq)
                    else:
                        got = _get(client, SPARSE, None, 100)
                    timings[case].append((time.perf_counter() - started) * 1000)
                    assert got, f"{case}: an empty page"
            for case, values in timings.items():
                cases[case]["p50"].append(percentile(values, 50))
                cases[case]["p99"].append(percentile(values, 99))
    return cases


def _get(client: httpx.Client, recipient: str, after: str | None, limit: int) -> int:
    params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
    response = client.get(f"/v1/mailboxes/{recipient}/messages", params=params)
    response.raise_for_status()
    return len(response.json()["messages"])


def _floor_reader(store_url: str) -> Callable[[str, int], int]:
    """The page's rows by the store's own query, sent directly (no HTTP, no JSON)."""
    if store_url.startswith("sqlite:"):
        db = sqlite3.connect(store_url.removeprefix("sqlite:"), isolation_level=None)
        query = f"SELECT {sqlite_store._COLUMNS} FROM messages WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT 100"
        return lambda recipient, seq: len(db.execute(query, (recipient, seq)).fetchall())
    conn = psycopg.connect(store_url, autocommit=True)
    query = pg_store._READ.format(conversation="")
    return lambda recipient, seq: len(conn.execute(query, {"r": recipient, "after": seq, "limit": 100}).fetchall())


def report_pull(result: dict[str, Any]) -> None:
    print(
        f"\nGET .../messages?limit=100 with {result['messages']:,} messages stored ({result['requests']} requests "
        "per case and run); ms, median (min–max) over runs\n"
    )
    print(f"{'store':11}{'case':28}{'p50':>22}{'p99':>22}")
    for kind, r in result["stores"].items():
        for case, label in (
            ("floor", "store query, direct"),
            ("random", "random cursor, 1,000 msgs"),
            ("sparse", "recipient with 5 msgs"),
        ):
            print(f"{kind:11}{label:28}{spread(r[case]['p50'], '.2f'):>22}{spread(r[case]['p99'], '.2f'):>22}")
        print(f"{'':11}(filled at {r['fill_rate']:,.0f} events/s through MailboxStore.write, batches of 500)")


# --- streams --------------------------------------------------------------------------------------------------


def streams(bench: Bench) -> dict[str, Any]:
    args, stack = bench.args, bench.stack
    assert stack is not None
    limit = raise_open_files(args.streams * 2 + 1000)
    api = stack.producer_api()
    topic = "streams"
    node = stack.node(bench.store_url("sqlite", "streams"), topic)
    httpx.get(f"{node.url}/v1/mailboxes/user-0/messages", headers={"Authorization": f"Bearer {token('user-0')}"})
    time.sleep(1)
    before = node.rss_kb()
    started = time.monotonic()
    processes = 1 if args.streams <= 2000 else 2
    probes = start_probes(bench, node, topic, args.streams, processes)
    open_s = time.monotonic() - started
    time.sleep(3)
    after = node.rss_kb()
    held = httpx.get(f"{node.url}/healthz", timeout=30).json()["streams"]
    print(
        f"  {held:,} streams open on the node after {open_s:.1f} s (RLIMIT_NOFILE {limit}); node RSS "
        f"{before / 1024:.0f} -> {after / 1024:.0f} MiB, {(after - before) / max(1, held):.1f} KiB per stream",
        flush=True,
    )
    rng = random.Random(3)
    measure_window(api, probes, args.stream_rate, WARM_UP_S, lambda _: f"user-{rng.randrange(args.streams)}")
    runs = []
    for round_ in range(args.repeat):
        r = measure_window(
            api, probes, args.stream_rate, args.stream_seconds, lambda _: f"user-{rng.randrange(args.streams)}"
        )
        runs.append(r)
        print(
            f"  round {round_ + 1} sse p50 {r['sse']['p50']:6.1f} p99 {r['sse']['p99']:6.1f} ms | raw p50 "
            f"{r['raw']['p50']:6.1f} p99 {r['raw']['p99']:6.1f} ms | {r['sse_missing']} missing",
            flush=True,
        )
    client_kb = sum(rss_kb(pid) for pid in probes.sse_pids)
    return {
        "streams": args.streams,
        "held": held,
        "open_seconds": open_s,
        "node_rss_kb": [before, node.rss_kb()],
        "kib_per_stream": (after - before) / max(1, held),
        "client_rss_kb": client_kb,
        "rate": args.stream_rate,
        "runs": runs,
    }


def report_streams(result: dict[str, Any]) -> None:
    runs = result["runs"]
    print(
        f"\n{result['held']:,} of {result['streams']:,} SSE streams held by one node (SQLite), opened in "
        f"{result['open_seconds']:.1f} s; node RSS {result['node_rss_kb'][0] / 1024:.0f} -> "
        f"{result['node_rss_kb'][1] / 1024:.0f} MiB = {result['kib_per_stream']:.1f} KiB per stream\n"
    )
    print(f"POST -> SSE at {result['rate']:.0f} events/s to random recipients; ms, median (min–max) over runs\n")
    print(f"{'':14}{'p50':>20}{'p99':>20}")
    for side, label in (("raw", "raw consumer"), ("sse", "SSE client")):
        print(f"{label:14}{spread([r[side]['p50'] for r in runs]):>20}{spread([r[side]['p99'] for r in runs]):>20}")
    ratios = [r["sse"]["p99"] / r["raw"]["p99"] for r in runs]
    print(f"{'p99 ratio':14}{'':>20}{spread(ratios, '.2f') + 'x':>20}")


# --- main -----------------------------------------------------------------------------------------------------


def _csv(kind: type, choices: tuple[str, ...] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(v) for v in text.split(",") if v]
        if choices and not set(values) <= set(choices):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return values

    return parse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=_csv(str, PARTS), default=list(PARTS), help="parts to run (comma-separated)")
    parser.add_argument("--stores", type=_csv(str, STORES), default=list(STORES), help="sqlite,postgresql")
    parser.add_argument("--broker", choices=("auto", "tansu", "kafka"), default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (spreads are over these)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (- for stdout)")
    e2e_ = parser.add_argument_group("e2e")
    e2e_.add_argument("--rate", type=float, default=1000, help="events/s offered")
    e2e_.add_argument("--seconds", type=float, default=15, help="length of each run")
    e2e_.add_argument("--recipients", type=int, default=20, help="SSE streams, one recipient each")
    e2e_.add_argument(
        "--per-post",
        type=int,
        default=10,
        help="events per POST (the batch route above 1): one producer API process answers about 600 single POSTs/s "
        "on the 2-core machine, so 1,000 events/s go as 100 POSTs of 10",
    )
    w = parser.add_argument_group("writes")
    w.add_argument("--write-batches", type=_csv(int), default=[1, 10, 100, 500], help="deliveries per transaction")
    w.add_argument("--write-txns", type=int, default=200, help="transactions per batch size and run")
    w.add_argument(
        "--write-max-events", type=int, default=20_000, help="at most this many events per batch size and run"
    )
    p = parser.add_argument_group("pull")
    p.add_argument("--pull-messages", type=int, default=200_000, help="messages stored (full size: 1000000)")
    p.add_argument("--pull-requests", type=int, default=500, help="requests per case and run")
    s = parser.add_argument_group("streams")
    s.add_argument("--streams", type=int, default=2000, help="concurrent SSE streams (full size: 10000)")
    s.add_argument("--stream-rate", type=float, default=100, help="events/s to random recipients")
    s.add_argument("--stream-seconds", type=float, default=15)
    return parser.parse_args()


@contextlib.contextmanager
def bench_environment(args: argparse.Namespace, workdir: Path) -> Iterator[Bench]:
    with contextlib.ExitStack() as stack:
        needs_pg = "postgresql" in args.stores and bool({"e2e", "writes", "pull"} & set(args.only))
        pg = stack.enter_context(postgres()) if needs_pg else None
        needs_broker = bool({"e2e", "pull", "streams"} & set(args.only))
        topics = [f"e2e-{k}" for k in STORES] + ["streams"]
        services = stack.enter_context(local_stack(args.broker, workdir, topics)) if needs_broker else None
        yield Bench(args, workdir, services, pg)


def main() -> int:
    args = parse_args()
    stop_on_sigterm()
    print(f"delivery benchmarks: {', '.join(args.only)} on {', '.join(args.stores)}; {load_note()}", flush=True)
    results: dict[str, Any] = {"load": load_note()}
    parts = {"e2e": (e2e, report_e2e), "writes": (writes, report_writes), "pull": (pull, report_pull)}
    parts["streams"] = (streams, report_streams)
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp, bench_environment(args, Path(tmp)) as bench:
        if bench.stack is not None:
            results["broker"] = bench.stack.broker
        for name in args.only:
            print(f"\n== {name}", flush=True)
            run, _ = parts[name]
            results[name] = run(bench)
    for name in args.only:
        parts[name][1](results[name])
    results["load_after"] = load_note()
    print(f"\n{results['load_after']}")
    if args.json:
        dump_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
