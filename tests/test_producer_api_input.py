"""Hostile bodies against the running producer API: none may give a 500, blow up memory or stall the loop."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.provisioning import provision
from tests.fixtures.broker import LocalKafka
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, make_settings, producer_api, write_catalog

JSON = {"content-type": "application/json"}


@dataclass
class Api:
    client: httpx.Client
    events_url: str

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(url, **kwargs)

    def get(self, url: str) -> httpx.Response:
        return self.client.get(url)


@pytest.fixture(scope="module")
def api(kafka_broker: LocalKafka, registry_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    chat = kafka_broker.create_topic("chat-input")
    catalog = write_catalog(tmp_path_factory.mktemp("api-input"), {chat: CHAT})
    settings = make_settings(kafka_broker, registry_emulator, catalog, api={"auth": False})
    provision(settings)
    with producer_api(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Api(client, f"/v1/topics/{chat}/events")


def post(api: Api, body: bytes | str, *, batch: bool = False) -> httpx.Response:
    url = api.events_url + (":batch" if batch else "")
    return api.post(url, content=body.encode() if isinstance(body, str) else body, headers=JSON)


def raw_event(**raw_fields: str) -> str:
    """A chat event's JSON with some fields' values written as raw JSON text (literals json.dumps cannot make)."""
    event = chat_event()
    for name in raw_fields:
        event[name] = f"@@{name}@@"
    text = json.dumps(event)
    for name, raw in raw_fields.items():
        text = text.replace(f'"@@{name}@@"', raw)
    return text


@pytest.mark.parametrize("batch", [False, True])
def test_deep_nesting_is_400_not_a_recursion_error(api: Api, batch: bool) -> None:
    response = post(api, "[" * 100_000, batch=batch)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "InvalidJson"
    assert "nested too deeply" in response.json()["error"]["message"]


def test_an_integer_of_5000_digits_is_400(api: Api) -> None:
    response = post(api, raw_event(sequence="9" * 5000))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "InvalidJson"
    assert "digits" in response.json()["error"]["message"]


def test_raw_surrogate_bytes_are_not_utf8(api: Api) -> None:
    response = post(api, raw_event(content='"a').encode() + b"\xed\xa0\x80" + b'"')
    assert response.status_code == 400, response.text
    assert "UTF-8" in response.json()["error"]["message"]


def test_a_lone_surrogate_in_a_map_key_is_422_with_a_response_that_renders(api: Api) -> None:
    response = post(api, raw_event(metadata='{"\\ud800": "x", "ok": "\\udfff"}'))
    assert response.status_code == 422, response.text
    error = response.json()["error"]  # the body is JSON: the surrogate is written as its escape
    paths = [p["path"] for p in error["problems"]]
    assert paths == ['metadata["\\ud800"]', "metadata.ok"]
    assert "surrogate" in error["problems"][0]["problem"]


def test_a_lone_surrogate_in_an_unknown_field_name_renders(api: Api) -> None:
    event = chat_event()
    text = json.dumps(event)[:-1] + ', "\\udc00x": 1}'
    response = post(api, text)
    assert response.status_code == 422, response.text
    assert "surrogate" in response.text


def test_paired_surrogate_escapes_are_fine(api: Api) -> None:
    response = post(api, raw_event(content='"smile \\ud83d\\ude00"'))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_refused_with_the_field_path(api: Api, literal: str) -> None:
    response = post(api, raw_event(sequence=literal))
    assert response.status_code == 422, response.text
    problems = response.json()["error"]["problems"]
    assert [p["path"] for p in problems] == ["sequence"]
    assert literal in problems[0]["problem"] and "finite" in problems[0]["problem"]


def test_non_finite_numbers_in_a_batch_name_the_event(api: Api) -> None:
    text = '{"events": [' + raw_event() + "," + raw_event(sequence="NaN") + "]}"
    response = post(api, text, batch=True)
    assert response.status_code == 422, response.text
    assert [p["path"] for p in response.json()["error"]["problems"]] == ["events[1].sequence"]


def test_a_batch_over_the_event_cap_is_413(api: Api) -> None:
    response = post(api, json.dumps({"events": [{}] * 1001}), batch=True)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "TooManyEvents"
    assert "at most 1000 events" in response.json()["error"]["message"]


def test_a_1_mib_batch_of_empty_events_is_refused_small(api: Api) -> None:
    body = json.dumps({"events": [{}] * 340_000}, separators=(",", ":")).encode()
    assert len(body) < 1_048_576
    started = time.monotonic()
    response = post(api, body, batch=True)
    assert response.status_code == 413, response.text
    assert len(response.content) < 1000 and time.monotonic() - started < 10


def test_problems_are_capped_and_counted(api: Api) -> None:
    response = post(api, json.dumps({"events": [{}] * 1000}), batch=True)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert len(error["problems"]) == 100
    assert error["problemCount"] == 1000 * 6  # six required fields without a default in each event
    assert error["problems"][0]["path"] == "events[0].eventId"
    assert len(response.content) < 50_000


def test_a_1_mib_object_of_unknown_keys_is_answered_fast_and_small(api: Api) -> None:
    event = chat_event()
    event.update({f"unknown{i:06d}": 0 for i in range(55_000)})
    body = json.dumps(event, separators=(",", ":")).encode()
    assert 900_000 < len(body) < 1_048_576
    started = time.monotonic()
    response = post(api, body)
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["problemCount"] == 55_000 and len(error["problems"]) == 100
    assert "did you mean" not in error["problems"][-1]["problem"]
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_the_loop_keeps_answering_while_large_bodies_are_validated(api: Api) -> None:
    event = chat_event()
    event.update({f"unknown{i:06d}": 0 for i in range(55_000)})
    body = json.dumps(event, separators=(",", ":")).encode()
    done = threading.Event()
    worst = 0.0

    def validate() -> None:
        with httpx.Client(base_url=str(api.client.base_url), timeout=60) as client:
            for _ in range(4):
                client.post(api.events_url, content=body, headers=JSON)
        done.set()

    thread = threading.Thread(target=validate)
    thread.start()
    while not done.is_set():
        started = time.monotonic()
        assert api.get("/healthz").status_code == 200
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.02)
    thread.join()
    assert worst < 2.0, f"/healthz took {worst:.2f} s while large bodies were validated"
