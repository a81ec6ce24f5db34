"""Chaos for delivery: delivery nodes (`hubstream deliver`) are kill -9'd and restarted while 20k events for 200
recipients stream in and every recipient's SSE client stays connected, reconnecting with its cursor to any live
node. Proof, read after the run: each mailbox holds each of its events exactly once, every conversation in order,
and every client saw each of its events exactly once, with strictly increasing cursors.

Two variants: two nodes over PostgreSQL (streams move between nodes), and one node over SQLite (clients wait for it
to come back). Run with `make test-chaos`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sqlite3
import threading
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from hubstream.settings import Settings
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.chaos import Feed, Plan, run_chaos
from tests.fixtures.delivery import auth, delivery_settings
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, make_settings, register_contracts, write_catalog
from tests.fixtures.workers import WorkerPool

pytestmark = pytest.mark.chaos

RECIPIENTS = 200
EVENTS = 20_000
PARTITIONS = 3
CONSUMER = {"commit_interval_ms": 3000}  # commits lag behind mailbox writes: kills cause redeliveries


def events() -> list[dict[str, Any]]:
    """EVENTS chat events, RECIPIENTS recipients with two conversations each, sequences counting up per chat."""
    made, sequence = [], defaultdict(int)
    for i in range(EVENTS):
        recipient = f"u{i % RECIPIENTS:03d}"
        conversation = f"{recipient}-c{(i // RECIPIENTS) % 2}"
        made.append(chat_event(conversation, sequence[conversation], userId=recipient))
        sequence[conversation] += 1
    return made


@dataclass
class Seen:
    cursors: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    reconnects: int = 0


class Clients(threading.Thread):
    """One SSE client per recipient, all on one event loop; each reconnects with Last-Event-ID to a random live
    node whenever its stream ends or fails."""

    def __init__(self, pool: WorkerPool, expected: dict[str, int]) -> None:
        super().__init__(name="sse-clients", daemon=True)
        self.pool, self.expected = pool, expected
        self.seen = {recipient: Seen() for recipient in expected}
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._all())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def complete(self) -> bool:
        return all(len(self.seen[r].event_ids) >= n for r, n in self.expected.items())

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=RECIPIENTS + 10)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30), limits=limits) as client:
            await asyncio.gather(*(self._follow(client, r) for r in self.expected))

    async def _follow(self, client: httpx.AsyncClient, recipient: str) -> None:
        seen = self.seen[recipient]
        while not self.stop.is_set() and len(seen.event_ids) < self.expected[recipient]:
            live = [w.ops_url for w in self.pool.workers if w.alive()]
            headers = auth(recipient, ttl_s=3600)
            if seen.cursors:
                headers["Last-Event-ID"] = seen.cursors[-1]
            try:
                async with client.stream(
                    "GET", f"{random.choice(live)}/v1/mailboxes/{recipient}/stream", headers=headers
                ) as response:
                    if response.status_code == 200:
                        await self._read(response, seen)
            except (httpx.HTTPError, IndexError):
                pass
            seen.reconnects += 1
            await asyncio.sleep(0.2)

    async def _read(self, response: httpx.Response, seen: Seen) -> None:
        cursor = None
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                cursor = line[3:].strip()
            elif line.startswith("data:") and cursor is not None:
                seen.cursors.append(cursor)
                seen.event_ids.append(_event_id(line))
                cursor = None


def _event_id(line: str) -> str:
    return str(json.loads(line[5:])["eventId"])


def stored(store: str) -> dict[str, list[tuple[int, str, str, int]]]:
    """Every mailbox, read from the database itself: recipient -> [(seq, eventId, conversation, sequence)]."""
    if store.startswith("sqlite:"):
        with closing(sqlite3.connect(store.removeprefix("sqlite:"))) as db:
            rows = db.execute("SELECT recipient, seq, event_id, conversation, event_json FROM messages").fetchall()
    else:
        with psycopg.connect(store) as db:
            rows = db.execute(
                "SELECT recipient, seq, event_id, conversation, event_json FROM mailbox_messages"
            ).fetchall()
    mailboxes: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
    for recipient, seq, event_id, conversation, event_json in sorted(rows):
        mailboxes[recipient].append((seq, event_id, conversation, json.loads(event_json)["sequence"]))
    return mailboxes


def check(store: str, clients: Clients, produced: list[dict[str, Any]]) -> None:
    by_recipient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in produced:
        by_recipient[event["userId"]].append(event)
    mailboxes = stored(store)
    assert set(mailboxes) == set(by_recipient)
    for recipient, sent in by_recipient.items():
        rows = mailboxes[recipient]
        ids = [event_id for _, event_id, _, _ in rows]
        assert len(ids) == len(set(ids)) == len(sent), f"{recipient}: {len(ids)} stored, {len(set(ids))} distinct"
        assert set(ids) == {e["eventId"] for e in sent}
        assert [seq for seq, _, _, _ in rows] == list(range(1, len(rows) + 1)), f"{recipient}: cursors with holes"
        for conversation in {e["conversationId"] for e in sent}:
            kept = [n for _, _, conv, n in rows if conv == conversation]
            assert kept == list(range(len(kept))), f"{conversation} out of order in the mailbox"
        seen = clients.seen[recipient]
        assert sorted(seen.event_ids) == sorted(ids), f"{recipient}'s client missed or repeated events"
        seqs = [int(c.split("-")[1]) for c in seen.cursors]
        assert all(b > a for a, b in itertools.pairwise(seqs)), f"{recipient}: cursors not increasing"


def chaos(settings: Settings, topic: str, tmp_path: Path, plan: Plan) -> str:
    pool = WorkerPool(settings, tmp_path)
    produced = events()
    expected: dict[str, int] = defaultdict(int)
    for event in produced:
        expected[event["userId"]] += 1
    clients = Clients(pool, dict(expected))
    clients.start()  # connected throughout: they wait for the first node, and follow kills to the next one
    feed = Feed(settings, topic, produced)
    args = ["--group", unique("chaos-delivery"), "--topic", topic]
    try:
        run = run_chaos(
            pool,
            args,
            feed,
            clients.complete,
            lambda: f"{sum(len(s.event_ids) for s in clients.seen.values())} of {EVENTS} seen by clients",
            plan,
        )
    finally:
        clients.stop.set()
        clients.join(30)
    if clients.error is not None:
        raise clients.error
    check(settings.delivery.store, clients, produced)
    reconnects = sum(s.reconnects for s in clients.seen.values())
    return f"{run.summary()}; {reconnects} client reconnects"


@pytest.fixture
def chaos_settings(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> tuple[Settings, str]:
    topic = kafka_broker.create_topic("chaos-delivery", partitions=PARTITIONS)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), consumer=CONSUMER)
    register_contracts(settings)
    return settings, topic


def test_two_nodes_on_postgres_deliver_everything_exactly_once_while_killed(
    chaos_settings: tuple[Settings, str], postgres_server: Any, tmp_path: Path
) -> None:
    settings, topic = chaos_settings
    settings = delivery_settings(settings, postgres_server.new_database())
    summary = chaos(settings, topic, tmp_path, Plan(workers=2, kills=6, command="deliver"))
    print(f"\ndelivery chaos (PostgreSQL, 2 nodes): {summary}")


def test_one_node_on_sqlite_delivers_everything_exactly_once_while_killed(
    chaos_settings: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, topic = chaos_settings
    settings = delivery_settings(settings, f"sqlite:{tmp_path / 'mailboxes.db'}")
    summary = chaos(settings, topic, tmp_path, Plan(workers=1, kills=4, kill_gap_s=(4.0, 7.0), command="deliver"))
    print(f"\ndelivery chaos (SQLite, 1 node): {summary}")
