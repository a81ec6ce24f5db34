"""Delivery to end clients over the real broker, registry emulator and stores: mailboxes, pull, ack, SSE."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from schemas.contracts import Contract
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.delivery import SseClient, auth, delivery_settings, running_node, token
from tests.fixtures.events import chat_event
from tests.fixtures.services import (
    CHAT,
    MINUTES,
    make_settings,
    produce_events,
    producer_api,
    register_contracts,
    write_catalog,
)
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerPool


@pytest.fixture
def chat_setup(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> tuple[Any, str]:
    topic = kafka_broker.create_topic("chat", partitions=3)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    register_contracts(settings)
    return delivery_settings(settings, f"sqlite:{tmp_path / 'mailboxes.db'}"), topic


def publish(url: str, topic: str, events: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{url}/v1/topics/{topic}/events:batch", json={"events": events}, timeout=30)
    assert response.status_code == 200, response.text
    assert all(item["ok"] for item in response.json()["results"]), response.text


def pull_all(
    node_url: str, recipient: str, after: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    messages: list[dict[str, Any]] = []
    while True:
        params = {"limit": limit, **({"after": after} if after else {})}
        page = httpx.get(
            f"{node_url}/v1/mailboxes/{recipient}/messages", params=params, headers=auth(recipient), timeout=10
        ).json()
        if not page["messages"]:
            return messages, after
        messages += page["messages"]
        after = page["next"]


def test_twenty_chunks_arrive_in_order_and_a_resumed_stream_gets_the_rest_exactly_once(
    chat_setup: tuple[Any, str],
) -> None:
    settings, topic = chat_setup
    chunks = [chat_event("conv-a", i, userId="u1") for i in range(20)]
    with producer_api(settings) as api, running_node(settings, [topic], group=unique("delivery")) as node:
        publish(api, topic, chunks)
        stream = SseClient(f"{node.url}/v1/mailboxes/u1/stream", headers=auth("u1"))
        first = stream.read(7)
        assert [e.json()["event"]["sequence"] for e in first] == list(range(7))
        assert stream.last_event_id == first[-1].json()["cursor"]
        rest = stream.read(13)  # reconnects with Last-Event-ID, as a browser does
        assert [e.json()["event"]["sequence"] for e in rest] == list(range(7, 20))
        messages, _ = pull_all(node.url, "u1")
    assert [m["eventId"] for m in messages] == [c["eventId"] for c in chunks]
    cursors = [m["cursor"] for m in messages]
    assert len(set(cursors)) == 20 and [int(c.split("-")[1]) for c in cursors] == sorted(
        int(c.split("-")[1]) for c in cursors
    )
    assert {e.event for e in first + rest} == {CHAT}
    assert [e.json()["eventId"] for e in first + rest] == [c["eventId"] for c in chunks]


def test_an_offline_client_pulls_everything_since_its_cursor_and_acks(chat_setup: tuple[Any, str]) -> None:
    settings, topic = chat_setup
    mine = [chat_event(f"conv-{i % 7}", i, userId="offline-u") for i in range(1000)]
    others = [chat_event(f"other-{i % 5}", i, userId=f"someone-{i % 10}") for i in range(1000)]
    with running_node(settings, [topic], group=unique("delivery")) as node:
        produce_events(settings, topic, [e for pair in zip(mine, others, strict=True) for e in pair])
        wait_for(lambda: _state(node.url, "offline-u")["count"] == 1000, "1000 messages for offline-u")
        state = _state(node.url, "offline-u")
        assert state["acked"] is None and state["last"] == state["first"].split("-")[0] + "-1000"
        messages, last = pull_all(node.url, "offline-u", limit=250)
        ack = httpx.post(f"{node.url}/v1/mailboxes/offline-u/ack", json={"upTo": last}, headers=auth("offline-u"))
        assert ack.status_code == 200, ack.text
        after_ack = _state(node.url, "offline-u")
    assert sorted(m["eventId"] for m in messages) == sorted(e["eventId"] for e in mine)
    for conversation in {e["conversationId"] for e in mine}:  # each chat in the order it was produced
        sent = [e["sequence"] for e in mine if e["conversationId"] == conversation]
        assert [m["event"]["sequence"] for m in messages if m["conversation"] == conversation] == sent
    assert after_ack["acked"] == last and after_ack["count"] == 1000  # acked, and kept for the grace period


def test_minutes_reach_every_participant_and_an_event_without_participants_is_counted(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("minutes", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: MINUTES}))
    settings = delivery_settings(settings, f"sqlite:{tmp_path / 'm.db'}")
    register_contracts(settings)
    v1 = Contract.from_text((Path(__file__).parent / "data" / "MinutesFinalized.v1.avsc").read_text())
    minutes = {
        "meetingId": "m-1",
        "title": "Weekly",
        "minutesId": "min-1",
        "sections": [],
        "participants": ["ann", "bob", "cyd"],
        "eventId": "minutes-event-1",
    }
    old = {"meetingId": "m-0", "title": "Old", "minutesId": "min-0", "sections": []}
    with running_node(settings, [topic], group=unique("delivery")) as node:
        produce_events(settings, topic, [old], contract=v1)  # written by a producer still on v1
        produce_events(settings, topic, [minutes])
        for recipient in ("ann", "bob", "cyd"):
            wait_for(lambda r=recipient: _state(node.url, r)["count"] == 1, f"the minutes in {recipient}'s mailbox")
            messages, _ = pull_all(node.url, recipient)
            assert [m["eventId"] for m in messages] == ["minutes-event-1"]
            assert messages[0]["event"]["participants"] == ["ann", "bob", "cyd"]
        metrics = httpx.get(f"{node.url}/metrics").text
    assert f'hubstream_delivery_unroutable_total{{topic="{topic}"}} 1.0' in metrics
    assert f'hubstream_delivery_mailbox_writes_total{{topic="{topic}"}} 3.0' in metrics


def test_mailbox_routes_need_the_recipients_own_token(chat_setup: tuple[Any, str]) -> None:
    settings, topic = chat_setup
    with running_node(settings, [topic], group=unique("delivery")) as node:
        produce_events(settings, topic, [chat_event("c", 0, userId="u")])
        wait_for(lambda: _state(node.url, "u")["count"] == 1, "u's message")
        routes = ["/v1/mailboxes/u/messages", "/v1/mailboxes/u", "/v1/mailboxes/u/stream"]
        for route in routes:
            missing = httpx.get(node.url + route)
            assert missing.status_code == 401 and "no token" in missing.json()["error"]["message"]
            expired = httpx.get(node.url + route, headers={"Authorization": f"Bearer {token('u', ttl_s=-120)}"})
            assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
            forged = httpx.get(node.url + route, headers={"Authorization": "Bearer " + token("u")[:-4] + "AAAA"})
            assert forged.status_code == 401
            other = httpx.get(node.url + route, headers=auth("v"))
            assert other.status_code == 403 and "'v'" in other.json()["error"]["message"]
        assert httpx.get(f"{node.url}/v1/mailboxes/u", headers=auth("admin", admin=True)).json()["count"] == 1
        via_query = SseClient(f"{node.url}/v1/mailboxes/u/stream?access_token={token('u')}").read(1)
        assert via_query[0].json()["event"]["userId"] == "u"
        with pytest.raises(AssertionError, match="403"):
            SseClient(f"{node.url}/v1/mailboxes/u/stream?access_token={token('v')}").read(1)
        bad_cursor = httpx.get(f"{node.url}/v1/mailboxes/u/messages?after=nonsense", headers=auth("u"))
        assert bad_cursor.status_code == 400 and bad_cursor.json()["error"]["code"] == "InvalidCursor"
        ahead = httpx.post(
            f"{node.url}/v1/mailboxes/u/ack", json={"upTo": _state(node.url, "u")["last"][:-1] + "9"}, headers=auth("u")
        )
        assert ahead.status_code == 409


def _state(url: str, recipient: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/mailboxes/{recipient}", headers=auth(recipient), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return] - httpx types a JSON body as Any


def test_sigterm_tells_streams_to_reconnect_commits_and_leaves_the_group(
    chat_setup: tuple[Any, str], kafka_broker: LocalKafka, tmp_path: Path
) -> None:
    settings, topic = chat_setup
    group = unique("delivery")
    pool = WorkerPool(settings, tmp_path)
    try:
        node = pool.start("node", "--group", group, "--topic", topic, command="deliver")
        pool.wait_ready([node])
        produce_events(settings, topic, [chat_event("c", i, userId="u") for i in range(5)])
        stream = SseClient(f"{node.ops_url}/v1/mailboxes/u/stream", headers=auth("u"))
        with stream.connect() as events:
            got = [next(e for e in events if e.data) for _ in range(5)]
            node.process.send_signal(signal.SIGTERM)
            rest = list(events)  # the server ends the stream
        assert node.process.wait(60) == 0, node.log()[-3000:]
    finally:
        pool.stop_all()
    assert [e.json()["event"]["sequence"] for e in got] == list(range(5))
    assert rest and rest[-1].retry is not None and 1000 <= rest[-1].retry <= 5000  # reconnect, with jitter
    assert any("reconnect: shutdown" in comment for comment in stream.comments)
    committed = kafka_broker.committed(group, topic, 3)
    assert sum(offset for offset in committed.values() if offset > 0) == 5, committed


def test_a_stream_from_a_cursor_older_than_the_kept_window_starts_with_a_gap_event(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("chat", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    settings = delivery_settings(settings, f"sqlite:{tmp_path / 'm.db'}", max_messages=10)
    register_contracts(settings)
    with running_node(settings, [topic], group=unique("delivery")) as node:
        produce_events(settings, topic, [chat_event("c", i, userId="g") for i in range(3)])
        wait_for(lambda: _state(node.url, "g")["count"] == 3, "3 messages")
        early, _ = pull_all(node.url, "g")
        produce_events(settings, topic, [chat_event("c", i, userId="g") for i in range(3, 25)])
        wait_for(lambda: _state(node.url, "g")["last"].endswith("-25"), "25 messages")
        stream = SseClient(f"{node.url}/v1/mailboxes/g/stream?after={early[0]['cursor']}", headers=auth("g"))
        frames = stream.read(11)
        page = httpx.get(
            f"{node.url}/v1/mailboxes/g/messages", params={"after": early[0]["cursor"]}, headers=auth("g")
        ).json()
    assert frames[0].event == "gap" and frames[0].json()["after"] == early[0]["cursor"]
    assert [f.json()["event"]["sequence"] for f in frames[1:]] == list(range(15, 25))  # the 10 kept
    assert page["gap"] is True and page["messages"][0]["event"]["sequence"] == 15


def test_a_client_that_stops_reading_is_cut_off_without_holding_up_a_hundred_others(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("chat", partitions=3)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    settings = delivery_settings(settings, f"sqlite:{tmp_path / 'm.db'}", send_timeout_s=1.0)
    register_contracts(settings)
    big = "x" * 16_000
    with running_node(settings, [topic], group=unique("delivery")) as node:
        host, port = node.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(
            f"GET /v1/mailboxes/slow/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
            f"{token('slow')}\r\n\r\n".encode()
        )
        produce_events(settings, topic, [chat_event(f"s{i % 3}", i, userId="slow", content=big) for i in range(300)])
        wait_for(lambda: _state(node.url, "slow")["count"] == 300, "the slow client's 300 messages")
        latencies = asyncio.run(_hundred_streams(node.url, settings, topic))
        wait_for(
            lambda: (
                'hubstream_delivery_stream_ends_total{kind="sse",reason="send-timeout"} 1.0'
                in httpx.get(f"{node.url}/metrics").text
            ),
            "the stuck stream to be cut off",
        )
        slow.close()
    assert len(latencies) == 100 * 3
    latencies.sort()
    print(
        f"100 streams beside a stuck one: p50 {latencies[len(latencies) // 2]:.3f} s, p99 "
        f"{latencies[int(len(latencies) * 0.99) - 1]:.3f} s"
    )
    assert latencies[int(len(latencies) * 0.99) - 1] < 3.0, latencies[-10:]


async def _hundred_streams(url: str, settings: Any, topic: str) -> list[float]:
    """100 streams, 3 events each: seconds from publish to receipt for each event."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(30)) as client:

        async def follow(recipient: str) -> None:
            async with client.stream("GET", f"{url}/v1/mailboxes/{recipient}/stream", headers=auth(recipient)) as r:
                got = 0
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        latencies.append(time.monotonic() - sent[json.loads(line[5:])["eventId"]])
                        got += 1
                        if got == 3:
                            return

        tasks = [asyncio.create_task(follow(f"r{i}")) for i in range(100)]
        await asyncio.sleep(1.0)  # let the streams connect (they replay from the start anyway)
        for round_ in range(3):
            events = [chat_event(f"r{i}", round_, userId=f"r{i}") for i in range(100)]
            now = time.monotonic()
            sent.update({e["eventId"]: now for e in events})
            await asyncio.to_thread(produce_events, settings, topic, events)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return latencies


def test_websocket_streams_the_same_frames_and_takes_ack_and_resume(chat_setup: tuple[Any, str]) -> None:
    settings, topic = chat_setup
    with running_node(settings, [topic], group=unique("delivery")) as node:
        produce_events(settings, topic, [chat_event("c", i, userId="w") for i in range(4)])
        mailbox = node.url.replace("http://", "ws://") + "/v1/mailboxes/w/ws?access_token="
        url = mailbox + token("w")
        with connect(url, open_timeout=10) as ws:
            frames = [json.loads(ws.recv(timeout=20)) for _ in range(4)]
            assert [f["data"]["event"]["sequence"] for f in frames] == [0, 1, 2, 3]
            assert all(f["event"] == CHAT and f["id"] == f["data"]["cursor"] for f in frames)
            ws.send(json.dumps({"ack": frames[1]["id"]}))
            acked = json.loads(ws.recv(timeout=10))
            assert acked == {"event": "acked", "data": {**acked["data"], "acked": frames[1]["id"]}}
            ws.send(json.dumps({"resume": frames[0]["id"]}))
            again = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
            assert [f["data"]["event"]["sequence"] for f in again] == [1, 2, 3]
            ws.send("not json")
            assert json.loads(ws.recv(timeout=10))["event"] == "error"
        with pytest.raises(InvalidStatus) as refused, connect(mailbox + token("x"), open_timeout=10):
            pass
        assert refused.value.response.status_code == 403


def test_a_stream_on_an_api_only_node_wakes_when_another_node_writes(
    kafka_broker: LocalKafka, registry_emulator: Any, postgres_server: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("chat", partitions=2)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    settings = delivery_settings(settings, postgres_server.new_database())
    register_contracts(settings)
    group = unique("delivery")
    with (
        running_node(settings, [topic], group=group) as writer,
        running_node(settings, [], group=group, consume=False) as reader,
    ):
        stream = SseClient(f"{reader.url}/v1/mailboxes/x/stream", headers=auth("x"))
        with stream.connect() as events:
            started = time.monotonic()
            produce_events(settings, topic, [chat_event("c", 0, userId="x")])
            first = next(e for e in events if e.data)
            woken_s = time.monotonic() - started
            _terminate_listeners(postgres_server, settings.delivery.store)  # the reader's LISTEN connection dies
            produce_events(settings, topic, [chat_event("c", 1, userId="x")])
            second = next(e for e in events if e.data)
        health = httpx.get(f"{reader.url}/healthz").json()
    assert first.json()["event"]["sequence"] == 0 and second.json()["event"]["sequence"] == 1
    assert woken_s < 5, f"the API-only node took {woken_s:.1f} s to send a message another node wrote"
    assert health["consuming"] is False and health["healthy"] is True
    assert writer.url != reader.url


def _terminate_listeners(postgres_server: Any, url: str) -> None:
    import psycopg

    database = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
            [database],
        ).fetchall()
    assert killed, "no LISTEN connection found"
