"""A small parsed model of Avro schemas, built for walking two of them side by side.

``parse`` validates a schema with fastavro, then walks the JSON itself so that every named type
(record, enum, fixed) becomes one object, shared by every place that refers to it by name. A
recursive record therefore becomes a cycle in the object graph, not an endless tree.

Names follow the Avro specification: a name containing a dot is a full name; otherwise the
namespace is the type's own ``namespace`` or, failing that, the enclosing one ("" means none).
A reference by unqualified name resolves in the enclosing namespace. Aliases are qualified the
same way against the namespace of the type that declares them. ``names_match`` is the
specification's rule for when a reader's named type may read a writer's; ``describe`` renders a
type for messages.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import fastavro
from fastavro.schema import SchemaParseException

from hubstream.errors import ContractError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@dataclass(frozen=True)
class Logical:
    """A logical type annotation; only ``decimal`` carries parameters that matter when reading."""

    name: str
    precision: int | None = None
    scale: int = 0


@dataclass(frozen=True)
class Primitive:
    name: str
    logical: Logical | None = None


@dataclass(frozen=True)
class Array:
    items: AvroType


@dataclass(frozen=True)
class Map:
    values: AvroType


@dataclass(frozen=True)
class Union:
    branches: tuple[AvroType, ...]


@dataclass(eq=False)
class Named:
    """Common part of record, enum and fixed: a full name plus aliases (full and as written)."""

    fullname: str
    aliases: frozenset[str] = frozenset()
    bare_aliases: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return short_name(self.fullname)

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()


@dataclass(eq=False)
class Field:
    name: str
    type: AvroType
    aliases: tuple[str, ...] = ()
    has_default: bool = False


@dataclass(eq=False)
class Record(Named):
    fields: list[Field] = field(default_factory=list)

    def __repr__(self) -> str:  # the field graph may be cyclic
        return f"Record({self.fullname!r})"


@dataclass(eq=False)
class Enum(Named):
    symbols: tuple[str, ...] = ()
    default: str | None = None


@dataclass(eq=False)
class Fixed(Named):
    size: int = 0
    logical: Logical | None = None


AvroType: TypeAlias = Primitive | Array | Map | Union | Record | Enum | Fixed
_N = TypeVar("_N", bound=Named)


def short_name(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def full_name(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def load(schema: str | dict[str, Any] | list[Any]) -> Any:
    """The schema as JSON data, checked by fastavro; raises ContractError when it is not valid Avro."""
    data = schema
    if isinstance(schema, str):
        try:
            data = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ContractError(f"schema is not valid JSON: {exc}") from exc
    try:
        fastavro.parse_schema(copy.deepcopy(data), _write_hint=False)
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ContractError(f"schema is not valid Avro: {exc}") from exc
    return data


def parse(schema: str | dict[str, Any] | list[Any]) -> AvroType:
    """Validate ``schema`` (JSON text or already-decoded JSON) and build its type graph."""
    return _Parser().type(load(schema), "")


class _Parser:
    def __init__(self) -> None:
        self.names: dict[str, Named] = {}

    def type(self, data: Any, namespace: str) -> AvroType:
        if isinstance(data, str):
            return Primitive(data) if data in PRIMITIVES else self.reference(data, namespace)
        if isinstance(data, list):
            return Union(tuple(self.type(branch, namespace) for branch in data))
        if isinstance(data, dict):
            return self.complex(data, namespace)
        raise ContractError(f"not an Avro schema: {data!r}")

    def complex(self, data: dict[str, Any], namespace: str) -> AvroType:
        kind = data["type"]
        if not isinstance(kind, str):
            return self.type(kind, namespace)
        if kind in PRIMITIVES:
            return Primitive(kind, _logical(data))
        if kind == "array":
            return Array(self.type(data["items"], namespace))
        if kind == "map":
            return Map(self.type(data["values"], namespace))
        if kind in ("record", "error"):
            return self.record(data, namespace)
        if kind == "enum":
            return self.register(Enum(**self.naming(data, namespace), symbols=tuple(data["symbols"]),
                                      default=data.get("default")))
        if kind == "fixed":
            return self.register(Fixed(**self.naming(data, namespace), size=int(data["size"]),
                                       logical=_logical(data)))
        return self.reference(kind, namespace)

    def record(self, data: dict[str, Any], namespace: str) -> Record:
        record = self.register(Record(**self.naming(data, namespace)))
        inner = _namespace_of(record.fullname)
        record.fields = [self.field(spec, inner) for spec in data.get("fields", [])]
        return record

    def field(self, spec: dict[str, Any], namespace: str) -> Field:
        return Field(
            name=spec["name"],
            type=self.type(spec["type"], namespace),
            aliases=tuple(spec.get("aliases", ())),
            has_default="default" in spec,
        )

    def naming(self, data: dict[str, Any], enclosing: str) -> dict[str, Any]:
        name: str = data["name"]
        namespace = data.get("namespace")
        own = _namespace_of(name) if "." in name else (enclosing if namespace is None else namespace)
        aliases: list[str] = list(data.get("aliases", ()))
        return {
            "fullname": full_name(name, own),
            "aliases": frozenset(full_name(alias, own) for alias in aliases),
            "bare_aliases": frozenset(alias for alias in aliases if "." not in alias),
        }

    def register(self, named: _N) -> _N:
        self.names[named.fullname] = named
        return named

    def reference(self, name: str, namespace: str) -> Named:
        for candidate in (full_name(name, namespace), name):
            if candidate in self.names:
                return self.names[candidate]
        raise ContractError(f"schema refers to {name!r}, which is not defined before it is used")


def _namespace_of(fullname: str) -> str:
    return fullname.rsplit(".", 1)[0] if "." in fullname else ""


def _logical(data: dict[str, Any]) -> Logical | None:
    name = data.get("logicalType")
    if not isinstance(name, str):
        return None
    if name != "decimal":
        return Logical(name)
    precision, scale = data.get("precision"), data.get("scale", 0)
    if not isinstance(precision, int) or not isinstance(scale, int) or not 0 <= scale <= precision:
        return None  # the spec says an invalid decimal is read as its underlying type
    return Logical(name, precision, scale)


def names_match(reader: Named, writer: Named) -> bool:
    """Unqualified names match (Avro 1.11 spec), or a reader alias names the writer's type.

    An alias is a full name (qualified against the reader type's namespace); an alias written
    without a dot also matches the writer's unqualified name, as fastavro does.
    """
    return (
        reader.name == writer.name
        or writer.fullname in reader.aliases
        or writer.name in reader.bare_aliases
    )


def describe(schema: AvroType) -> str:
    """A short, readable rendering of a type: ``long``, ``array<string>``, ``[null, record `User`]``."""
    if isinstance(schema, Primitive):
        return schema.name + _describe_logical(schema.logical)
    if isinstance(schema, Array):
        return f"array<{describe(schema.items)}>"
    if isinstance(schema, Map):
        return f"map<{describe(schema.values)}>"
    if isinstance(schema, Union):
        return "[" + ", ".join(describe(b) for b in schema.branches) + "]"
    return f"{schema.kind} `{schema.name}`"


def _describe_logical(logical: Logical | None) -> str:
    if logical is None:
        return ""
    if logical.name == "decimal":
        return f" (decimal({logical.precision},{logical.scale}))"
    return f" ({logical.name})"
