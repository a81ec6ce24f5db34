"""The types of the Avro schema model: one object per type, named types shared by every use.

Each node keeps ``spec``, fastavro's parsed form of the schema at that place (a dict, a list for a
union, a string for a primitive or a reference), for the code that hands values back to fastavro:
logical-type conversions, unions the codec does not inline, schema resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@dataclass(frozen=True)
class Logical:
    """A logical type annotation. ``precision`` is set only for a valid decimal: a positive integer
    precision and an integer scale from 0 to it. An invalid decimal is read as its underlying type, as
    the Avro specification says."""

    name: str
    precision: int | None = None
    scale: int = 0

    @property
    def decimal(self) -> bool:
        return self.name == "decimal" and self.precision is not None


@dataclass(frozen=True)
class Primitive:
    name: str
    logical: Logical | None = None
    spec: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Array:
    items: AvroType
    spec: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Map:
    values: AvroType
    spec: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Union:
    branches: tuple[AvroType, ...]
    spec: Any = field(default=None, compare=False, repr=False)


@dataclass(eq=False)
class Named:
    """Common part of record, enum and fixed: a full name plus aliases (qualified, and as written
    without a dot). Aliases are qualified against the namespace of the type that declares them."""

    fullname: str
    aliases: frozenset[str] = frozenset()
    bare_aliases: frozenset[str] = frozenset()
    spec: Any = field(default=None, repr=False)

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
    default: Any = None  # the JSON value as written in the schema
    spec: Any = field(default=None, repr=False)


@dataclass(eq=False)
class Record(Named):
    """A record, or an ``error`` (the specification reads it as a record)."""

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


def short_name(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def namespace_of(fullname: str) -> str:
    return fullname.rsplit(".", 1)[0] if "." in fullname else ""


def full_name(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def kind_of(schema: AvroType) -> str:
    """``long``, ``array``, ``map``, ``union``, ``record``, ``enum`` or ``fixed``."""
    if isinstance(schema, Primitive):
        return schema.name
    return type(schema).__name__.lower()


def is_null(schema: AvroType) -> bool:
    return isinstance(schema, Primitive) and schema.name == "null"


def nullable(schema: AvroType) -> bool:
    """``null`` itself or a union with a ``null`` branch: a missing value can be written as null."""
    return is_null(schema) or (isinstance(schema, Union) and any(is_null(b) for b in schema.branches))


def names_match(reader: Named, writer: Named) -> bool:
    """Unqualified names match (Avro 1.11 specification), or a reader alias names the writer's type.

    An alias is a full name (qualified against the reader type's namespace); an alias written
    without a dot also matches the writer's unqualified name, as fastavro does.
    """
    return reader.name == writer.name or writer.fullname in reader.aliases or writer.name in reader.bare_aliases


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
    if logical is None or (logical.name == "decimal" and not logical.decimal):
        return ""
    if logical.decimal:
        return f" (decimal({logical.precision},{logical.scale}))"
    return f" ({logical.name})"
