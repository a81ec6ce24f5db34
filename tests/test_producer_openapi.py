"""The producer API's OpenAPI document (kafka_producer/openapi.py), for the app built from the project's catalog.

Each topic has its own paths with its event's JSON Schema and an example; the example validates against that
schema (jsonschema-rs, schemathesis' validator) and the API itself accepts it: the real app, with its parsing,
natural-JSON validation and Avro encoding, answers 200. Only the broker and the registry are stand-ins here, so
this runs without servers; tests/fuzz.py (`make fuzz`) sends the same document's requests to a live stack.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
import uvicorn

from hubstream.errors import BrokerError, BrokerUnavailableError
from hubstream.ports import free_port, port_open
from hubstream.settings import Settings
from kafka_producer.api import ProducerService, create_app
from kafka_producer.openapi import BATCH_PATH, EVENTS_PATH
from kafka_producer.producer import Delivery
from kafka_producer.publisher import EventPublisher
from schemas.contracts import Catalog, Contract
from schemas.serde import AvroSerde

SCHEMA_ID = "0123456789abcdef0123456789abcdef"
ERROR_STATUSES = {"400", "401", "403", "413", "415", "422", "502", "503"}


class StandInRegistry:
    """The schema registry, as far as the API asks it: every contract has one id."""

    cache_size = 16

    def schema_id(self, contract: Contract) -> str:
        return SCHEMA_ID

    def close(self) -> None:
        pass


class StandInProducer:
    """Acknowledges every record at once, or (``unavailable``) none."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.unavailable = False

    def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Any) -> asyncio.Future[Delivery]:
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        if self.unavailable:
            future.set_exception(BrokerUnavailableError("the broker is away"))
        else:
            self.sent.append((topic, value, key))
            future.set_result(Delivery(topic, 0, len(self.sent) - 1, None))
        return future

    def send_many(
        self, topic: str, values: Sequence[bytes], *, keys: Sequence[bytes | None], headers: Any
    ) -> asyncio.Future[list[Delivery | BrokerError]]:
        future: asyncio.Future[list[Delivery | BrokerError]] = asyncio.get_running_loop().create_future()
        outcomes: list[Delivery | BrokerError] = []
        for value, key in zip(values, keys, strict=True):
            if self.unavailable:
                outcomes.append(BrokerUnavailableError("the broker is away"))
            else:
                self.sent.append((topic, value, key))
                outcomes.append(Delivery(topic, 0, len(self.sent) - 1, None))
        future.set_result(outcomes)
        return future

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        return not self.unavailable

    async def close(self, timeout_s: float = 10.0) -> int:
        return 0


def project_settings(**api: Any) -> Settings:
    """The project's own contracts and topic catalog (the defaults), nothing from the environment or .env."""
    return Settings(_env_file=None, profile="local", api=api)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_settings(project_settings())


@pytest.fixture
def producer() -> StandInProducer:
    return StandInProducer()


@pytest.fixture
def client(producer: StandInProducer) -> Iterator[httpx.Client]:
    """The app on a real socket (uvicorn in a thread), with the stand-in registry and producer."""

    def service(settings: Settings) -> ProducerService:
        catalog = Catalog.from_settings(settings)
        registry: Any = StandInRegistry()
        publisher = EventPublisher(catalog, AvroSerde(registry), producer, delivery_timeout_s=5)
        return ProducerService(publisher, producer, registry, catalog)

    port = free_port()
    app = create_app(project_settings(), service_factory=service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 10  # the server starts, then the ids are looked up in a thread
            while time.monotonic() < deadline and not (port_open("127.0.0.1", port) and ready(http)):
                time.sleep(0.02)
            assert ready(http)
            yield http
    finally:
        server.should_exit = True
        thread.join(10)


def ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(project_settings()).openapi()


def body_of(document: dict[str, Any], path: str) -> tuple[dict[str, Any], Any]:
    media = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return media["schema"], media["examples"]["event"]["value"]


def validates(document: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Against ``schema``, whose references point into the document's components."""
    return jsonschema_rs.validator_for({**schema, "components": document["components"]}).is_valid(value)


def topic_paths(topic: str) -> tuple[str, str]:
    return EVENTS_PATH.replace("{topic}", topic), BATCH_PATH.replace("{topic}", topic)


def test_every_topic_has_its_paths_with_its_contract_as_the_body(document: dict[str, Any], catalog: Catalog) -> None:
    assert catalog.topics, "the project's catalog has topics"
    for topic, binding in catalog.topics.items():
        single, batch = topic_paths(topic)
        schema, _ = body_of(document, single)
        assert schema == {"$ref": f"#/components/schemas/{binding.schema}"}
        assert document["components"]["schemas"][binding.schema]["title"] == binding.schema
        batch_schema, _ = body_of(document, batch)
        assert batch_schema["properties"]["events"]["items"] == schema
        assert batch_schema["properties"]["events"]["maxItems"] == 1_000
        operation = document["paths"][single]["post"]
        assert "parameters" not in operation  # the topic is in the path itself
        assert operation["tags"] == [topic]
        assert document["paths"][single]["post"]["requestBody"]["required"] is True


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_every_example_fits_its_schema(document: dict[str, Any], catalog: Catalog, kind: str) -> None:
    for topic in catalog.topics:
        path = topic_paths(topic)[kind == "batch"]
        schema, example = body_of(document, path)
        assert validates(document, schema, example), path
        broken = copy.deepcopy(example)
        (broken["events"][0] if kind == "batch" else broken)["unknownField"] = 1
        assert not validates(document, schema, broken), "records are closed: unknown fields are refused"


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_the_api_accepts_every_example(
    client: httpx.Client, producer: StandInProducer, catalog: Catalog, kind: str
) -> None:
    document = client.get("/openapi.json").json()
    for topic, binding in catalog.topics.items():
        path = topic_paths(topic)[kind == "batch"]
        _, example = body_of(document, path)
        response = client.post(path, json=example)
        assert response.status_code == 200, (path, response.text)
        assert producer.sent[-1][0] == topic
        event = example["events"][0] if kind == "batch" else example
        assert producer.sent[-1][2] == str(event[binding.key_field]).encode()


def test_every_publish_operation_documents_its_answers(document: dict[str, Any], catalog: Catalog) -> None:
    operations = [(EVENTS_PATH, False), (BATCH_PATH, True)]
    for topic in catalog.topics:
        operations += [(topic_paths(topic)[0], False), (topic_paths(topic)[1], True)]
    for path, batch in operations:
        responses = document["paths"][path]["post"]["responses"]
        expected = {"200"} | ERROR_STATUSES | ({"207"} if batch else set()) | ({"404"} if "{topic}" in path else set())
        assert set(responses) == expected, path
        for status in ERROR_STATUSES:
            assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["503"]["headers"]
        assert "WWW-Authenticate" in responses["401"]["headers"]


def test_the_answers_have_the_documented_error_shape(
    client: httpx.Client, producer: StandInProducer, document: dict[str, Any]
) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    path = topic_paths("chat.responses")[0]
    _, example = body_of(document, path)
    answers = {
        400: client.post(path, content=b"{not json", headers={"content-type": "application/json"}),
        404: client.post(EVENTS_PATH.replace("{topic}", "no.such.topic"), json=example),
        415: client.post(path, content=b"{}", headers={"content-type": "text/plain"}),
        422: client.post(path, json={**example, "sequence": "one", "extra": 1}),
    }
    producer.unavailable = True
    answers[503] = client.post(path, json=example)
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert validates(document, error, response.json()), response.text
    assert [p["path"] for p in answers[422].json()["error"]["problems"]] == ["sequence", "extra"]
    assert answers[503].headers["retry-after"]


def test_credentials_are_described_when_the_api_checks_them() -> None:
    document = create_app(project_settings(auth=True)).openapi()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert document["paths"][topic_paths("chat.responses")[0]]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    local = create_app(project_settings()).openapi()
    assert "securitySchemes" not in local["components"]


def test_schemathesis_takes_the_document_and_swagger_ui_is_served(client: httpx.Client, catalog: Catalog) -> None:
    loaded = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    operations = {(op.ok().method.upper(), op.ok().path) for op in loaded.get_all_operations()}
    for topic in catalog.topics:
        assert {("POST", path) for path in topic_paths(topic)} <= operations
    assert client.get("/docs").status_code == 200
