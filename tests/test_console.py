"""The operators' web console in a real browser (Debian's chromium, driven by Playwright) on a live local stack:
ownership that changes when a second member joins, dead-letter counts, and an event arriving in the live stream.

HUBSTREAM_UPDATE_SCREENSHOTS=1 also writes the screenshots to docs/ (the README shows docs/console.png).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from delivery.console import ConsoleData
from devstack.topics import ensure_topics
from hubstream.errors import BrokerUnavailableError
from hubstream.settings import Settings
from tests.fixtures.broker import LocalKafka, session_broker_kind, unique
from tests.fixtures.delivery import auth, delivery_settings, running_node, token
from tests.fixtures.events import chat_event
from tests.fixtures.services import (
    CHAT,
    make_settings,
    produce_events,
    register_contracts,
    running_worker,
    write_catalog,
)

CHROMIUM = Path(os.environ.get("HUBSTREAM_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's; never Playwright's
DOCS = Path(__file__).resolve().parents[1] / "docs"
WAIT_MS = 30_000

try:
    from playwright import sync_api
except ImportError:  # a dev dependency (make install); without it only the browser test skips
    sync_api = None


@pytest.fixture
def browser() -> Iterator[Any]:
    assert sync_api is not None
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


# checked before any server starts
@pytest.mark.skipif(sync_api is None, reason="playwright is not installed: make install (a dev dependency)")
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no browser at {CHROMIUM}: apt-get install chromium (make test does, as root) or HUBSTREAM_TEST_CHROMIUM",
)
def test_the_console_shows_ownership_moving_dead_letters_and_a_live_stream(
    kafka_broker: LocalKafka, registry_emulator: Any, browser: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("console", partitions=2)
    ensure_topics(kafka_broker.admin, {f"{topic}.dlq": 1})
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    settings = delivery_settings(settings, f"sqlite:{tmp_path / 'mailboxes.db'}")
    register_contracts(settings)
    group = unique("delivery")
    expect = sync_api.expect
    with running_node(settings, [topic], group=group) as node:
        _data_routes_need_an_admin_token(node.url)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{node.url}/console")
        for wrong, said in (("not-a-token", "not valid"), (token("u1"), "admin scope")):
            page.fill("#token", wrong)
            page.click("#login button[type=submit]")
            expect(page.locator("#login-error")).to_contain_text(said, timeout=WAIT_MS)
        page.fill("#token", token("ops", admin=True))
        page.click("#login button[type=submit]")
        expect(page.locator(f'#partitions tbody tr[data-topic="{topic}"]')).to_have_count(2, timeout=WAIT_MS)

        # a record the node cannot decode is dead-lettered, and counted on the page
        _produce_garbage(settings.kafka.bootstrap_servers or "", topic)
        expect(page.locator(f'#dead-letters tbody tr[data-dlq="{topic}.dlq"]')).to_have_attribute(
            "data-records", "1", timeout=WAIT_MS
        )
        expect(page.locator(f'#dead-letters tbody tr[data-dlq="{topic}.dlq"] td').last).to_have_text("1")

        # an event published to the topic appears in the live view of its recipient's stream
        page.fill("#recipient", "ops-user")
        page.click("#stream-form button[type=submit]")
        expect(page.locator("#stream-state")).to_have_text("following ops-user", timeout=WAIT_MS)
        event = chat_event("conv-ops", 0, userId="ops-user", content="hello from the console test")
        produce_events(settings, topic, [event])
        expect(page.locator(f'#stream-messages li[data-event-id="{event["eventId"]}"]')).to_be_visible(timeout=WAIT_MS)
        # the group is listed once it has committed (at once on Kafka, whose ListGroups names it)
        expect(page.locator(f'#group-list tbody tr[data-group="{group}"]')).to_have_count(1, timeout=WAIT_MS)
        _screenshot(page, tmp_path, "console-stream.png")

        # one member owns both partitions (Tansu's DescribeGroups names no members: that is checked on Kafka)
        if session_broker_kind()[0] == "tansu":
            pytest.skip("Tansu's DescribeGroups returns no members; ownership is checked on Apache Kafka")
        members = page.locator("#members tbody tr")
        expect(members).to_have_count(1, timeout=WAIT_MS)
        expect(members.first).to_have_attribute("data-partitions", "0,1", timeout=WAIT_MS)
        expect(members.first.locator("td").last).to_have_text(f"{topic}[0], {topic}[1]")
        first = members.first.get_attribute("data-member")

        # a second member joins the group: each owns one partition, and the page shows it
        with running_worker(settings, group, [topic], handler=lambda _: None):
            expect(members).to_have_count(2, timeout=WAIT_MS)
            expect(page.locator('#members tbody tr[data-partitions="0"]')).to_have_count(1, timeout=WAIT_MS)
            expect(page.locator('#members tbody tr[data-partitions="1"]')).to_have_count(1, timeout=WAIT_MS)
            expect(page.locator('#members tbody tr[data-partitions="0"] td').last).to_have_text(f"{topic}[0]")
            expect(page.locator('#members tbody tr[data-partitions="1"] td').last).to_have_text(f"{topic}[1]")
            assert first in page.locator("#members tbody tr").evaluate_all("rows => rows.map(r => r.dataset.member)")
            owners = page.locator("#ownership tbody tr").evaluate_all("rows => rows.map(r => r.dataset.owner)")
            assert len(set(owners)) == 2 and "" not in owners, owners
            # the topics view follows too: both records are counted (one per partition or both on one)
            page.wait_for_function(
                f"""() => [...document.querySelectorAll('#partitions tbody tr[data-topic="{topic}"]')]
                    .reduce((sum, row) => sum + Number(row.children[4].textContent), 0) === 2""",
                timeout=WAIT_MS,
            )
            _screenshot(page, tmp_path, "console.png")
        page.close()


def _data_routes_need_an_admin_token(url: str) -> None:
    assert httpx.get(f"{url}/console", timeout=10).status_code == 200  # the page holds no data
    for path in ("/console/api/node", "/console/api/groups", "/console/api/topics", "/console/api/groups/x"):
        missing = httpx.get(f"{url}{path}", timeout=10)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "Unauthorized", missing.text
        recipient = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token('u1')}"}, timeout=10)
        assert recipient.status_code == 403 and recipient.json()["error"]["code"] == "Forbidden", recipient.text
    admin = httpx.get(f"{url}/console/api/groups", headers=auth("ops", admin=True), timeout=20)
    assert admin.status_code == 200 and "groups" in admin.json()


def _produce_garbage(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"not an avro record", key=b"garbage")
    assert producer.flush(30) == 0
    producer.close()


def _screenshot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("HUBSTREAM_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / name, DOCS / name)


@pytest.mark.asyncio
async def test_a_view_is_computed_once_for_concurrent_requests_and_kept_for_its_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = ConsoleData(Settings(_env_file=None), "g", [], ttl_s=0.3)
    calls: list[str] = []
    threads: set[str] = set()

    def described(group: str) -> dict[str, Any]:
        calls.append(group)
        threads.add(threading.current_thread().name)
        time.sleep(0.1)  # a blocking admin call
        return {"group": group, "n": len(calls)}

    monkeypatch.setattr(data, "_group", described)
    answers = await asyncio.gather(*(data.group_view("a") for _ in range(20)))
    assert calls == ["a"] and all(a == {"group": "a", "n": 1} for a in answers)
    assert threading.main_thread().name not in threads  # off the event loop
    assert (await data.group_view("a"))["n"] == 1  # fresh for ttl_s
    await data.group_view("b")
    await asyncio.sleep(0.35)
    assert (await data.group_view("a"))["n"] == 3 and calls == ["a", "b", "a"]


@pytest.mark.asyncio
async def test_a_slow_cluster_is_a_503_and_never_more_than_one_thread_per_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = ConsoleData(Settings(_env_file=None), "g", [], ttl_s=0.0, answer_s=0.1)
    running = threading.Semaphore(0)
    calls: list[str] = []

    def hanging(group: str) -> dict[str, Any]:
        calls.append(group)
        running.acquire(timeout=5)  # until the test lets it go
        return {"group": group}

    monkeypatch.setattr(data, "_group", hanging)
    for _ in range(3):
        with pytest.raises(BrokerUnavailableError, match="did not answer within"):
            await data.group_view("a")
    assert calls == ["a"]  # the requests that timed out waited on the one computation still running
    running.release()
    assert await data.group_view("a") == {"group": "a"}  # that same computation's answer
    assert calls == ["a"]
