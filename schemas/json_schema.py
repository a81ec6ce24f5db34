"""The JSON Schema of an Avro contract's events in natural JSON, and an example event, for OpenAPI documents.

Both come from the natural-JSON converter's own compiled nodes (``schemas.natural``), the rules the producer API
validates with, so the schema says what the API accepts rather than what Avro's JSON encoding would be:

    int, long        integer within the type's range
    float, double    a number within range, or "NaN", "Infinity", "-Infinity"
    bytes, fixed     base64 (standard or URL-safe, padding optional); a fixed of exactly its size
    enum             one of the symbols
    map              an object with any keys
    record           an object of its fields; a field with a default may be left out; no other keys
    union            a value of one branch, or Avro's wrapper ``{"<branch>": value}``
    timestamp-*      an ISO-8601 date-time string, or epoch milli/microseconds within years 1 to 9999
    date             "YYYY-MM-DD", or days since 1970-01-01 within years 1 to 9999
    time-*           "HH:MM[:SS[.fff]]", or milli/microseconds since midnight
    uuid             the 8-4-4-4-12 hexadecimal form
    decimal          a decimal string or a number

Every record is a definition of its own (records may be recursive), referred to as ``<prefix><full name>``:
``#/$defs/`` in a standalone schema, ``#/components/schemas/`` in an OpenAPI document.

The schema never refuses what the API takes; it takes a few things the API then refuses (422), where JSON
Schema cannot say it: calendar dates that do not exist (``2024-02-30``), ``1.0`` for an integer, too many
digits in a decimal, lone surrogates, and a plain value that fits several union branches of different kinds
(the API wants the wrapper then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from schemas import model as m
from schemas.natural import NaturalJson
from schemas.natural.composite import ArrayNode, MapNode, RecordNode, UnionNode
from schemas.natural.logical import DateNode, DecimalNode, TimeNode, TimestampNode, UuidNode
from schemas.natural.nodes import Node
from schemas.natural.scalars import (
    BooleanNode,
    BytesNode,
    EnumNode,
    FixedNode,
    FloatingNode,
    IntegerNode,
    NullNode,
    StringNode,
)

JsonSchema = dict[str, Any]
DEFS = "#/$defs/"

_B64 = "[A-Za-z0-9+/_-]"
# what the natural bytes rule decodes: full groups of four, then 2 or 3 characters, padding optional
_BASE64 = rf"^(?:(?:{_B64}{{4}})*(?:{_B64}{{2}}={{0,2}}|{_B64}{{3}}=?)|(?:{_B64}{{4}})+={{0,2}})?$"
_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_DAY = f"{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]+)?)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)"
_DATE_TIME = f"^{_DAY}[Tt ]{_CLOCK}{_OFFSET}?$"
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_DECIMAL = "^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_FLOAT_MAX = 3.4028234663852886e38
_DOUBLE_MAX = 1.7976931348623157e308
_NON_FINITE: JsonSchema = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
# datetime's range, which natural JSON's timestamps and dates keep to
_FIRST = datetime(1, 1, 1)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999_999)
_EPOCH = datetime(1970, 1, 1)

# the example's values for types whose natural form is a string with a shape
_EXAMPLE_MOMENT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_EXAMPLE_UUID = "123e4567-e89b-12d3-a456-426614174000"


@dataclass(frozen=True)
class EventSchema:
    """A contract's event schema: ``definitions`` holds every record by full name, the root (``name``) among them."""

    name: str
    definitions: dict[str, JsonSchema]
    ref_prefix: str

    @property
    def ref(self) -> JsonSchema:
        return {"$ref": self.ref_prefix + self.name}

    def standalone(self) -> JsonSchema:
        """One JSON Schema (2020-12) document; only with the default prefix, whose references point into it."""
        if self.ref_prefix != DEFS:
            raise ValueError(f"a standalone schema needs the prefix {DEFS!r}, not {self.ref_prefix!r}")
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **self.ref, "$defs": self.definitions}


class _Rules(NaturalJson):
    """The converter's compiled nodes: the natural-JSON rules the API validates events with."""

    @property
    def root(self) -> Node:
        return self._root


def event_schema(schema: Any, *, ref_prefix: str = DEFS) -> EventSchema:
    """The natural-JSON schema of events of ``schema``, an Avro record schema as JSON (``Contract.schema``)."""
    model = m.parse(schema)
    if not isinstance(model.root, m.Record):
        raise ValueError(f"an event schema is an Avro record, not {m.kind_of(model.root)}")
    builder = _SchemaBuilder(model, ref_prefix)
    builder.schema(_Rules(schema).root)
    return EventSchema(model.root.fullname, builder.definitions, ref_prefix)


def example_event(schema: Any) -> Any:
    """An event of ``schema`` in natural JSON, the same on every call: a field's default when it has one that is not
    empty (``""``, ``[]``, ``{}``, null), else a plain value of its type (one item in an array or a map)."""
    rules = _Rules(schema)
    return rules.to_json(_Sampler(m.parse(schema)).sample(rules.root, "event", frozenset()))


class _SchemaBuilder:
    def __init__(self, model: m.Schema, ref_prefix: str) -> None:
        self.model = model
        self.ref_prefix = ref_prefix
        self.definitions: dict[str, JsonSchema] = {}

    def schema(self, node: Node) -> JsonSchema:
        if isinstance(node, RecordNode):
            return self.record(node)
        if isinstance(node, UnionNode):
            return self.union(node)
        if isinstance(node, ArrayNode):
            return {"type": "array", "items": self.schema(node.items)}
        if isinstance(node, MapNode):
            return {"type": "object", "additionalProperties": self.schema(node.values)}
        if isinstance(node, EnumNode):
            return self.enum(node)
        return _leaf(node)

    def record(self, node: RecordNode) -> JsonSchema:
        ref = {"$ref": self.ref_prefix + node.wrap_name}
        if node.wrap_name in self.definitions:
            return ref
        definition: JsonSchema = {"type": "object", "title": node.wrap_name}
        self.definitions[node.wrap_name] = definition  # before its fields, which may refer to it
        record = self.model.types[node.wrap_name]
        assert isinstance(record, m.Record)
        _describe(definition, record.spec)
        properties: dict[str, JsonSchema] = {}
        for field, spec in zip(node.fields, record.fields, strict=True):
            prop = dict(self.schema(field.node))
            _describe(prop, spec.spec)
            if field.has_default:
                prop["default"] = field.node.dump(field.default_datum)
            properties[field.name] = prop
        definition["properties"] = properties
        required = [field.name for field in node.fields if not field.has_default]
        if required:
            definition["required"] = required
        definition["additionalProperties"] = False
        return ref

    def union(self, node: UnionNode) -> JsonSchema:
        plain = [self.schema(branch) for branch in node.branches]
        wrapper: JsonSchema = {
            "type": "object",
            "title": "union wrapper",
            "description": 'Avro\'s union form: {"<branch type>": value} picks the branch',
            "properties": {key: self.schema(branch) for key, branch in node.by_key.items()},
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
        }
        return {"anyOf": [*plain, wrapper]}

    def enum(self, node: EnumNode) -> JsonSchema:
        enum = self.model.types[node.wrap_name]
        assert isinstance(enum, m.Enum)
        schema: JsonSchema = {"type": "string", "title": node.wrap_name, "enum": list(enum.symbols)}
        _describe(schema, enum.spec)
        return schema


def _describe(schema: JsonSchema, spec: Any) -> None:
    doc = spec.get("doc") if isinstance(spec, dict) else None
    if isinstance(doc, str) and doc:
        schema["description"] = doc


def _leaf(node: Node) -> JsonSchema:
    """The schema of a node that holds no other."""
    if isinstance(node, NullNode):
        return {"type": "null"}
    if isinstance(node, BooleanNode):
        return {"type": "boolean"}
    if isinstance(node, IntegerNode):
        return {
            "type": "integer",
            "format": f"int{node.high.bit_length() + 1}",
            "minimum": node.low,
            "maximum": node.high,
        }
    if isinstance(node, FloatingNode):
        limit = _FLOAT_MAX if node.wrap_name == "float" else _DOUBLE_MAX
        number = {"type": "number", "format": node.wrap_name, "minimum": -limit, "maximum": limit}
        return {"anyOf": [number, _NON_FINITE]}
    if isinstance(node, StringNode):
        return {"type": "string"}
    if isinstance(node, FixedNode):  # before BytesNode, its base
        return {"type": "string", "contentEncoding": "base64", "pattern": _fixed_base64(node.size or 0)}
    if isinstance(node, BytesNode):
        return {"type": "string", "contentEncoding": "base64", "pattern": _BASE64}
    if isinstance(node, UuidNode):
        return {"type": "string", "format": "uuid", "pattern": _UUID}
    return _logical(node)


def _logical(node: Node) -> JsonSchema:
    if isinstance(node, TimestampNode):
        zone = "a wall clock, any offset is converted to UTC" if node.local else "Z or an offset; none means UTC"
        low, high = _range(_FIRST, _LAST, 1_000_000 // node.per_second)
        return {
            "description": f"ISO-8601 date-time ({zone}), or epoch {node.unit} (Avro {node.logical})",
            "anyOf": [{"type": "string", "pattern": _DATE_TIME}, {"type": "integer", "minimum": low, "maximum": high}],
        }
    if isinstance(node, DateNode):
        low, high = _range(_FIRST, _LAST, 86_400 * 1_000_000)
        return {
            "description": "a date, or days since 1970-01-01 (Avro date)",
            "anyOf": [
                {"type": "string", "format": "date", "pattern": f"^{_DAY}$"},
                {"type": "integer", "minimum": low, "maximum": high},
            ],
        }
    if isinstance(node, TimeNode):
        return {
            "description": f"a time of day without offset, or {node.unit} since midnight (Avro {node.logical})",
            "anyOf": [
                {"type": "string", "pattern": f"^{_CLOCK}$"},
                {"type": "integer", "minimum": 0, "maximum": 86_400 * node.per_second - 1},
            ],
        }
    if isinstance(node, DecimalNode):
        return {
            "description": f"Avro {node.logical}: at most {node.precision - node.scale} digits before the point and "
            f"{node.scale} after",
            "anyOf": [{"type": "string", "pattern": _DECIMAL}, {"type": "number"}],
        }
    raise TypeError(f"no JSON Schema for natural-JSON node {type(node).__name__}")  # pragma: no cover


def _range(first: datetime, last: datetime, unit_us: int) -> tuple[int, int]:
    """The whole units of ``unit_us`` microseconds since 1970 that stay within [first, last]."""
    low, high = _micros(first - _EPOCH), _micros(last - _EPOCH)
    return -(-low // unit_us), high // unit_us


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _fixed_base64(size: int) -> str:
    groups, rest = divmod(size, 3)
    tail = {0: "={0,2}" if groups else "", 1: f"{_B64}{{2}}={{0,2}}", 2: f"{_B64}{{3}}=?"}[rest]
    return f"^(?:{_B64}{{4}}){{{groups}}}{tail}$"


class _Sampler:
    """A datum of a node (what fastavro would decode), for ``to_json`` to write as natural JSON."""

    def __init__(self, model: m.Schema) -> None:
        self.model = model

    def sample(self, node: Node, name: str, seen: frozenset[str]) -> Any:
        if isinstance(node, RecordNode):
            return self.record(node, seen | {node.wrap_name})
        if isinstance(node, UnionNode):
            usable = [b for b in node.branches if not isinstance(b, NullNode) and not _recursive(b, seen)]
            return (usable[0].wrap_name, self.sample(usable[0], name, seen)) if usable else None
        if isinstance(node, ArrayNode):
            return [] if _recursive(node.items, seen) else [self.sample(node.items, name, seen)]
        if isinstance(node, MapNode):
            return {} if _recursive(node.values, seen) else {"key": self.sample(node.values, name, seen)}
        if isinstance(node, EnumNode):
            enum = self.model.types[node.wrap_name]
            assert isinstance(enum, m.Enum)
            return enum.symbols[0]
        if isinstance(node, StringNode):
            return f"{name}-1"
        return _scalar_sample(node)

    def record(self, node: RecordNode, seen: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in node.fields:
            if field.has_default and (not _empty(field.default_datum) or _recursive(field.node, seen)):
                out[field.name] = field.default_datum
            else:
                out[field.name] = self.sample(field.node, field.name, seen)
        return out


def _recursive(node: Node, seen: frozenset[str]) -> bool:
    """Whether a sample of ``node`` would enter a record already being sampled."""
    return isinstance(node, RecordNode) and node.wrap_name in seen


def _empty(datum: Any) -> bool:
    return datum is None or datum == "" or datum == [] or datum == {}


_SAMPLES: list[tuple[type[Node], Any]] = [
    (NullNode, None),
    (BooleanNode, True),
    (IntegerNode, 1),
    (FloatingNode, 1.5),
    (FixedNode, None),  # before BytesNode, its base: as many zero bytes as its size
    (BytesNode, b"bytes"),
    (UuidNode, _EXAMPLE_UUID),
    (DateNode, _EXAMPLE_MOMENT.date()),
    (TimeNode, time(12, 0)),
    (DecimalNode, Decimal(0)),  # fits every precision and scale
]


def _scalar_sample(node: Node) -> Any:
    if isinstance(node, TimestampNode):
        return _EXAMPLE_MOMENT.replace(tzinfo=None) if node.local else _EXAMPLE_MOMENT
    for kind, value in _SAMPLES:
        if isinstance(node, kind):
            return bytes(node.size or 0) if isinstance(node, FixedNode) else value
    raise TypeError(f"no example for natural-JSON node {type(node).__name__}")  # pragma: no cover
