"""SchemaRegistry: its cache (unit tests with a counting fake client) and its behaviour against the emulator."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.schemaregistry import SchemaRegistryClient

from hubstream.credentials import StaticTokenCredential
from hubstream.errors import ConfigurationError, RegistryError, UnknownSchemaIdError
from hubstream.settings import PACKAGE_SCHEMAS_DIR, RegistrySettings, Settings
from schemas import registry as registry_module
from schemas.contracts import Contract, load_contracts
from schemas.registry import SchemaNotRegisteredError, SchemaRegistry, SingleFlightLru
from tests.fixtures.registry import RegistryEmulator, running_emulator

CHAT = load_contracts(PACKAGE_SCHEMAS_DIR / "avro")["hubstream.chat.ChatResponse"]


# ---- the cache, with a fake client ------------------------------------------------------------------
# FakeClient is a test double for unit tests of the cache only: it counts calls and can be made slow or
# failing. Everything the registry answers for real is tested against the emulator further down.


class FakeClient:
    """TEST DOUBLE: answers like SchemaRegistryClient from a dict, counting every call."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.definitions: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.delay_s = delay_s
        self.fail_next: Exception | None = None
        self.closed = False
        self._lock = threading.Lock()

    def _call(self, what: str) -> None:
        with self._lock:
            self.calls[what] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def get_schema(self, schema_id: str) -> Any:
        self._call(f"get {schema_id}")
        if schema_id not in self.definitions:
            raise ResourceNotFoundError(f"Schema id {schema_id} does not exist.")
        return SimpleNamespace(definition=self.definitions[schema_id])

    def get_schema_properties(self, group: str, name: str, definition: str, fmt: str) -> Any:
        self._call(f"get-id {name}")
        for schema_id, text in self.definitions.items():
            if text == definition:
                return SimpleNamespace(id=schema_id)
        raise ResourceNotFoundError(f"Schema {group}/{name} does not exist.")

    def register_schema(self, group: str, name: str, definition: str, fmt: str) -> Any:
        self._call(f"register {name}")
        schema_id = uuid.uuid5(uuid.NAMESPACE_URL, definition).hex
        self.definitions[schema_id] = definition
        return SimpleNamespace(id=schema_id)

    def close(self) -> None:
        self.closed = True


def fake_registry(cache_size: int = 8, delay_s: float = 0.0) -> tuple[SchemaRegistry, FakeClient]:
    client = FakeClient(delay_s)
    for i in range(20):
        client.definitions[f"id{i}"] = f"schema {i}"
    return SchemaRegistry(client, "g", cache_size=cache_size), client  # type: ignore[arg-type] - a fake SDK client


def test_an_id_is_fetched_once() -> None:
    registry, client = fake_registry()
    assert [registry.schema_by_id("id1") for _ in range(5)] == ["schema 1"] * 5
    assert client.calls["get id1"] == 1


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    registry, client = fake_registry(cache_size=3)
    for i in (0, 1, 2):
        registry.schema_by_id(f"id{i}")
    registry.schema_by_id("id0")  # now the most recently used
    registry.schema_by_id("id3")  # evicts id1
    assert len(registry._definitions) == 3
    registry.schema_by_id("id0")
    registry.schema_by_id("id1")
    assert client.calls["get id0"] == 1
    assert client.calls["get id1"] == 2


def test_concurrent_lookups_of_one_id_make_one_request() -> None:
    registry, client = fake_registry(delay_s=0.2)
    start = threading.Barrier(16)

    def lookup(_: int) -> str:
        start.wait()
        return registry.schema_by_id("id7")

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(lookup, range(16))) == {"schema 7"}
    assert client.calls["get id7"] == 1


def test_many_threads_many_ids_stay_consistent_and_bounded() -> None:
    registry, _ = fake_registry(cache_size=5)

    def lookup(i: int) -> bool:
        return registry.schema_by_id(f"id{i % 20}") == f"schema {i % 20}"

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(lookup, range(2_000)))
    assert len(registry._definitions) <= 5
    assert not registry._definitions._loading


def test_an_unknown_id_is_remembered_for_a_while_then_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    registry, client = fake_registry()
    for _ in range(3):
        with pytest.raises(UnknownSchemaIdError):
            registry.schema_by_id("nope")
    assert client.calls["get nope"] == 1

    monkeypatch.setattr(registry_module, "UNKNOWN_ID_RETRY_S", 0.0)
    registry2, client2 = fake_registry()
    for _ in range(2):
        with pytest.raises(UnknownSchemaIdError):
            registry2.schema_by_id("nope")
    assert client2.calls["get nope"] == 2


def test_registry_failures_are_not_cached() -> None:
    registry, client = fake_registry()
    client.fail_next = ServiceRequestError("connection refused")
    with pytest.raises(RegistryError, match="cannot reach schema registry"):
        registry.schema_by_id("id2")
    assert registry.schema_by_id("id2") == "schema 2"
    assert client.calls["get id2"] == 2


def test_a_server_error_says_what_to_do() -> None:
    registry, client = fake_registry()
    error = HttpResponseError("boom")
    error.status_code = 503
    client.fail_next = error
    with pytest.raises(RegistryError, match=r"answered 503 .* Retry later"):
        registry.schema_by_id("id3")


def test_schema_ids_are_cached_per_name_and_text() -> None:
    registry, client = fake_registry()
    registry.register(CHAT)
    other = Contract.from_text(CHAT.text.replace("One chunk", "A chunk"))
    for _ in range(3):
        assert registry.schema_id(CHAT) == registry.register(CHAT)
    with pytest.raises(SchemaNotRegisteredError, match="hubstream provision"):
        registry.schema_id(other)
    assert client.calls["get-id hubstream.chat.ChatResponse"] == 1  # only for `other`: register cached CHAT's id


def test_single_flight_lru_refuses_a_size_below_one() -> None:
    with pytest.raises(ConfigurationError):
        SingleFlightLru(0)


# ---- against the emulator ---------------------------------------------------------------------------


@pytest.fixture
def live(registry_emulator: RegistryEmulator, registry_group: str) -> SchemaRegistry:
    return SchemaRegistry(registry_emulator.client(), registry_group)


def test_register_is_idempotent_and_ids_resolve_to_the_text(live: SchemaRegistry) -> None:
    schema_id = live.register(CHAT)
    assert live.register(CHAT) == schema_id
    assert live.schema_id(CHAT) == schema_id
    assert live.schema_by_id(schema_id) == CHAT.text


def test_unknown_and_malformed_ids_raise_unknown_schema_id_error(live: SchemaRegistry) -> None:
    for schema_id in (uuid.uuid4().hex, "not-an-id"):
        with pytest.raises(UnknownSchemaIdError) as caught:
            live.schema_by_id(schema_id)
        assert caught.value.schema_id == schema_id


def test_an_unregistered_contract_says_to_provision(live: SchemaRegistry) -> None:
    with pytest.raises(SchemaNotRegisteredError, match="not registered in schema group"):
        live.schema_id(CHAT)


def test_each_id_is_fetched_once_from_many_threads(live: SchemaRegistry) -> None:
    schema_id = live.register(CHAT)
    fetches = Counter[str]()
    real_get = live.client.get_schema

    def counting_get(*args: Any, **kwargs: Any) -> Any:  # a spy around the real client, not a fake
        fetches[args[0]] += 1
        return real_get(*args, **kwargs)

    live.client.get_schema = counting_get  # type: ignore[method-assign] - a spy on one method
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: live.schema_by_id(schema_id), range(64))) == {CHAT.text}
    assert fetches[schema_id] == 1


def test_from_settings_talks_to_the_emulator(registry_emulator: RegistryEmulator, registry_group: str) -> None:
    settings = Settings(
        registry=RegistrySettings(
            namespace=registry_emulator.namespace,
            ca_file=registry_emulator.ca_file,
            group=registry_group,
            id_cache_size=16,
        )
    )
    with SchemaRegistry.from_settings(settings) as registry:
        assert registry.group == registry_group
        assert registry.cache_size == 16
        assert registry.schema_by_id(registry.register(CHAT)) == CHAT.text


def test_from_settings_needs_a_namespace() -> None:
    with pytest.raises(ConfigurationError, match="HUBSTREAM_REGISTRY__NAMESPACE is not set"):
        SchemaRegistry.from_settings(Settings(registry=RegistrySettings(namespace=None)))
    with pytest.raises(ConfigurationError, match="without a scheme"):
        SchemaRegistry.from_settings(Settings(registry=RegistrySettings(namespace="https://localhost:1")))
    with pytest.raises(ConfigurationError, match="does not exist"):
        SchemaRegistry.from_settings(
            Settings(registry=RegistrySettings(namespace="localhost:1", ca_file=Path("/nope.pem")))
        )


def test_from_settings_takes_the_event_hubs_namespace_from_the_connection_string() -> None:
    settings = Settings(
        profile="eventhubs",
        eventhubs={
            "connection_string": "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s"
        },
        registry=RegistrySettings(credential="static"),
    )
    with SchemaRegistry.from_settings(settings) as registry:
        assert registry.namespace == "ns1.servicebus.windows.net"


def test_an_unreachable_registry_raises_registry_error_naming_the_settings(tmp_path: Path) -> None:
    client = SchemaRegistryClient("localhost:9", StaticTokenCredential("t"), retry_total=0)
    with SchemaRegistry(client, "g") as registry, pytest.raises(RegistryError, match="HUBSTREAM_REGISTRY__NAMESPACE"):
        registry.schema_by_id(uuid.uuid4().hex)


def test_a_refused_token_raises_registry_error_naming_the_token_setting(tmp_path: Path) -> None:
    with running_emulator(tmp_path, extra_args=["--auth-token", "right-token"]) as emulator:
        client = emulator.client(token="wrong-token", retry_total=0)
        with (
            SchemaRegistry(client, emulator.group) as registry,
            pytest.raises(RegistryError, match="HUBSTREAM_REGISTRY__TOKEN"),
        ):
            registry.register(CHAT)


def test_a_refused_registration_says_why(live: SchemaRegistry, registry_emulator: RegistryEmulator) -> None:
    live.register(CHAT)
    incompatible = Contract.from_text(
        CHAT.text.replace('"name":"sequence","type":"long"', '"name":"sequence","type":"string"')
    )
    with pytest.raises(RegistryError, match="compatibility"):
        live.register(incompatible)

    elsewhere = SchemaRegistry(registry_emulator.client(), f"no-such-group-{uuid.uuid4().hex[:8]}")
    with elsewhere, pytest.raises(RegistryError, match="HUBSTREAM_REGISTRY__GROUP"):
        elsewhere.register(CHAT)
