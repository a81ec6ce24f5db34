"""Avro record values in the Kafka wire format of Microsoft's Java and .NET serializers for Azure Schema Registry.

A record value is the **raw Avro binary** of the record (no magic byte, no schema id in the bytes), and the
record carries the Kafka header ``content-type`` whose value is the ASCII text ``avro/binary+<schema id>``.
That is what ``KafkaAvroSerializer`` (Java, .NET) writes, and the bytes equal azure-schemaregistry-avroencoder's
``AvroEncoder.encode`` output (``content`` / ``content_type``). The framing itself (header value, legacy
prefix) is defined once, in ``schemas.wire``; the Avro bodies come from ``schemas.codec``.

Decoding rules, in order:

1. **Which header.** Header keys are matched exactly (``content-type``, as Java's and .NET's deserializers
   do). If a record has several, **the last one wins**: Java's ``KafkaProducer`` serializes the key before
   the value into the same headers, so when a Java key serializer also adds ``content-type`` it comes
   first and the value's comes last; Microsoft's deserializers read ``lastHeader("content-type")`` too.
   Header values may be ``bytes`` (confluent-kafka) or ``str``.
2. **The header's value** must be ``<mime>+<schema id>`` with exactly one ``+``, the MIME type
   ``avro/binary`` compared case-insensitively (as Java does; AvroEncoder is case-sensitive) and a
   non-empty id. Anything else is an ``UndecodableRecordError``: with a header present, the value is
   never sniffed for the legacy format below.
3. **No ``content-type`` header: the legacy format** the Java serializer wrote until August 2022. The
   value is 4 zero bytes, the 32 ASCII characters of the schema id, then the Avro body. A value without
   the header that does not start that way is an ``UndecodableRecordError``.
4. The id is resolved through ``SchemaRegistry`` (cached); an id the registry does not know is an
   ``UnknownSchemaIdError``. With a ``reader`` schema the record is resolved into the reader's shape
   (Avro schema resolution: fields the reader added get their defaults, fields it dropped are skipped).

A null value (a tombstone) is not an event: decoding it raises ``UndecodableRecordError``.

Every decoding error carries ``value`` and ``headers`` (and ``schema_id`` when known), so a consumer can
send the record to a dead-letter topic without re-reading it. ``RegistryError`` (registry unreachable)
is not the record's fault and carries nothing: retry or stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from hubstream.errors import ContractError, EventValidationError, UndecodableRecordError, UnknownSchemaIdError
from schemas.codec import CompiledSchema, compile_schema, problems, resolving_decoder
from schemas.contracts import Contract
from schemas.registry import SchemaRegistry
from schemas.wire import (
    AVRO_MIME_TYPE,
    CONTENT_TYPE,
    LEGACY_ID_SIZE,
    content_type,
    legacy_body,
    legacy_schema_id,
    schema_id_of_content_type,
)

Headers = list[tuple[str, bytes | str | None]]
Format = Literal["header", "legacy"]


class EncodedValue(NamedTuple):
    """What to produce: ``value`` and ``headers`` as confluent-kafka's ``produce`` takes them."""

    value: bytes
    headers: list[tuple[str, bytes]]
    schema_id: str


class DecodedValue(NamedTuple):
    record: Any
    schema_id: str
    writer_schema_name: str
    format: Format
    body: bytes  # the plain Avro body, without the legacy format's id prefix


_new = tuple.__new__  # builds the NamedTuples above without their Python-level __new__ (hot path)
_NO_HEADER = object()
_READERS_PER_SCHEMA = 64


class _Writer(NamedTuple):
    encode: Callable[[Any], bytes]
    header: tuple[str, bytes]
    schema_id: str
    compiled: CompiledSchema
    contract_name: str


class _Plan(NamedTuple):
    """How to decode the records written with one schema id; ``readers`` maps a reader to its decoder."""

    schema_id: str
    name: str
    decode: Callable[[bytes], Any]
    readers: dict[Any, tuple[Any, Callable[[bytes], Any]]]
    compiled: CompiledSchema


class AvroSerde:
    """Encode records to, and decode them from, the Azure Schema Registry Kafka wire format.

    Thread-safe. Its caches (compiled schemas, header values, readers) are bounded by ``cache_size``,
    by default the registry's.
    """

    def __init__(self, registry: SchemaRegistry, *, cache_size: int | None = None) -> None:
        self.registry = registry
        self._max = cache_size or registry.cache_size
        self._writers: dict[str, _Writer] = {}
        self._plans: dict[Any, _Plan] = {}
        self._compiled: dict[str, CompiledSchema] = {}
        self._lock = threading.Lock()

    # ---- encoding -------------------------------------------------------------------------------------

    def encode(self, record: Mapping[str, Any], contract: Contract) -> EncodedValue:
        """The record's Avro body and its ``content-type`` header; raises EventValidationError if it does not fit."""
        writer = self._writers.get(contract.text)
        if writer is None:
            writer = self._writer(contract)
        encode, header, schema_id, _, _ = writer
        try:
            body = encode(record)
        except Exception as exc:
            raise self._invalid(record, writer, exc) from exc
        return _new(EncodedValue, (body, [header], schema_id))

    def _writer(self, contract: Contract) -> _Writer:
        schema_id = self.registry.schema_id(contract)
        compiled = self._compile(contract.text, contract.schema)
        header = (CONTENT_TYPE, content_type(schema_id))
        writer = _Writer(compiled.encode, header, schema_id, compiled, contract.name)
        self._remember(self._writers, contract.text, writer)
        # our own records then decode without asking the registry for the definition
        if header[1] not in self._plans:
            self._remember(self._plans, header[1], _plan(schema_id, compiled))
        return writer

    def _invalid(self, record: Any, writer: _Writer, error: Exception) -> EventValidationError:
        compiled = writer.compiled
        found = problems(record, compiled.schema.root)
        if not found:
            found = [("$", f"{type(error).__name__}: {error}")]
        return EventValidationError(writer.contract_name, found)

    # ---- decoding -------------------------------------------------------------------------------------

    def decodes_offline(self, headers: Sequence[tuple[str, bytes | str | None]] | None) -> bool:
        """Whether a record with these headers decodes without asking the registry: its content-type names a
        schema id decoded before. False for the legacy format and anything else (those may need a lookup)."""
        for key, header_value in headers or ():
            if key == CONTENT_TYPE:
                return header_value in self._plans
        return False

    def decode(
        self,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | str | None]] | Mapping[str, Any] | None,
        reader: Contract | dict[str, Any] | None = None,
    ) -> DecodedValue:
        """Decode one record value; ``reader`` resolves it into that schema's shape (defaults applied)."""
        raw: Any = _NO_HEADER
        if headers:
            for key, header_value in headers if type(headers) is list else _pairs(headers):
                if key == CONTENT_TYPE:
                    raw = header_value
        if raw is _NO_HEADER or type(value) is not bytes:
            return self._decode_other(value, headers, reader, raw)
        plan = self._plans.get(raw)
        if plan is None:
            plan = self._plan_for_header(raw, value, headers)
        # _decode_body inlined: the path every record takes
        if reader is None:
            decode = plan[2]
        elif type(reader) is Contract and (entry := plan[3].get(reader.text)) is not None:
            decode = entry[1]
        else:
            decode = self._decoder(plan, reader)
        try:
            return _new(DecodedValue, (decode(value), plan[0], plan[1], "header", value))
        except Exception as exc:
            raise _body_error(exc, plan, value, headers, reader) from exc

    def _decode_body(
        self, plan: _Plan, body: bytes, value: Any, headers: Any, reader: Any, kind: Format
    ) -> DecodedValue:
        if reader is None:
            decode = plan[2]
        elif type(reader) is Contract and (entry := plan[3].get(reader.text)) is not None:
            decode = entry[1]
        else:
            decode = self._decoder(plan, reader)
        try:
            return _new(DecodedValue, (decode(body), plan[0], plan[1], kind, body))
        except Exception as exc:
            raise _body_error(exc, plan, value, headers, reader) from exc

    def _decode_other(self, value: Any, headers: Any, reader: Any, raw: Any) -> DecodedValue:
        """Tombstones, values that are not ``bytes``, and the legacy format (no content-type header)."""
        if value is None:
            raise UndecodableRecordError(
                "the record has no value (a tombstone); there is no event to decode", value=value, headers=headers
            )
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise UndecodableRecordError(
                f"the record value is a {type(value).__name__}, not bytes", value=value, headers=headers
            )
        body = value if type(value) is bytes else bytes(value)
        if raw is not _NO_HEADER:
            plan = self._plans.get(raw) if isinstance(raw, (bytes, str)) else None
            if plan is None:
                plan = self._plan_for_header(raw, value, headers)
            return self._decode_body(plan, body, value, headers, reader, "header")
        schema_id = self._legacy_id(body, value, headers)
        plan = self._plans.get(("legacy", schema_id))
        if plan is None:
            plan = self._plan_for_id(schema_id, value, headers)
            self._remember(self._plans, ("legacy", schema_id), plan)
        return self._decode_body(plan, legacy_body(body), value, headers, reader, "legacy")

    def _legacy_id(self, body: bytes, value: Any, headers: Any) -> str:
        schema_id = legacy_schema_id(body)
        if schema_id is not None:
            return schema_id
        near = sorted({str(k) for k, _ in _pairs(headers or []) if str(k).lower() == CONTENT_TYPE})
        hint = f" (there is a {near[0]!r} header, but header keys are case-sensitive)" if near else ""
        raise UndecodableRecordError(
            f"the record has no {CONTENT_TYPE} header{hint} and its value is not in the legacy format "
            f"(4 zero bytes, a {LEGACY_ID_SIZE}-character schema id, then Avro); expected the header "
            f"{CONTENT_TYPE}: {AVRO_MIME_TYPE}+<schema id> as Microsoft's Kafka Avro serializers write it",
            value=value,
            headers=headers,
        )

    def _plan_for_header(self, raw: Any, value: Any, headers: Any) -> _Plan:
        schema_id = _parse_content_type(raw, value, headers)
        plan = self._plan_for_id(schema_id, value, headers)
        self._remember(self._plans, bytes(raw) if isinstance(raw, (bytearray, memoryview)) else raw, plan)
        return plan

    def _plan_for_id(self, schema_id: str, value: Any, headers: Any) -> _Plan:
        try:
            definition = self.registry.schema_by_id(schema_id)
        except UnknownSchemaIdError as exc:
            raise UnknownSchemaIdError(schema_id, value=value, headers=headers) from exc
        try:
            compiled = self._compile(definition)
        except Exception as exc:
            raise UndecodableRecordError(
                f"schema id {schema_id} is not an Avro schema this serde can read: {type(exc).__name__}: {exc}",
                value=value,
                headers=headers,
                schema_id=schema_id,
            ) from exc
        return _plan(schema_id, compiled)

    def _compile(self, text: str, schema: Any = None) -> CompiledSchema:
        """One compiled codec per schema text: a contract and the registry's copy of it share one."""
        compiled = self._compiled.get(text)
        if compiled is None:
            compiled = compile_schema(text if schema is None else schema)
            self._remember(self._compiled, text, compiled)
        return compiled

    # ---- reader schemas -------------------------------------------------------------------------------

    def _decoder(self, plan: _Plan, reader: Contract | dict[str, Any]) -> Callable[[bytes], Any]:
        """The decoder for this writer and reader: the writer's own when they are the same schema."""
        if isinstance(reader, Contract):
            key: Any = reader.text
            entry = plan.readers.get(key)
        else:
            key = id(reader)
            entry = plan.readers.get(key)
            if entry is not None and entry[0] is not reader:  # another dict that got the same id
                entry = None
        if entry is None:
            entry = (reader, self._resolve(plan.compiled, reader))
            with self._lock:
                if len(plan.readers) >= _READERS_PER_SCHEMA:
                    plan.readers.clear()
                plan.readers[key] = entry
        return entry[1]

    def _resolve(self, writer: CompiledSchema, reader: Contract | dict[str, Any]) -> Callable[[bytes], Any]:
        if isinstance(reader, Contract):
            compiled = self._compile(reader.text, reader.schema)
        else:
            try:
                compiled = compile_schema(reader)
            except Exception as exc:
                raise ContractError(f"the reader schema is not valid Avro: {type(exc).__name__}: {exc}") from exc
        return resolving_decoder(writer, compiled)

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            while len(cache) >= self._max:
                cache.pop(next(iter(cache)), None)
            cache[key] = value


def _plan(schema_id: str, compiled: CompiledSchema) -> _Plan:
    return _Plan(schema_id, compiled.name, compiled.decode, {}, compiled)


def _pairs(headers: Any) -> Any:
    return headers.items() if isinstance(headers, Mapping) else headers


def _parse_content_type(raw: Any, value: Any, headers: Any) -> str:
    expected = f"expected the header {CONTENT_TYPE}: {AVRO_MIME_TYPE}+<schema id>"
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            text = bytes(raw).decode("ascii")
        except UnicodeDecodeError:
            raise UndecodableRecordError(
                f"the {CONTENT_TYPE} header is not ASCII text ({bytes(raw)[:60]!r}); {expected}",
                value=value,
                headers=headers,
            ) from None
    elif isinstance(raw, str):
        text = raw
    else:
        what = "has no value" if raw is None else f"is a {type(raw).__name__}, not bytes or text"
        raise UndecodableRecordError(f"the {CONTENT_TYPE} header {what}; {expected}", value=value, headers=headers)
    schema_id = schema_id_of_content_type(text)
    if schema_id is None:
        raise UndecodableRecordError(
            f"the {CONTENT_TYPE} header is {text[:80]!r}, not an Azure Schema Registry Avro content type; {expected}",
            value=value,
            headers=headers,
        )
    return schema_id


def _body_error(error: Exception, plan: _Plan, value: Any, headers: Any, reader: Any) -> UndecodableRecordError:
    read_as = ""
    if reader is not None:
        read_as = f" read as {reader.name if isinstance(reader, Contract) else reader.get('name', '?')}"
    return UndecodableRecordError(
        f"the Avro body does not decode as {plan.name} (schema id {plan.schema_id}){read_as}: "
        f"{type(error).__name__}: {error}",
        value=value,
        headers=headers,
        schema_id=plan.schema_id,
    )


__all__ = [
    "AvroSerde",
    "DecodedValue",
    "EncodedValue",
]
