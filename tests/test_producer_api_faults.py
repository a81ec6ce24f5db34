"""The producer API never waits on the loop for the registry or a full queue, and says what failed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.provisioning import provision
from hubstream.errors import ConfigurationError
from hubstream.ports import free_port
from hubstream.settings import load_settings
from hubstream_cli.produce_api import server_options
from tests.fixtures.broker import LocalKafka
from tests.fixtures.events import chat_event
from tests.fixtures.registry import running_emulator
from tests.fixtures.services import CHAT, make_settings, producer_api, write_catalog


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        time.sleep(0.2)


def timed_post(url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(url, timeout=60, **kwargs)
    return response, time.monotonic() - started


def test_registry_down_at_startup_is_503_fast_until_it_returns(kafka_broker: LocalKafka, tmp_path: Path) -> None:
    topic = kafka_broker.create_topic("chat-registry-down")
    catalog = write_catalog(tmp_path, {topic: CHAT})
    port = free_port()
    with running_emulator(tmp_path / "registry", port=port) as emulator:
        settings = make_settings(kafka_broker, emulator, catalog, api={"registry_retry_s": 0.5})
        provision(settings)
    # the emulator is stopped: the API starts anyway, not ready
    with producer_api(settings) as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["registry"] is False
        for _ in range(3):
            response, elapsed = timed_post(f"{url}/v1/topics/{topic}/events", json=chat_event())
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "SchemaRegistryUnavailable"
            assert response.headers["retry-after"] == "5"
            assert elapsed < 1.0, f"the 503 took {elapsed:.2f} s"
            health_started = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            assert time.monotonic() - health_started < 1.0
        with running_emulator(tmp_path / "registry", port=port):
            wait_for(
                lambda: httpx.get(f"{url}/readyz", timeout=10).json()["checks"]["registry"],
                60,
                "the API saw the registry again",
            )
            response = httpx.post(f"{url}/v1/topics/{topic}/events", json=chat_event(), timeout=30)
            assert response.status_code == 200, response.text
        # ids are known now: the registry going away again does not stop publishing
        response = httpx.post(f"{url}/v1/topics/{topic}/events", json=chat_event(), timeout=30)
        assert response.status_code == 200, response.text


def test_a_full_producer_queue_is_503_at_once(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path) -> None:
    topic = "chat-queue-full"
    catalog = write_catalog(tmp_path, {topic: CHAT})
    settings = make_settings(kafka_broker, registry_emulator, catalog, producer={"delivery_timeout_ms": 4000})
    provision(settings)
    dead = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "bootstrap_servers": f"127.0.0.1:{free_port()}",
                    "extra": {"queue.buffering.max.messages": 1},
                }
            )
        }
    )
    with producer_api(dead) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=10).json()["checks"]["registry"], 30, "ids known")
        first: list[httpx.Response] = []
        filler = threading.Thread(
            target=lambda: first.append(httpx.post(f"{url}/v1/topics/{topic}/events", json=chat_event(), timeout=60))
        )
        filler.start()
        time.sleep(0.5)  # the first record now holds the queue's only place
        response, elapsed = timed_post(f"{url}/v1/topics/{topic}/events", json=chat_event())
        filler.join()
        assert response.status_code == 503, response.text
        assert "queue is full" in response.json()["error"]["message"]
        assert response.headers["retry-after"] == "5"
        assert elapsed < 1.0, f"the 503 took {elapsed:.2f} s"
        assert first[0].status_code == 503  # not acknowledged within the delivery timeout


@pytest.fixture(scope="module")
def small_messages(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    topic = kafka_broker.create_topic("chat-small")
    catalog = write_catalog(tmp_path_factory.mktemp("small"), {topic: CHAT})
    settings = make_settings(kafka_broker, registry_emulator, catalog, producer={"max_message_bytes": 1000})
    provision(settings)
    with producer_api(settings) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, 30, "ready")
        yield f"{url}/v1/topics/{topic}/events"


def test_an_event_that_encodes_too_large_is_413(small_messages: str) -> None:
    response = httpx.post(small_messages, json=chat_event(content="x" * 3000), timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "RecordTooLarge"
    assert "smaller event" in response.json()["error"]["message"]


def test_a_batch_with_failed_events_is_207_with_a_failed_count(small_messages: str) -> None:
    events = [chat_event(sequence=0), chat_event(sequence=1, content="x" * 3000), chat_event(sequence=2)]
    response = httpx.post(small_messages + ":batch", json={"events": events}, timeout=30)
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["failed"] == 1
    assert [item["ok"] for item in body["results"]] == [True, False, True]
    assert "larger than the message size limit" in body["results"][1]["error"]
    whole = httpx.post(small_messages + ":batch", json={"events": [events[0], events[2]]}, timeout=30)
    assert whole.status_code == 200 and whole.json()["failed"] == 0


def test_an_infinite_delivery_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="DELIVERY_TIMEOUT_MS: Input should be greater than 0"):
        load_settings(producer={"delivery_timeout_ms": 0})


def test_the_server_is_bounded() -> None:
    options = server_options(load_settings(api={"limit_concurrency": 64, "host": "127.0.0.1", "port": 8080}))
    assert options["limit_concurrency"] == 64
    assert options["timeout_keep_alive"] > 0 and options["timeout_graceful_shutdown"] > 0
