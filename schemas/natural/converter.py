"""``NaturalJson``: the natural-JSON nodes of one schema, built once from its model."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from hubstream.errors import EventValidationError, SerdeError
from schemas import model as m
from schemas.natural.composite import ArrayNode, FieldNode, MapNode, RecordNode, UnionNode
from schemas.natural.logical import DateNode, DecimalNode, TimeNode, TimestampNode, UuidNode
from schemas.natural.nodes import Ctx, Node
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

_PRIMITIVES: dict[str, Callable[[], Node]] = {
    "null": NullNode,
    "boolean": BooleanNode,
    "int": lambda: IntegerNode("int", 32),
    "long": lambda: IntegerNode("long", 64),
    "float": lambda: FloatingNode("float"),
    "double": lambda: FloatingNode("double"),
    "bytes": BytesNode,
    "string": StringNode,
}
_LOGICAL: dict[tuple[str, str], Callable[[str], Node]] = {
    ("long", "timestamp-millis"): lambda logical: TimestampNode(logical, 1000, local=False),
    ("long", "timestamp-micros"): lambda logical: TimestampNode(logical, 1_000_000, local=False),
    ("long", "local-timestamp-millis"): lambda logical: TimestampNode(logical, 1000, local=True),
    ("long", "local-timestamp-micros"): lambda logical: TimestampNode(logical, 1_000_000, local=True),
    ("int", "date"): lambda logical: DateNode(),
    ("int", "time-millis"): lambda logical: TimeNode(logical, 1000),
    ("long", "time-micros"): lambda logical: TimeNode(logical, 1_000_000),
    ("string", "uuid"): lambda logical: UuidNode(),
}


class _Builder:
    """One node per model type; a named type's node is shared by every use, as the type itself is."""

    def __init__(self) -> None:
        self.named: dict[str, Node] = {}
        self.records: list[RecordNode] = []

    def node(self, schema: m.AvroType) -> Node:
        if isinstance(schema, m.Union):
            return UnionNode([self.node(branch) for branch in schema.branches])
        if isinstance(schema, m.Primitive):
            return _logical(schema.name, schema.logical) or _PRIMITIVES[schema.name]()
        if isinstance(schema, m.Array):
            return ArrayNode(self.node(schema.items))
        if isinstance(schema, m.Map):
            return MapNode(self.node(schema.values))
        known = self.named.get(schema.fullname)
        if known is not None:
            return known
        if isinstance(schema, m.Record):
            record = self.named[schema.fullname] = RecordNode(schema.fullname)
            self.records.append(record)
            for field in schema.fields:
                record.add_field(FieldNode(field.name, self.node(field.type), field.has_default, field.default))
            return record
        node: Node
        if isinstance(schema, m.Enum):
            node = EnumNode(schema.fullname, list(schema.symbols))
        else:
            fixed = FixedNode(schema.fullname, schema.size)
            node = _logical("fixed", schema.logical, fixed) or fixed
        self.named[schema.fullname] = node
        return node


def _logical(kind: str, logical: m.Logical | None, fixed: FixedNode | None = None) -> Node | None:
    """The node for a logical type fastavro knows; None means: use the underlying type (Avro's rule)."""
    if logical is None:
        return None
    if logical.name == "decimal" and kind in ("bytes", "fixed"):
        return DecimalNode(logical.precision, logical.scale, fixed) if logical.precision is not None else None
    factory = _LOGICAL.get((kind, logical.name))
    return factory(logical.name) if factory else None


class NaturalJson:
    """Natural JSON <-> fastavro datum for one Avro schema, compiled once; safe to share across requests."""

    def __init__(self, schema: Any, *, name: str | None = None) -> None:
        model = m.parse(schema)  # ContractError: not valid Avro
        builder = _Builder()
        self._root = builder.node(model.root)
        for record in builder.records:
            record.resolve_defaults()
        self.schema = schema
        self.name = name or (model.root.fullname if isinstance(model.root, m.Named) else None) or self._root.display

    @classmethod
    def for_schema(cls, schema: Any) -> NaturalJson:
        """The shared converter for this schema, compiled on first use (keyed by the schema's JSON text)."""
        return _cached(json.dumps(schema, sort_keys=True, separators=(",", ":")))

    def from_json(self, value: Any, *, schema_name: str | None = None, max_problems: int | None = None) -> Any:
        """A datum for ``fastavro.schemaless_writer``; EventValidationError lists every problem by path (the
        first ``max_problems`` of them, when given, and how many there were in all)."""
        ctx, datum = Ctx([], limit=max_problems), None
        try:
            datum = self._root.load(value, ctx)
        except RecursionError:
            ctx.problems, ctx.failures = [("$", "the event is nested too deeply")], 1
        if ctx.problems:
            raise EventValidationError(schema_name or self.name, ctx.problems, total=ctx.failures)
        return datum

    def to_json(self, datum: Any) -> Any:
        """A JSON-serialisable natural form of a datum as fastavro decodes it."""
        try:
            return self._root.dump(datum)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise SerdeError(f"datum does not match {self.name}: {type(exc).__name__}: {exc}") from exc


@functools.lru_cache(maxsize=256)
def _cached(text: str) -> NaturalJson:
    return NaturalJson(json.loads(text))


def from_natural_json(value: Any, schema: Any, *, schema_name: str | None = None) -> Any:
    """Natural JSON -> fastavro datum for ``schema`` (the Avro schema as JSON, e.g. ``Contract.schema``)."""
    return NaturalJson.for_schema(schema).from_json(value, schema_name=schema_name)


def to_natural_json(datum: Any, schema: Any) -> Any:
    """fastavro datum -> natural JSON for ``schema``: the reverse of :func:`from_natural_json`."""
    return NaturalJson.for_schema(schema).to_json(datum)
