"""The producer API's answers to bad input and to an unreachable broker, over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.provisioning import provision
from hubstream.ports import free_port
from tests.fixtures.broker import LocalKafka
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, MINUTES, make_settings, producer_api, write_catalog


@pytest.fixture(scope="module")
def api(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    chat = kafka_broker.create_topic("chat")
    minutes = kafka_broker.create_topic("minutes")
    catalog = write_catalog(tmp_path_factory.mktemp("api"), {chat: CHAT, minutes: MINUTES})
    settings = make_settings(kafka_broker, registry_emulator, catalog)
    provision(settings)
    with producer_api(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.chat_topic, client.minutes_topic = chat, minutes  # type: ignore[attr-defined] - the tests' topics
        yield client


def test_invalid_event_is_422_naming_each_field_path_and_problem(api: Any) -> None:
    event = chat_event(sequence="seven", createdAt="yesterday")
    del event["userId"]
    response = api.post(f"/v1/topics/{api.chat_topic}/events", json=event)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "InvalidEvent"
    problems = {p["path"]: p["problem"] for p in error["problems"]}
    assert set(problems) == {"sequence", "createdAt", "userId"}
    assert "integer" in problems["sequence"] and "string" in problems["sequence"]
    assert "missing" in problems["userId"]
    assert "userId" in error["message"] and CHAT in error["message"]


def test_nested_field_paths_are_named(api: Any) -> None:
    minutes = {
        "meetingId": "m-1",
        "title": "Weekly",
        "minutesId": "min-1",
        "sections": [
            {"sectionId": "s1", "type": "DISCUSSION", "title": "t", "content": "c", "order": 1, "verified": True},
            {"sectionId": "s2", "type": "DECISION", "title": "t", "content": "c", "order": "two"},
        ],
    }
    response = api.post(f"/v1/topics/{api.minutes_topic}/events", json=minutes)
    assert response.status_code == 422
    assert [p["path"] for p in response.json()["error"]["problems"]] == ["sections[1].order"]
    minutes["sections"][1]["order"] = 2
    ok = api.post(f"/v1/topics/{api.minutes_topic}/events", json=minutes)
    assert ok.status_code == 200, ok.text


def test_invalid_event_in_a_batch_names_its_index_and_sends_nothing(api: Any) -> None:
    events = [chat_event(sequence=0), chat_event(sequence=1, content=5)]
    response = api.post(f"/v1/topics/{api.chat_topic}/events:batch", json={"events": events})
    assert response.status_code == 422
    assert [p["path"] for p in response.json()["error"]["problems"]] == ["events[1].content"]


def test_unknown_topic_is_404_naming_known_topics(api: Any) -> None:
    response = api.post("/v1/topics/no-such-topic/events", json=chat_event())
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "UnknownTopic"
    assert "no-such-topic" in error["message"] and api.chat_topic in error["message"]


def test_body_over_1_mb_is_413(api: Any) -> None:
    response = api.post(f"/v1/topics/{api.chat_topic}/events", json=chat_event(content="x" * 1_100_000))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PayloadTooLarge"
    assert "1048576 bytes" in response.json()["error"]["message"]


def test_body_that_is_not_json_is_400(api: Any) -> None:
    response = api.post(
        f"/v1/topics/{api.chat_topic}/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_health_and_readiness(api: Any) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 30  # the contracts' ids are looked up in the background at startup
    while (ready := api.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready.status_code == 200 and ready.json()["checks"] == {"broker": True, "registry": True}
    paths = api.get("/openapi.json").json()["paths"]
    for path, extra in (("/v1/topics/{topic}/events", set()), ("/v1/topics/{topic}/events:batch", {"207"})):
        documented = set(paths[path]["post"]["responses"])
        assert documented == {"200", "400", "401", "403", "404", "413", "415", "422", "502", "503"} | extra


def test_unreachable_broker_is_503_with_retry_after_within_the_bounded_wait(
    registry_emulator: Any, kafka_broker: LocalKafka, tmp_path: Path
) -> None:
    topic = "chat-nowhere"
    catalog = write_catalog(tmp_path, {topic: CHAT})
    settings = make_settings(kafka_broker, registry_emulator, catalog, producer={"delivery_timeout_ms": 1500})
    provision(settings)  # registers the contracts; the API then needs only the broker
    dead = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})}
    )
    with producer_api(dead) as url:
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/topics/{topic}/events", json=chat_event(), timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "BrokerUnavailable"
        assert "did not acknowledge" in response.json()["error"]["message"]
        assert elapsed < 10, f"503 took {elapsed:.1f} s"
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
