"""Hostile schema bodies against the running emulator: each is refused in Azure's error shape, never a 500."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import pytest

from schemas.emulator.admission import MAX_VERSIONS
from tests.fixtures.registry import CLIENT_TOKEN, RegistryEmulator

AVRO = "application/json; serialization=Avro"


@pytest.fixture
def client(registry_emulator: RegistryEmulator) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(registry_emulator.ca_file))
    token = registry_emulator.auth_token or CLIENT_TOKEN
    headers = {"authorization": f"Bearer {token}", "content-type": AVRO}
    with httpx.Client(base_url=registry_emulator.url, verify=context, headers=headers, timeout=60) as http:
        yield http


def put(client: httpx.Client, group: str, name: str, body: str | bytes) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return client.put(f"/$schemaGroups/{group}/schemas/{name}", params={"api-version": "2022-10"}, content=content)


def record(name: str, **extra: object) -> str:
    return json.dumps({"type": "record", "name": name, "fields": [{"name": "a", "type": "string"}], **extra})


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"type": "record", "name": "R", "fields": [], "x": ' + "9" * 5000 + "}", "not valid JSON"),
        (record("R", doc="\ud800"), "surrogate"),  # json.dumps writes it as its escape
        ('{"type": "record", "name": "R", "fields": [], "\\udc00": 1}', "surrogate"),
    ],
    ids=["deep-nesting", "5000-digit-integer", "lone-surrogate-value", "lone-surrogate-key"],
)
def test_hostile_schema_json_is_invalid_schema_not_500(
    client: httpx.Client, registry_emulator: RegistryEmulator, body: str, said: str
) -> None:
    group = registry_emulator.create_group()
    response = put(client, group, "hostile", body)
    assert response.status_code == 400, response.text
    assert response.headers["x-ms-error-code"] == "InvalidSchema"
    assert said in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "said"),
    [("[" * 100_000, "nested too deeply"), ("not json at all", "not valid JSON"), ('["\\ud800"]', "surrogate")],
    ids=["deep-nesting", "not-json", "lone-surrogate"],
)
def test_a_hostile_get_id_body_is_invalid_schema_not_500(
    client: httpx.Client, registry_emulator: RegistryEmulator, body: str, said: str
) -> None:
    group = registry_emulator.create_group()
    assert put(client, group, "known", record("Known")).status_code == 204
    response = client.post(
        f"/$schemaGroups/{group}/schemas/known:get-id", params={"api-version": "2022-10"}, content=body.encode()
    )
    assert response.status_code == 400, response.text
    assert response.headers["x-ms-error-code"] == "InvalidSchema"
    assert said in response.json()["error"]["message"]


def test_deeply_nested_avro_that_parses_as_json_is_refused(
    client: httpx.Client, registry_emulator: RegistryEmulator
) -> None:
    schema: object = "string"
    for _ in range(900):  # JSON parses this depth; fastavro's recursive parser needs several frames a level
        schema = {"type": "array", "items": schema}
    response = put(client, registry_emulator.create_group(), "deep", json.dumps(schema))
    assert response.status_code in (204, 400), response.text
    if response.status_code == 400:
        assert response.headers["x-ms-error-code"] == "InvalidSchema"


def test_a_body_over_1_mb_is_413(client: httpx.Client, registry_emulator: RegistryEmulator) -> None:
    body = record("Big", doc="x" * 1_000_001)
    response = put(client, registry_emulator.create_group(), "big", body)
    assert response.status_code == 413, response.text
    assert response.headers["x-ms-error-code"] == "RequestEntityTooLarge"
    assert "1000000 bytes" in response.json()["error"]["message"]


def test_a_body_just_under_1_mb_is_taken(client: httpx.Client, registry_emulator: RegistryEmulator) -> None:
    body = record("Big", doc="x" * 999_000)
    assert put(client, registry_emulator.create_group(), "big", body).status_code == 204


def test_versions_per_schema_are_capped(client: httpx.Client, registry_emulator: RegistryEmulator) -> None:
    group = registry_emulator.create_group(compatibility="None")
    for version in range(MAX_VERSIONS):
        response = put(client, group, "busy", record("Busy", doc=str(version)))
        assert response.status_code == 204, response.text
    response = put(client, group, "busy", record("Busy", doc="one too many"))
    assert response.status_code == 400, response.text
    assert response.headers["x-ms-error-code"] == "InvalidRequest"
    assert f"already has {MAX_VERSIONS} versions" in response.json()["error"]["message"]
    assert put(client, group, "busy", record("Busy", doc=str(MAX_VERSIONS - 1))).status_code == 204  # same as latest
