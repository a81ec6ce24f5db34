"""The emulator's OpenAPI document (schemas/emulator/openapi.py): its paths route, its examples work.

The emulator serves no document of its own (Azure does not either), so this one is written by hand; these tests keep
it honest against the router, and run its examples against the app (plain HTTP on a free port, no broker).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn

from hubstream.ports import free_port, port_open
from schemas.emulator.admin_api import admin_router
from schemas.emulator.app import create_app
from schemas.emulator.groups import SchemaGroup
from schemas.emulator.openapi import EXAMPLE_GROUP, openapi_document
from schemas.emulator.routes import Operation, resolve
from schemas.emulator.store import SchemaStore

TOKEN = "fuzz-token"
AVRO = "application/json; serialization=Avro"
AZURE_OPERATIONS = {
    "listGroups": Operation.LIST_GROUPS,
    "getSchemaById": Operation.GET_BY_ID,
    "registerSchema": Operation.REGISTER,
    "getSchemaProperties": Operation.GET_ID,
    "listSchemaVersions": Operation.LIST_VERSIONS,
    "getSchemaVersion": Operation.GET_VERSION,
}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def with_examples(path: str, operation: dict[str, Any]) -> str:
    """The path with each parameter's example in its place, percent-encoded as clients send it."""
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", httpx.URL("/" + str(param["example"])).raw_path[1:].decode())
    return path


def test_every_azure_path_routes_to_its_operation() -> None:
    seen = set()
    for path, method, operation in operations():
        if path.startswith("/$hubstream"):
            continue
        route = resolve(method, with_examples(path, operation))
        assert route.operation is AZURE_OPERATIONS[operation["operationId"]], path
        seen.add(route.operation)
    assert seen == set(Operation)


def test_every_admin_path_is_a_route_of_the_admin_api(tmp_path: Path) -> None:
    router = admin_router(SchemaStore.in_state_dir(tmp_path))
    routes = {(route.path, method) for route in router.routes for method in getattr(route, "methods", ())}
    routes.add(("/$hubstream/health", "GET"))  # app.py's, outside the router
    documented = {(path, method) for path, method, _ in operations() if path.startswith("/$hubstream")}
    assert documented <= routes
    assert {(path, method) for path, method in routes if method != "HEAD"} <= documented


def test_schemathesis_takes_the_document() -> None:
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(openapi_document())))
    names = {result.ok().definition.raw["operationId"] for result in loaded.get_all_operations()}
    assert set(AZURE_OPERATIONS) <= names and {"putGroup", "getGroup", "health"} <= names


def test_parameter_patterns_match_the_emulator_rules() -> None:
    params = {p["name"]: p["schema"] for _, _, op in operations() for p in op.get("parameters", [])}
    name = re.compile(params["schemaName"]["pattern"])
    assert name.match("hubstream.chat.ChatResponse") and name.match("a" * 100) and not name.match("a" * 101)
    assert not any(name.match(f"a{c}b") for c in "\\/$: \u00e9")
    assert re.match(params["groupName"]["pattern"], EXAMPLE_GROUP)
    assert re.match(params["id"]["pattern"], "0" * 32) and not re.match(params["id"]["pattern"], "0" * 31)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[httpx.Client]:
    store = SchemaStore.in_state_dir(tmp_path)
    store.ensure_group(SchemaGroup(EXAMPLE_GROUP))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(store, auth_token=TOKEN), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (server.started and port_open("127.0.0.1", port)) and time.monotonic() < deadline:
        time.sleep(0.02)
    headers = {"authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_examples_register_and_read_back_a_schema(emulator: httpx.Client) -> None:
    paths = {operation["operationId"]: (path, operation) for path, _, operation in operations()}

    def url(operation_id: str, **values: Any) -> str:
        path, operation = paths[operation_id]
        url = with_examples(path, operation)
        for name, value in values.items():
            url = url.replace(httpx.URL("/" + str(_example(operation, name))).raw_path[1:].decode(), str(value))
        return url

    register = paths["registerSchema"][1]
    body = json.dumps(register["requestBody"]["content"][AVRO]["example"])
    query = {"api-version": "2022-10"}
    put = emulator.put(url("registerSchema"), params=query, content=body, headers={"content-type": AVRO})
    assert put.status_code == 204, put.text
    schema_id, version = put.headers["schema-id"], put.headers["schema-version"]
    found = emulator.post(url("getSchemaProperties"), params=query, content=body, headers={"content-type": AVRO})
    assert found.status_code == 204 and found.headers["schema-id"] == schema_id
    assert emulator.get(url("getSchemaById", id=schema_id), params=query).text == body
    assert emulator.get(url("listSchemaVersions"), params=query).json() == {"Value": [1]}
    assert emulator.get(url("getSchemaVersion", schemaVersion=version), params=query).text == body
    assert emulator.get(url("listGroups"), params=query).json() == {"Value": [EXAMPLE_GROUP]}
    group = emulator.put(url("putGroup"), json={"compatibility": "Forward"})
    assert group.status_code == 200 and group.json()["compatibility"] == "Forward"
    assert httpx.get(str(emulator.base_url.join(url("health")))).status_code == 200  # no token needed


def _example(operation: dict[str, Any], name: str) -> Any:
    return next(p["example"] for p in operation["parameters"] if p["name"] == name)
