"""The Schema Registry emulator, driven by the official azure-schemaregistry SDK over real HTTPS."""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import textwrap
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.schemaregistry import SchemaFormat
from azure.schemaregistry.encoder.avroencoder import AvroEncoder
from typer.testing import CliRunner

from devstack.discovery import StackInfo
from hubstream_cli.registry import app as registry_cli
from tests.fixtures.registry import RegistryEmulator, running_emulator

API = "?api-version=2022-10"


def user_schema(*fields: dict[str, Any], name: str = "User", namespace: str = "example.avro") -> str:
    all_fields = [{"name": "name", "type": "string"}, *fields]
    return json.dumps({"type": "record", "name": name, "namespace": namespace, "fields": all_fields})


def unique_name() -> str:
    return f"example.avro.User{uuid.uuid4().hex[:8]}"


def expect_error(
    call: Callable[[], object], kind: type[HttpResponseError], status: int, code: str
) -> HttpResponseError:
    with pytest.raises(kind) as caught:
        call()
    error = caught.value
    assert error.status_code == status
    assert error.error is not None and error.error.code == code
    return error


# --- the six operations, through the official client


def test_register_then_look_up_by_content(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client, name, schema = registry_emulator.client(), unique_name(), user_schema()
    registered = client.register_schema(registry_group, name, schema, "Avro")
    assert len(registered.id) == 32 and registered.id == registered.id.lower()
    int(registered.id, 16)
    assert (registered.group_name, registered.name, registered.version) == (registry_group, name, 1)
    found = client.get_schema_properties(registry_group, name, schema, "Avro")
    assert (found.id, found.version) == (registered.id, 1)


def test_get_by_id_returns_the_exact_text_and_its_format(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client, name = registry_emulator.client(), unique_name()
    # odd whitespace and key order must survive byte for byte
    schema = '{ "name":"User",\n  "type" : "record", "namespace":"ex",\t"fields":[ {"name":"n","type":"int"} ] }'
    registered = client.register_schema(registry_group, name, schema, "Avro")
    fetched = client.get_schema(registered.id)
    assert fetched.definition == schema
    assert fetched.properties.format == SchemaFormat.AVRO
    assert (fetched.properties.id, fetched.properties.group_name, fetched.properties.name) == (
        registered.id,
        registry_group,
        name,
    )


def test_get_by_version(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client, name = registry_emulator.client(), unique_name()
    v1 = user_schema()
    v2 = user_schema({"name": "age", "type": "int", "default": 0})
    client.register_schema(registry_group, name, v1, "Avro")
    second = client.register_schema(registry_group, name, v2, "Avro")
    assert second.version == 2
    assert client.get_schema(group_name=registry_group, name=name, version=1).definition == v1
    fetched = client.get_schema(group_name=registry_group, name=name, version=2)
    assert (fetched.definition, fetched.properties.id) == (v2, second.id)


def test_list_versions_and_groups(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client, name = registry_emulator.client(), unique_name()
    client.register_schema(registry_group, name, user_schema(), "Avro")
    client.register_schema(registry_group, name, user_schema({"name": "a", "type": "int", "default": 1}), "Avro")
    generated = client._generated_client
    assert list(generated.list_schema_versions(registry_group, name)) == [1, 2]
    groups = list(generated.list_schema_groups())
    assert registry_group in groups and registry_emulator.group in groups


def test_registering_the_latest_content_again_returns_the_same_version(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client, name, schema = registry_emulator.client(), unique_name(), user_schema()
    first = client.register_schema(registry_group, name, schema, "Avro")
    again = client.register_schema(registry_group, name, schema, "Avro")
    assert (again.id, again.version) == (first.id, first.version)


def test_registering_an_older_versions_content_makes_a_new_version(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client, name = registry_emulator.client(), unique_name()
    a = user_schema()
    b = user_schema({"name": "age", "type": "int", "default": 0})
    v1 = client.register_schema(registry_group, name, a, "Avro")
    client.register_schema(registry_group, name, b, "Avro")
    v3 = client.register_schema(registry_group, name, a, "Avro")
    assert v3.version == 3 and v3.id != v1.id
    # get-id answers with the newest version that has the content
    assert client.get_schema_properties(registry_group, name, a, "Avro").version == 3


def test_get_id_finds_the_same_schema_written_differently_but_not_another(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client, name, schema = registry_emulator.client(), unique_name(), user_schema()
    registered = client.register_schema(registry_group, name, schema, "Avro")
    reformatted = json.dumps(json.loads(schema), indent=2)  # as Azure's recorded answers show: same JSON value
    assert client.get_schema_properties(registry_group, name, reformatted, "Avro").id == registered.id
    changed = json.loads(schema)
    changed["fields"].append({"name": "age", "type": "int"})
    expect_error(
        lambda: client.get_schema_properties(registry_group, name, json.dumps(changed), "Avro"),
        ResourceNotFoundError,
        404,
        "ItemNotFound",
    )


def test_json_and_custom_groups_report_their_format(registry_emulator: RegistryEmulator) -> None:
    client = registry_emulator.client()
    json_group = registry_emulator.create_group("Json", "None")
    custom_group = registry_emulator.create_group("Custom", "None")
    json_schema = '{"type":"object","properties":{"a":{"type":"string"}}}'
    registered = client.register_schema(json_group, "person-json", json_schema, "Json")
    fetched = client.get_schema(registered.id)
    assert (fetched.definition, fetched.properties.format) == (json_schema, SchemaFormat.JSON)
    registered = client.register_schema(custom_group, "custom-thing", "free text schema", "Custom")
    fetched = client.get_schema(registered.id)
    assert (fetched.definition, fetched.properties.format) == ("free text schema", SchemaFormat.CUSTOM)


# --- errors, as the SDK surfaces them


def test_unknown_ids_versions_and_names_are_not_found(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client, name = registry_emulator.client(), unique_name()
    missing = uuid.uuid4().hex
    error = expect_error(lambda: client.get_schema(missing), ResourceNotFoundError, 404, "ItemNotFound")
    assert f"Schema id {missing} does not exist." in error.message
    error = expect_error(
        lambda: client.get_schema_properties(registry_group, name, user_schema(), "Avro"),
        ResourceNotFoundError,
        404,
        "ItemNotFound",
    )
    assert f"Schema {registry_group}/{name} does not exist." in error.message
    client.register_schema(registry_group, name, user_schema(), "Avro")
    error = expect_error(
        lambda: client.get_schema(group_name=registry_group, name=name, version=7),
        ResourceNotFoundError,
        404,
        "ItemNotFound",
    )
    assert f"Schema {registry_group}/{name}/ver.7 does not exist." in error.message


def test_malformed_schema_id_is_an_invalid_request(registry_emulator: RegistryEmulator) -> None:
    client = registry_emulator.client()
    expect_error(lambda: client.get_schema("a"), HttpResponseError, 400, "InvalidRequest")
    error = expect_error(lambda: client.get_schema("fakeschemaid"), HttpResponseError, 400, "InvalidRequest")
    assert "32 hexadecimal characters" in error.message


def test_empty_schema_is_an_invalid_request(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client = registry_emulator.client()
    error = expect_error(
        lambda: client.register_schema(registry_group, unique_name(), "", "Avro"),
        HttpResponseError,
        400,
        "InvalidRequest",
    )
    assert "cannot be read because it is empty" in error.message


def test_unsupported_format_is_415(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client = registry_emulator.client()
    error = expect_error(
        lambda: client.register_schema(registry_group, unique_name(), user_schema(), "invalid-format"),
        HttpResponseError,
        415,
        "InvalidSchemaType",
    )
    assert "Invalid schema type for PUT request. 'Invalid-format' is not supported." in error.message
    error = expect_error(
        lambda: client.get_schema_properties(registry_group, unique_name(), user_schema(), "invalid-format"),
        HttpResponseError,
        415,
        "InvalidSchemaType",
    )
    assert "for POST request" in error.message


def test_format_that_is_not_the_groups_is_415(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client = registry_emulator.client()
    error = expect_error(
        lambda: client.register_schema(registry_group, "person-json", '{"type":"object"}', "Json"),
        HttpResponseError,
        415,
        "InvalidSchemaType",
    )
    assert "'Json' does not match" in error.message and "'Avro'" in error.message


def test_invalid_avro_is_400_with_the_parsers_reason(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client = registry_emulator.client()
    bad_type = json.dumps({"type": "record", "name": "U", "fields": [{"name": "a", "type": "strnig"}]})
    error = expect_error(
        lambda: client.register_schema(registry_group, unique_name(), bad_type, "Avro"),
        HttpResponseError,
        400,
        "InvalidSchema",
    )
    assert "strnig" in error.message
    error = expect_error(
        lambda: client.register_schema(registry_group, unique_name(), "{not json", "Avro"),
        HttpResponseError,
        400,
        "InvalidSchema",
    )
    assert "not valid JSON" in error.message


def test_registering_into_an_unknown_group_is_not_found(registry_emulator: RegistryEmulator) -> None:
    client = registry_emulator.client()
    error = expect_error(
        lambda: client.register_schema("no-such-group", unique_name(), user_schema(), "Avro"),
        ResourceNotFoundError,
        404,
        "ItemNotFound",
    )
    assert "Schema group no-such-group does not exist" in error.message


# --- compatibility modes, enforced on register


def field(name: str, avro_type: Any = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": avro_type, **extra}


def rejected(emulator: RegistryEmulator, group: str, name: str, schema: str) -> str:
    """Register, expect an IncompatibleSchema rejection, and return its message."""
    error = expect_error(
        lambda: emulator.client().register_schema(group, name, schema, "Avro"),
        HttpResponseError,
        400,
        "IncompatibleSchema",
    )
    # 400, not 409: the SDK would raise ResourceExistsError, which reads as "already registered"
    assert not isinstance(error, ResourceExistsError)
    return error.message


def test_forward_group_rejects_removing_a_field_without_default(registry_emulator: RegistryEmulator) -> None:
    group, name = registry_emulator.create_group(compatibility="Forward"), unique_name()
    client = registry_emulator.client()
    client.register_schema(group, name, user_schema(field("userId")), "Avro")
    message = rejected(registry_emulator, group, name, user_schema())
    assert "field `userId`" in message and "removed without default" in message
    assert "old readers cannot read new data (FORWARD)" in message
    assert f"{group}/{name}" in message and "against version 1" in message
    # nothing was added
    assert list(client._generated_client.list_schema_versions(group, name)) == [1]
    # adding a field is what Forward allows
    assert client.register_schema(group, name, user_schema(field("userId"), field("age", "int")), "Avro").version == 2


def test_backward_group_rejects_adding_a_field_without_default(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client, name = registry_emulator.client(), unique_name()
    client.register_schema(registry_group, name, user_schema(field("userId")), "Avro")
    message = rejected(registry_emulator, registry_group, name, user_schema(field("userId"), field("age", "int")))
    assert "field `age`" in message and "added without default" in message
    assert "new readers cannot read old data (BACKWARD)" in message
    # Backward allows removing fields and adding ones with a default
    assert client.register_schema(registry_group, name, user_schema(), "Avro").version == 2
    with_default = user_schema(field("age", "int", default=0))
    assert client.register_schema(registry_group, name, with_default, "Avro").version == 3


def test_full_group_checks_both_directions(registry_emulator: RegistryEmulator) -> None:
    group, name = registry_emulator.create_group(compatibility="Full"), unique_name()
    client = registry_emulator.client()
    client.register_schema(group, name, user_schema(field("userId")), "Avro")
    assert "(FORWARD)" in rejected(registry_emulator, group, name, user_schema())
    assert "(BACKWARD)" in rejected(registry_emulator, group, name, user_schema(field("userId"), field("age", "int")))
    type_change = user_schema(field("userId", "int"))
    assert "field `userId`" in rejected(registry_emulator, group, name, type_change)
    compatible = user_schema(field("userId"), field("age", "int", default=0))
    assert client.register_schema(group, name, compatible, "Avro").version == 2


def test_transitive_modes_check_every_version_others_only_the_latest(registry_emulator: RegistryEmulator) -> None:
    v1 = user_schema()
    v2 = user_schema(field("age", "int", default=0))
    v3 = user_schema(field("age", "int"))  # readable from v2 data, not from v1 data
    client = registry_emulator.client()
    plain, transitive = (registry_emulator.create_group(compatibility=m) for m in ("Backward", "BackwardTransitive"))
    for group in (plain, transitive):
        client.register_schema(group, "example.avro.User", v1, "Avro")
        client.register_schema(group, "example.avro.User", v2, "Avro")
    assert client.register_schema(plain, "example.avro.User", v3, "Avro").version == 3
    message = rejected(registry_emulator, transitive, "example.avro.User", v3)
    assert "BackwardTransitive" in message and "against version 1" in message and "field `age`" in message


def test_none_group_and_non_avro_groups_accept_any_change(registry_emulator: RegistryEmulator) -> None:
    client = registry_emulator.client()
    group, name = registry_emulator.create_group(compatibility="None"), unique_name()
    client.register_schema(group, name, user_schema(field("userId")), "Avro")
    assert client.register_schema(group, name, user_schema(field("userId", "int")), "Avro").version == 2
    json_group = registry_emulator.create_group("Json", "Backward")
    client.register_schema(json_group, "person", '{"type":"object","required":["a"]}', "Json")
    assert client.register_schema(json_group, "person", '{"type":"string"}', "Json").version == 2


# --- the Avro encoder end to end


def test_avro_encoder_round_trip(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    client = registry_emulator.client()
    name = f"User{uuid.uuid4().hex[:8]}"
    schema = user_schema({"name": "favorite_number", "type": ["int", "null"]}, name=name)
    encoder = AvroEncoder(client=client, group_name=registry_group, auto_register=True)
    message = encoder.encode({"name": "Ben", "favorite_number": 7}, schema=schema)
    content_type = message["content_type"]
    assert content_type.startswith("avro/binary+")
    schema_id = content_type.split("+")[1]
    assert client.get_schema(schema_id).properties.name == f"example.avro.{name}"
    decoder = AvroEncoder(client=registry_emulator.client(), group_name=registry_group)
    assert decoder.decode(message) == {"name": "Ben", "favorite_number": 7}


def test_avro_encoder_without_auto_register_needs_the_schema_registered(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    encoder = AvroEncoder(client=registry_emulator.client(), group_name=registry_group, auto_register=False)
    name = f"User{uuid.uuid4().hex[:8]}"
    schema = user_schema(name=name)
    with pytest.raises(ResourceNotFoundError):
        encoder.encode({"name": "Ben"}, schema=schema)
    # the encoder looks schemas up by their Avro full name
    registry_emulator.client().register_schema(registry_group, f"example.avro.{name}", schema, "Avro")
    assert encoder.decode(encoder.encode({"name": "Ben"}, schema=schema)) == {"name": "Ben"}


# --- HTTP details the SDK does not show


def https(emulator: RegistryEmulator) -> httpx.Client:
    return httpx.Client(base_url=emulator.url, verify=ssl.create_default_context(cafile=str(emulator.ca_file)))


def test_paths_match_case_insensitively_and_segments_are_percent_decoded(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client, name, schema = registry_emulator.client(), "odd#name+(1)", user_schema()
    registered = client.register_schema(registry_group, name, schema, "Avro")
    assert client.get_schema(group_name=registry_group, name=name, version=1).definition == schema
    with https(registry_emulator) as http:
        response = http.get(f"/$SCHEMAGROUPS/{registry_group}/SCHEMAS/odd%23name%2B%281%29/VERSIONS/1{API}")
        assert response.status_code == 200 and response.headers["schema-id"] == registered.id
        assert http.get(f"/$schemagroups/$Schemas/{registered.id}{API}").text == schema


def test_register_answers_204_with_azures_headers(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    name = unique_name()
    with https(registry_emulator) as http:
        response = http.put(
            f"/$schemaGroups/{registry_group}/schemas/{name}{API}",
            content=user_schema(),
            headers={"Content-Type": "application/json; serialization=Avro"},
        )
    assert response.status_code == 204 and response.content == b""
    schema_id = response.headers["Schema-Id"]
    base = f"https://localhost:{registry_emulator.port}/$schemagroups"
    assert response.headers["Location"] == f"{base}/{registry_group}/schemas/{name}/versions/1{API}"
    assert response.headers["Schema-Id-Location"] == f"{base}/$schemas/{schema_id}{API}"
    assert response.headers["Schema-Version"] == "1" and response.headers["Schema-Name"] == name


def test_api_version_is_required_but_any_value_is_accepted(registry_emulator: RegistryEmulator) -> None:
    with https(registry_emulator) as http:
        missing = http.get("/$schemaGroups")
        assert missing.status_code == 400 and missing.headers["x-ms-error-code"] == "InvalidRequest"
        assert missing.json()["error"]["code"] == "InvalidRequest"
        assert http.get("/$schemaGroups?api-version=2099-01-01").json()["Value"]


def test_errors_carry_the_azure_error_code_header(registry_emulator: RegistryEmulator) -> None:
    with https(registry_emulator) as http:
        response = http.get(f"/$schemaGroups/$schemas/{uuid.uuid4().hex}{API}")
    assert response.status_code == 404
    assert response.headers["x-ms-error-code"] == "ItemNotFound"
    assert response.json()["error"]["code"] == "ItemNotFound"


# --- durability and concurrency


def test_schemas_survive_a_restart(tmp_path: Path) -> None:
    schema = user_schema()
    with running_emulator(tmp_path) as emulator:
        registered = emulator.client().register_schema(emulator.group, "example.avro.User", schema, "Avro")
        ca_before = emulator.ca_file.read_bytes()
        assert emulator.stop() == 0
    with running_emulator(tmp_path) as emulator:
        assert emulator.ca_file.read_bytes() == ca_before
        client = emulator.client()
        assert client.get_schema(registered.id).definition == schema
        assert client.register_schema(emulator.group, "example.avro.User", schema, "Avro").id == registered.id
    with sqlite3.connect(tmp_path / "registry.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def run_in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_parallel_registrations_of_one_name_get_distinct_versions(registry_emulator: RegistryEmulator) -> None:
    group, name = registry_emulator.create_group(compatibility="None"), unique_name()
    schemas = [user_schema({"name": f"f{i}", "type": "int", "default": i}) for i in range(20)]
    # one client per thread, as separate processes would have
    results = run_in_threads(20, lambda i: registry_emulator.client().register_schema(group, name, schemas[i], "Avro"))
    assert sorted(r.version for r in results) == list(range(1, 21))
    assert len({r.id for r in results}) == 20
    assert list(registry_emulator.client()._generated_client.list_schema_versions(group, name)) == list(range(1, 21))


def test_parallel_registrations_of_the_same_content_share_one_version(registry_emulator: RegistryEmulator) -> None:
    group, name, schema = registry_emulator.create_group(), unique_name(), user_schema()
    results = run_in_threads(20, lambda i: registry_emulator.client().register_schema(group, name, schema, "Avro"))
    assert {(r.id, r.version) for r in results} == {(results[0].id, 1)}


# --- optional bearer token


def test_auth_token_is_enforced_without_a_challenge(tmp_path: Path) -> None:
    with running_emulator(tmp_path, extra_args=["--auth-token", "s3cret"]) as emulator:
        name = unique_name()
        assert emulator.client().register_schema(emulator.group, name, user_schema(), "Avro").version == 1
        with pytest.raises(ClientAuthenticationError) as caught:
            emulator.client(token="wrong").get_schema_properties(emulator.group, name, user_schema(), "Avro")
        assert caught.value.status_code == 401
        with https(emulator) as http:
            response = http.get(f"/$schemaGroups{API}")
            assert response.status_code == 401 and "www-authenticate" not in response.headers
            assert response.headers["x-ms-error-code"] == "Unauthorized"
            assert http.get("/$hubstream/groups").status_code == 401
            assert http.get("/$hubstream/health").status_code == 200


# --- schema groups: config file, admin API, CLI


def test_groups_file_creates_groups(tmp_path: Path) -> None:
    groups = tmp_path / "groups.toml"
    groups.write_text(
        textwrap.dedent(
            """
            [groups.orders]
            format = "avro"
            compatibility = "forward_transitive"

            [groups.people]
            format = "Json"
            compatibility = "None"
            """
        )
    )
    state = tmp_path / "state"
    with running_emulator(state, extra_args=["--groups", str(groups)]) as emulator, emulator.admin() as admin:
        listed = {g["name"]: g for g in admin.list_groups()}
    assert (listed["orders"]["format"], listed["orders"]["compatibility"]) == ("Avro", "ForwardTransitive")
    assert listed["orders"]["compatibility_in_azure"] is False
    assert (listed["people"]["format"], listed["people"]["compatibility"]) == ("Json", "None")
    assert (listed["hubstream"]["format"], listed["hubstream"]["compatibility"]) == ("Avro", "Backward")


def test_a_groups_format_cannot_change_once_it_holds_schemas(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    registry_emulator.client().register_schema(registry_group, unique_name(), user_schema(), "Avro")
    with https(registry_emulator) as http:
        response = http.put(f"/$hubstream/groups/{registry_group}", json={"format": "Json", "compatibility": "None"})
        assert response.status_code == 409 and response.json()["error"]["code"] == "Conflict"
        changed = http.put(f"/$hubstream/groups/{registry_group}", json={"format": "Avro", "compatibility": "None"})
        assert changed.status_code == 200 and changed.json()["compatibility"] == "None"
        invalid = http.put("/$hubstream/groups/bad", json={"format": "Avro", "compatibility": "Sideways"})
        assert invalid.status_code == 400 and "Sideways" in invalid.json()["error"]["message"]


def test_cli_creates_and_lists_groups(registry_emulator: RegistryEmulator) -> None:
    runner = CliRunner()
    target = ["--url", registry_emulator.url, "--ca-file", str(registry_emulator.ca_file)]
    name = f"cli-{uuid.uuid4().hex[:8]}"
    create = ["group", "create", name, "--format", "avro", "--compatibility", "full", *target]
    created = runner.invoke(registry_cli, create)
    assert created.exit_code == 0, created.output
    assert "hubstream extension" in created.output
    listed = runner.invoke(registry_cli, ["group", "list", *target])
    assert listed.exit_code == 0, listed.output
    assert name in listed.output and "Full *" in listed.output


def test_cli_finds_the_emulator_through_stack_json(registry_emulator: RegistryEmulator, tmp_path: Path) -> None:
    StackInfo(
        bootstrap_servers="127.0.0.1:9092",
        schema_registry=registry_emulator.namespace,
        ca_file=registry_emulator.ca_file,
        schema_group=registry_emulator.group,
        producer_url="http://127.0.0.1:8080",
        topics={},
        pid=os.getpid(),
    ).write(tmp_path)
    listed = CliRunner().invoke(registry_cli, ["group", "list", "--state-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert registry_emulator.group in listed.output


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    no_stack = runner.invoke(registry_cli, ["group", "list", "--state-dir", str(tmp_path)])
    assert no_stack.exit_code == 2 and "no local stack found" in no_stack.output
    assert "Traceback" not in no_stack.output
    create = ["group", "create", "g", "--compatibility", "sideways", "--state-dir", str(tmp_path)]
    bad_mode = runner.invoke(registry_cli, create)
    assert bad_mode.exit_code == 2 and "unknown compatibility mode" in bad_mode.output
