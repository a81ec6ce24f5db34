"""Delivery to end clients over the real broker, registry emulator and stores: mailboxes, pull, ack, SSE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.delivery import SseClient, auth, delivery_settings, running_node, token
from tests.fixtures.services import CHAT, make_settings, producer_api, register_contracts, write_catalog
from tests.test_end_to_end import chat_event


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


def pull_all(node_url: str, recipient: str, after: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    messages: list[dict[str, Any]] = []
    while True:
        params = {"limit": limit, **({"after": after} if after else {})}
        page = httpx.get(f"{node_url}/v1/mailboxes/{recipient}/messages", params=params, headers=auth(recipient),
                         timeout=10).json()
        if not page["messages"]:
            return messages, after
        messages += page["messages"]
        after = page["next"]


def test_twenty_chunks_arrive_in_order_and_a_resumed_stream_gets_the_rest_exactly_once(chat_setup: tuple[Any, str]) -> None:
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
    assert len(set(cursors)) == 20 and [int(c.split("-")[1]) for c in cursors] == sorted(int(c.split("-")[1]) for c in cursors)
    assert {e.event for e in first + rest} == {CHAT}
    assert [e.json()["eventId"] for e in first + rest] == [c["eventId"] for c in chunks]
