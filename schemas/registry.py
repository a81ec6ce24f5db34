"""A thin, cached, thread-safe wrapper over azure-schemaregistry's ``SchemaRegistryClient``.

Schema ids and definitions never change once the registry has issued them, so both lookups are cached
for the life of the process in bounded LRUs. Concurrent lookups of the same key make one request: the
other threads wait for its answer (the consumer and the producer API call in from worker threads).

Errors, by what the caller should do:

- ``UnknownSchemaIdError``: the registry has no schema with this id (404, or 400 for an id it cannot
  parse). The record is at fault, not the registry: dead-letter it. Remembered for
  ``UNKNOWN_ID_RETRY_S`` so a burst of such records does not hammer the registry.
- ``SchemaNotRegisteredError`` (a ``RegistryError``): a contract was never registered; run provisioning.
- ``RegistryError``: the registry is unreachable, refused the credential or failed; the message says
  which setting to check. Nothing is cached, so a retry asks again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.schemaregistry import SchemaRegistryClient

from hubstream.credentials import registry_credential
from hubstream.errors import ConfigurationError, RegistryError, UnknownSchemaIdError
from hubstream.settings import Settings
from schemas.contracts import Contract

AVRO_FORMAT = "Avro"
# How long an id the registry denied stays denied before the next record with it asks again.
UNKNOWN_ID_RETRY_S = 30.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SchemaNotRegisteredError(RegistryError):
    """A contract's exact text is not registered under its name in the group."""

    def __init__(self, contract_name: str, group: str) -> None:
        self.contract_name = contract_name
        self.group = group
        super().__init__(
            f"schema {contract_name} is not registered in schema group {group!r} with this exact text; "
            "register the contracts first (`hubstream provision`, which `hubstream dev` runs for you)"
        )


class _Denied:
    """A cached refusal: the error to raise again until ``until`` (monotonic seconds)."""

    __slots__ = ("error", "until")

    def __init__(self, error: Exception, until: float) -> None:
        self.error = error
        self.until = until


def _denial(error: BaseException, deny_for: Callable[[Exception], float | None] | None) -> _Denied | None:
    """The refusal to cache for a failed load, if ``deny_for`` says to (never for a BaseException such as a
    KeyboardInterrupt)."""
    if deny_for is None or not isinstance(error, Exception):
        return None
    ttl = deny_for(error)
    return _Denied(error, time.monotonic() + ttl) if ttl else None


class SingleFlightLru(Generic[K, V]):
    """A bounded LRU whose misses are loaded once, however many threads ask at the same time."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ConfigurationError(
                f"a cache size must be at least 1 (got {max_size}); check HUBSTREAM_REGISTRY__ID_CACHE_SIZE"
            )
        self.max_size = max_size
        self._entries: OrderedDict[K, V | _Denied] = OrderedDict()
        self._loading: dict[K, Future[V]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K, load: Callable[[], V], deny_for: Callable[[Exception], float | None] | None = None) -> V:
        """The cached value, or ``load()``'s, stored. ``deny_for(error)`` > 0 caches that error as long."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if not isinstance(entry, _Denied):
                    self._entries.move_to_end(key)
                    return entry
                if entry.until > time.monotonic():
                    raise entry.error
                del self._entries[key]
            future = self._loading.get(key)
            leader = future is None
            if leader:
                future = self._loading[key] = Future()
        assert future is not None
        if not leader:
            return future.result()
        try:
            value = load()
        except BaseException as exc:
            denied = _denial(exc, deny_for)
            with self._lock:
                del self._loading[key]
                if denied is not None:
                    self._store(key, denied)
            future.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            self._store(key, value)
        future.set_result(value)
        return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._store(key, value)

    def _store(self, key: K, value: V | _Denied) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)


class SchemaRegistry:
    """Register contracts and resolve schema ids in one schema group, caching every answer."""

    def __init__(self, client: SchemaRegistryClient, group: str, cache_size: int = 1024) -> None:
        self.client = client
        self.group = group
        self._ids: SingleFlightLru[tuple[str, str], str] = SingleFlightLru(cache_size)
        self._definitions: SingleFlightLru[str, str] = SingleFlightLru(cache_size)
        self.cache_size = cache_size
        config = getattr(getattr(client, "_generated_client", None), "_config", None)
        self.namespace = str(getattr(config, "fully_qualified_namespace", "(unknown namespace)"))

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaRegistry:
        """A registry for ``settings.registry``; for Event Hubs the namespace defaults to the connection string's."""
        reg = settings.registry
        namespace = reg.namespace
        if not namespace and settings.profile == "eventhubs":
            from hubstream.kafka_config import eventhubs_connection

            namespace = eventhubs_connection(settings).fully_qualified_namespace
        if not namespace:
            raise ConfigurationError(
                "HUBSTREAM_REGISTRY__NAMESPACE is not set: give the schema registry's host[:port] "
                "(e.g. <namespace>.servicebus.windows.net); for the local stack start `hubstream dev`, "
                "whose stack.json commands read it from"
            )
        if "://" in namespace:
            raise ConfigurationError(
                f"HUBSTREAM_REGISTRY__NAMESPACE must be a bare host[:port], without a scheme (got {namespace!r})"
            )
        kwargs: dict[str, Any] = {"connection_timeout": reg.timeout_s, "read_timeout": reg.timeout_s}
        if reg.ca_file is not None:
            if not reg.ca_file.exists():
                raise ConfigurationError(f"HUBSTREAM_REGISTRY__CA_FILE {reg.ca_file} does not exist")
            kwargs["connection_verify"] = str(reg.ca_file)
        client = SchemaRegistryClient(namespace, registry_credential(settings), **kwargs)
        return cls(client, reg.group, cache_size=reg.id_cache_size)

    def register(self, contract: Contract) -> str:
        """Register the contract's text under its full name; returns its schema id.

        Idempotent: registering the text of the latest version again returns that version's id.
        """
        try:
            properties = self.call(
                lambda: self.client.register_schema(self.group, contract.name, contract.text, AVRO_FORMAT),
                f"register {contract.name} in group {self.group!r}",
            )
        except _NotFoundError as exc:
            raise RegistryError(
                f"schema group {self.group!r} does not exist in {self.namespace}: create it (Azure portal: "
                "Event Hubs namespace > Schema Registry) or set HUBSTREAM_REGISTRY__GROUP to an existing one; "
                f"the registry said: {_first_line(exc.__cause__)}"
            ) from exc.__cause__
        self._ids.put((contract.name, contract.text), properties.id)
        return str(properties.id)

    def schema_id(self, contract: Contract) -> str:
        """The id the registry gave this exact contract text (looked up once, then cached)."""
        return self._ids.get((contract.name, contract.text), lambda: self._lookup_id(contract))

    def schema_by_id(self, schema_id: str) -> str:
        """The schema definition (text) behind an id, fetched once per id while it stays cached."""
        return self._definitions.get(schema_id, lambda: self._fetch(schema_id), _deny_unknown)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _lookup_id(self, contract: Contract) -> str:
        try:
            properties = self.call(
                lambda: self.client.get_schema_properties(self.group, contract.name, contract.text, AVRO_FORMAT),
                f"look up the id of {contract.name} in group {self.group!r}",
            )
        except _NotFoundError:
            raise SchemaNotRegisteredError(contract.name, self.group) from None
        return str(properties.id)

    def _fetch(self, schema_id: str) -> str:
        try:
            schema = self.call(lambda: self.client.get_schema(schema_id), f"fetch schema id {schema_id!r}")
        except _NotFoundError:
            raise UnknownSchemaIdError(schema_id) from None
        except RegistryError as exc:
            if isinstance(exc.__cause__, HttpResponseError) and exc.__cause__.status_code == 400:
                # the registry cannot parse the id: no schema will ever have it
                raise UnknownSchemaIdError(schema_id) from exc.__cause__
            raise
        return str(schema.definition)

    def call(self, request: Callable[[], Any], action: str) -> Any:
        """Run one SDK request, turning Azure errors into RegistryError messages that name `action`."""
        try:
            return request()
        except ResourceNotFoundError as exc:
            raise _NotFoundError() from exc
        except ClientAuthenticationError as exc:
            raise RegistryError(
                f"schema registry {self.namespace} refused the credential when trying to {action}: {_first_line(exc)}. "
                "Locally, check HUBSTREAM_REGISTRY__TOKEN matches the emulator's; on Azure, sign in "
                "(az login / managed identity) and hold the Schema Registry Reader or Contributor role"
            ) from exc
        except ServiceRequestError as exc:
            raise RegistryError(
                f"cannot reach schema registry {self.namespace} to {action}: {_first_line(exc)}. "
                "Check HUBSTREAM_REGISTRY__NAMESPACE (host[:port]) and, for a private CA such as the local "
                "emulator's, HUBSTREAM_REGISTRY__CA_FILE; locally, is `hubstream dev` running?"
            ) from exc
        except HttpResponseError as exc:
            raise RegistryError(
                f"schema registry {self.namespace} answered {exc.status_code} when trying to {action}: "
                f"{_first_line(exc)}. {_advice(exc.status_code)}"
            ) from exc
        except AzureError as exc:
            raise RegistryError(f"schema registry {self.namespace} failed to {action}: {_first_line(exc)}") from exc


class _NotFoundError(Exception):
    """Internal: the registry answered 404; each caller says what was not found."""


def _deny_unknown(error: Exception) -> float | None:
    return UNKNOWN_ID_RETRY_S if isinstance(error, UnknownSchemaIdError) else None


def _advice(status: int | None) -> str:
    if status == 403:
        return "The identity needs the Schema Registry Reader (or Contributor, to register) role on the namespace"
    if status in (400, 409, 415):
        return (
            "The registry refused the request: a schema change the group's compatibility rule forbids, or a "
            "group that does not take Avro (check HUBSTREAM_REGISTRY__GROUP)"
        )
    return "Retry later: the registry failed or is overloaded"


def _first_line(error: BaseException | None) -> str:
    text = str(getattr(error, "message", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
