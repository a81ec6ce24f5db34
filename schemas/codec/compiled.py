"""One schema compiled: its generated encoder and decoder, and decoding into another schema's shape."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from schemas.codec import runtime as rt
from schemas.codec.decoder import DecoderSource
from schemas.codec.emitter import Emitter
from schemas.codec.encoder import EncoderSource, writer_default
from schemas.model import Field, Record, Schema, parse, parse_text


@dataclass(frozen=True, eq=False)
class CompiledSchema:
    """One parsed schema with its generated ``encode(record) -> bytes`` and ``decode(bytes) -> record``."""

    name: str
    schema: Schema
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    source: str

    @property
    def parsed(self) -> Any:
        """fastavro's parsed form of the schema."""
        return self.schema.parsed

    @property
    def named(self) -> dict[str, Any]:
        return self.schema.named

    @functools.cached_property
    def canonical_form(self) -> str:
        """Avro's Parsing Canonical Form: equal forms decode the same bytes the same way."""
        return str(to_parsing_canonical_form(self.schema.parsed))


def compile_schema(schema: Any) -> CompiledSchema:
    """Generate the encoder and decoder of ``schema``: JSON text, decoded JSON, or a parsed ``Schema``.

    Raises ContractError when the schema is not valid Avro.
    """
    if not isinstance(schema, Schema):
        schema = parse_text(schema) if isinstance(schema, (str, bytes)) else parse(schema)
    emitter = Emitter(schema.named)
    encoder, decoder = EncoderSource(emitter), DecoderSource(emitter)
    root = schema.root
    encode_lines = ["def encode(r):", "    out = bytearray()"]
    decode_lines = ["def decode(data):", "    pos = 0"]
    if isinstance(root, Record):
        encode_lines += encoder.record_body(root, "r", "    ")
        body, result = decoder.record_body(root, "    ")
        decode_lines += body
        decode_lines += ["    if pos != len(data): _check_end(pos, len(data))", f"    return {result}"]
    else:
        encode_lines += encoder.write(root, "r", "    ")
        decode_lines += decoder.read(root, "value", "    ")
        decode_lines += ["    if pos != len(data): _check_end(pos, len(data))", "    return value"]
    encode_lines.append("    return bytes(out)")
    source = emitter.module("\n".join(encode_lines), "\n".join(decode_lines))
    namespace = emitter.namespace
    exec(compile(source, f"<avro codec {schema.name}>", "exec"), namespace)
    return CompiledSchema(schema.name, schema, namespace["encode"], namespace["decode"], source)


def resolving_decoder(writer: CompiledSchema, reader: CompiledSchema) -> Callable[[bytes], Any]:
    """Decode ``writer``'s bytes into ``reader``'s shape: the writer's own decoder when the two are the
    same schema (same Parsing Canonical Form), otherwise fastavro's schema resolution."""
    if reader is writer or reader.canonical_form == writer.canonical_form:
        return writer.decode
    return _Resolution(writer, reader).decode


class _Resolution:
    __slots__ = ("fresh_defaults", "named", "reader", "writer")

    def __init__(self, writer: CompiledSchema, reader: CompiledSchema) -> None:
        self.writer = writer
        self.reader = reader
        self.named = {"writer": writer.named, "reader": reader.named}
        self.fresh_defaults = _added_field_defaults(writer.schema, reader.schema)

    def decode(self, data: bytes) -> Any:
        fo = BytesIO(data)
        record = rt.fastavro_read(fo, self.writer.parsed, self.named, self.reader.parsed, rt.FASTAVRO_READ_OPTIONS)
        if fo.tell() != len(data):
            rt.check_end(fo.tell(), len(data))
        for name, default in self.fresh_defaults:
            # fastavro hands out the schema's own default object: each record gets its own copy
            record[name] = copy.deepcopy(default)
        return record


def _added_field_defaults(writer: Schema, reader: Schema) -> list[tuple[str, Any]]:
    """Top-level reader fields the writer lacks, with their defaults decoded as a written value would be
    (fastavro returns a default as the JSON value: 0, not a datetime, for a timestamp-millis field)."""
    if not (isinstance(writer.root, Record) and isinstance(reader.root, Record)):
        return []
    written = {f.name for f in writer.root.fields}
    out: list[tuple[str, Any]] = []
    for field in reader.root.fields:
        if field.name in written or set(field.aliases) & written or not field.has_default:
            continue
        out.append((field.name, _typed_default(field, reader.named)))
    return out


def _typed_default(field: Field, named: dict[str, Any]) -> Any:
    body = bytearray()
    field_type = field.spec["type"]
    try:
        rt.fastavro_write(body, writer_default(field.default, field.type), field_type, named)
        return rt.fastavro_read(BytesIO(bytes(body)), field_type, {"writer": named, "reader": named}, None, {})
    except Exception:  # noqa: BLE001 - a default fastavro cannot round-trip stays as fastavro gives it
        return field.default
