"""Signed webhooks from the mailbox, against real HTTP receivers on loopback, the real broker and both stores."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from delivery.webhooks.signing import WebhookVerificationError, verify
from hubstream.settings import Settings
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.delivery import auth, delivery_settings, running_node
from tests.fixtures.events import chat_event
from tests.fixtures.receiver import Received, receiver
from tests.fixtures.services import CHAT, make_settings, produce_events, register_contracts, write_catalog
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerPool

ADMIN = auth("ops", admin=True)
FAST = {"retry_schedule_s": [0, 0.3, 0.3, 0.5], "poll_interval_s": 0.1, "timeout_s": 1.0}


@pytest.fixture(params=["sqlite", "postgres"])
def hook_setup(
    request: pytest.FixtureRequest, kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> tuple[Settings, str]:
    topic = kafka_broker.create_topic("hooks", partitions=3)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), webhooks=FAST)
    store = (
        f"sqlite:{tmp_path / 'm.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_server").new_database()
    )
    register_contracts(settings)
    return delivery_settings(settings, store), topic


def add_endpoint(node_url: str, url: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{node_url}/v1/webhooks", json={"url": url, "recipients": "*", **body}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return] - httpx types a JSON body as Any


def attempts(node_url: str, endpoint_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{node_url}/v1/webhooks/{endpoint_id}/attempts", headers=ADMIN)
    return response.json()  # type: ignore[no-any-return] - httpx types a JSON body as Any


def test_a_failing_receiver_gets_the_message_again_with_the_same_id_and_valid_signatures(
    hook_setup: tuple[Settings, str],
) -> None:
    settings, topic = hook_setup
    answers = iter([500, 500, 200])
    with (
        receiver(lambda r: (next(answers, 200), {})) as hooks,
        running_node(settings, [topic], group=unique("delivery")) as node,
    ):
        endpoint = add_endpoint(node.url, hooks.url)
        event = chat_event("c", 0, userId="u1")
        produce_events(settings, topic, [event])
        wait_for(lambda: len(hooks.received()) == 3, "three attempts")
        wait_for(lambda: len(attempts(node.url, endpoint["id"])) == 3, "three attempts logged")
        log = attempts(node.url, endpoint["id"])
    got = hooks.received()
    assert {r.headers["webhook-id"] for r in got} == {event["eventId"]}
    stamps = [int(r.headers["webhook-timestamp"]) for r in got]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60
    for r in got:  # the reference library agrees with our signatures
        assert Webhook(endpoint["secret"]).verify(r.body, r.headers)["eventId"] == event["eventId"]
        verify(r.headers, r.body, endpoint["secret"])
    assert got[0].json()["event"]["userId"] == "u1" and got[0].json()["cursor"]
    assert sorted(a["status"] for a in log) == [200, 500, 500]


def test_410_disables_retry_after_is_honoured_and_a_hanging_receiver_times_out(
    hook_setup: tuple[Settings, str],
) -> None:
    settings, topic = hook_setup
    hang = threading.Event()

    def gone(_: Received) -> tuple[int, dict[str, str]]:
        return 410, {}

    throttled_answers = iter([(429, {"retry-after": "2"}), (200, {})])

    def hanging(_: Received) -> tuple[int, dict[str, str]]:
        hang.wait(5)
        return 200, {}

    with (
        receiver(gone) as gone_hooks,
        receiver(lambda r: next(throttled_answers, (200, {}))) as slow_hooks,
        receiver(hanging) as hung_hooks,
        running_node(settings, [topic], group=unique("delivery")) as node,
    ):
        gone_ep = add_endpoint(node.url, gone_hooks.url)
        throttled = add_endpoint(node.url, slow_hooks.url)
        hung = add_endpoint(node.url, hung_hooks.url)
        produce_events(settings, topic, [chat_event("c", 0, userId="u1")])
        wait_for(
            lambda: httpx.get(f"{node.url}/v1/webhooks/{gone_ep['id']}", headers=ADMIN).json()["status"] == "disabled",
            "the 410 endpoint disabled",
        )
        wait_for(lambda: len(slow_hooks.received()) == 2, "the retry after Retry-After")
        wait_for(
            lambda: any(a["error"] and "no answer" in a["error"] for a in attempts(node.url, hung["id"])),
            "the hanging receiver timed out",
        )
        hang.set()
        shown = httpx.get(f"{node.url}/v1/webhooks/{gone_ep['id']}", headers=ADMIN).json()
    first, second = slow_hooks.received()
    assert second.at - first.at >= 1.9  # the schedule said 0.3 s; Retry-After said 2
    assert shown["disabledReason"] == "gone" and len(gone_hooks.received()) == 1
    assert throttled["id"] != hung["id"]


def test_an_ordered_endpoint_keeps_each_recipients_order_and_one_failing_recipient_holds_up_no_one(
    hook_setup: tuple[Settings, str],
) -> None:
    settings, topic = hook_setup
    settings = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"retry_schedule_s": [0, 0.3, 0.5, 1] + [2] * 40})}
    )
    # r00 fails until the other 49 recipients have all their messages (at most 60 s): if r00 held them up, they
    # would never finish, r00 would recover at 60 s, and the assertion on others_done below says so
    others_ok: set[str] = set()
    failing: dict[str, float] = {}

    def respond(r: Received) -> tuple[int, dict[str, str]]:
        if r.json()["event"]["userId"] != "r00":
            others_ok.add(r.headers["webhook-id"])
            return 200, {}
        first = failing.setdefault("first", time.time())
        if "until" not in failing:
            if len(others_ok) < 49 * 40 and time.time() < first + 60:
                return 503, {}
            failing["until"], failing["first_ok_at"] = time.time(), r.at
        return 200, {}

    events = [chat_event(f"r{i % 50:02d}-c", i // 50, userId=f"r{i % 50:02d}") for i in range(50 * 40)]
    with receiver(respond) as hooks, running_node(settings, [topic], group=unique("delivery")) as node:
        add_endpoint(node.url, hooks.url, ordered=True)
        produce_events(settings, topic, events)
        wait_for(
            lambda: len({r.headers["webhook-id"] for r in hooks.received()}) == len(events),
            "every message",
            timeout_s=120,
        )
    delivered: dict[str, list[Received]] = {}
    for r in hooks.received():
        recipient = r.json()["event"]["userId"]
        if recipient != "r00" or r.at >= failing["first_ok_at"]:  # r00's failed attempts are not deliveries
            delivered.setdefault(recipient, []).append(r)
    for recipient, got in delivered.items():
        sequences = [r.json()["event"]["sequence"] for r in got]
        assert sequences == list(range(40)), f"{recipient} out of order: {sequences[:10]}"
    others_done = max(r.at for recipient, got in delivered.items() if recipient != "r00" for r in got)
    assert others_done < failing["until"], (
        f"the other recipients finished {others_done - failing['until']:.1f} s after the failing one recovered"
    )
    assert failing["until"] < failing["first"] + 60, "r00 recovered by the 60 s cap, not because the others finished"


def test_secret_rotation_signs_with_both_during_the_overlap_then_only_the_new(hook_setup: tuple[Settings, str]) -> None:
    settings, topic = hook_setup
    with receiver() as hooks, running_node(settings, [topic], group=unique("delivery")) as node:
        endpoint = add_endpoint(node.url, hooks.url)
        rotated = httpx.post(
            f"{node.url}/v1/webhooks/{endpoint['id']}/rotate-secret", json={"overlap_s": 2}, headers=ADMIN
        ).json()
        produce_events(settings, topic, [chat_event("c", 0, userId="u")])
        wait_for(lambda: len(hooks.received()) == 1, "the message during the overlap")
        time.sleep(2.1)  # the overlap ends (a wall-clock property: this is what is tested)
        produce_events(settings, topic, [chat_event("c", 1, userId="u")])
        wait_for(lambda: len(hooks.received()) == 2, "the message after the overlap")
    during, after = hooks.received()
    for secret in (endpoint["secret"], rotated["secret"]):
        verify(during.headers, during.body, secret)
    assert len(during.headers["webhook-signature"].split()) == 2
    verify(after.headers, after.body, rotated["secret"])
    with pytest.raises(WebhookVerificationError):
        verify(after.headers, after.body, endpoint["secret"])


def test_recover_resends_exactly_what_failed_in_the_window(hook_setup: tuple[Settings, str]) -> None:
    settings, topic = hook_setup
    failing = threading.Event()
    failing.set()
    with (
        receiver(lambda r: (500, {}) if failing.is_set() else (200, {})) as hooks,
        running_node(settings, [topic], group=unique("delivery")) as node,
    ):
        endpoint = add_endpoint(node.url, hooks.url)
        early = [chat_event("c", i, userId="u") for i in range(3)]
        produce_events(settings, topic, early)
        wait_for(lambda: len(hooks.received()) == 3 * 4, "the schedule used up for the first three")
        since = datetime.now(UTC)
        late = [chat_event("c", i, userId="u") for i in range(3, 5)]
        produce_events(settings, topic, late)
        wait_for(lambda: len(hooks.received()) == 5 * 4, "the schedule used up for the last two")
        failing.clear()
        before = len(hooks.received())
        recovered = httpx.post(
            f"{node.url}/v1/webhooks/{endpoint['id']}/recover", json={"since": since.isoformat()}, headers=ADMIN
        ).json()
        wait_for(lambda: len(hooks.received()) == before + 2, "the recovered two")
        time.sleep(1.0)  # nothing else comes (a negative: a bounded look)
    assert recovered["recovered"] == 2
    resent = {r.headers["webhook-id"] for r in hooks.received()[before:]}
    assert resent == {e["eventId"] for e in late}


def test_endpoint_urls_are_checked_and_the_api_needs_an_admin_token(hook_setup: tuple[Settings, str]) -> None:
    settings, topic = hook_setup
    with running_node(settings, [topic], group=unique("delivery")) as node:
        for url in ("http://10.0.0.5/hook", "https://169.254.169.254/latest", "ftp://example.com/x"):
            refused = httpx.post(f"{node.url}/v1/webhooks", json={"url": url, "recipients": "*"}, headers=ADMIN)
            assert refused.status_code == 422, (url, refused.text)
        assert httpx.get(f"{node.url}/v1/webhooks").status_code == 401
        assert httpx.get(f"{node.url}/v1/webhooks", headers=auth("u")).status_code == 403
        assert httpx.get(f"{node.url}/v1/webhooks/ep_nope", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("nodes", [1, 2], ids=["restarted", "other-node"])
def test_kill_9_mid_retry_loses_nothing_and_keeps_the_order(
    hook_setup: tuple[Settings, str], nodes: int, tmp_path: Path
) -> None:
    settings, topic = hook_setup
    if nodes == 2 and settings.delivery.store.startswith("sqlite:"):
        pytest.skip("one SQLite file serves one node; the other-node case is PostgreSQL's")
    schedule = [0, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8]
    settings = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"retry_schedule_s": schedule})}
    )
    # the endpoint fails until the second node is up, however long that takes on a loaded machine
    failing_until = math.inf
    events = [chat_event(f"k{i % 100:02d}-c", i // 100, userId=f"k{i % 100:02d}") for i in range(2000)]
    pool = WorkerPool(settings, tmp_path)
    with receiver(lambda r: (503, {}) if r.at < failing_until else (200, {})) as hooks:
        try:
            first = pool.start("node-a", "--group", unique("delivery"), "--topic", topic, command="deliver")
            pool.wait_ready([first])
            add_endpoint(first.ops_url, hooks.url, ordered=True)
            produce_events(settings, topic, events)
            wait_for(lambda: len({r.headers["webhook-id"] for r in hooks.received()}) >= 100, "first attempts")
            first.kill()  # mid-retry: every recipient's oldest delivery is leased or waiting on its schedule
            killed_at = time.time()
            survivor = pool.start("node-b", "--group", unique("delivery"), "--topic", topic, command="deliver")
            pool.wait_ready([survivor])
            failing_until = time.time()
            wait_for(
                lambda: len(_successes(hooks.received(), failing_until)) == len(events), "every message", timeout_s=180
            )
        finally:
            pool.stop_all()
    assert killed_at < failing_until
    firsts = _successes(hooks.received(), failing_until)
    for recipient in {e["userId"] for e in events}:
        sequences = [r.json()["event"]["sequence"] for r in firsts.values() if r.json()["event"]["userId"] == recipient]
        assert sequences == list(range(20)), f"{recipient}: {sequences}"


def _successes(received: list[Received], failing_until: float) -> dict[str, Received]:
    """The first successful request of each message, in arrival order."""
    firsts: dict[str, Received] = {}
    for r in sorted(received, key=lambda r: r.at):
        if r.at >= failing_until:
            firsts.setdefault(r.headers["webhook-id"], r)
    return firsts
