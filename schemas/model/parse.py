"""Parsing a schema into the model: fastavro validates it and qualifies its names, we build the graph."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import fastavro
from fastavro.schema import SchemaParseException

from hubstream.errors import ContractError
from schemas.model.types import (
    PRIMITIVES,
    Array,
    AvroType,
    Enum,
    Field,
    Fixed,
    Logical,
    Map,
    Named,
    Primitive,
    Record,
    Union,
    full_name,
    kind_of,
    namespace_of,
)

_N = TypeVar("_N", bound=Named)


@dataclass(frozen=True, eq=False)
class Schema:
    """One parsed schema: our type graph, and fastavro's parsed form for the code that calls fastavro."""

    root: AvroType
    parsed: Any  # what fastavro.parse_schema returned
    named: dict[str, Any]  # fastavro's named types by full name, as its writer and reader take them
    types: dict[str, Named]  # our named types by full name

    @property
    def name(self) -> str:
        """The full name of a named top-level type, else its kind (``long``, ``array``, ``union`` ...)."""
        return self.root.fullname if isinstance(self.root, Named) else kind_of(self.root)


def parse(data: Any) -> Schema:
    """The model of ``data``, a schema as decoded JSON (a string is a type name, as in JSON).

    Raises ContractError when it is not valid Avro, for example a reference to a type not defined
    before it is used.
    """
    named: dict[str, Any] = {}
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(data), named)
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ContractError(f"schema is not valid Avro: {exc}") from exc
    builder = _Builder()
    return Schema(builder.type(parsed), parsed, named, builder.names)


def parse_text(text: str | bytes) -> Schema:
    """The model of a schema given as JSON text; ContractError when it is not JSON or not Avro."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"schema is not valid JSON: {exc}") from exc
    return parse(data)


class _Builder:
    """Walks fastavro's parsed form, where a named type's definition carries its full name and every
    later use of it is that full name as a string."""

    def __init__(self) -> None:
        self.names: dict[str, Named] = {}

    def type(self, spec: Any) -> AvroType:
        if isinstance(spec, str):
            return Primitive(spec, spec=spec) if spec in PRIMITIVES else cast(AvroType, self.names[spec])
        if isinstance(spec, list):
            return Union(tuple(self.type(branch) for branch in spec), spec)
        kind = spec["type"]
        if kind in PRIMITIVES:
            return Primitive(kind, _logical(spec), spec)
        if kind == "array":
            return Array(self.type(spec["items"]), spec)
        if kind == "map":
            return Map(self.type(spec["values"]), spec)
        if kind in ("record", "error"):
            return self.record(spec)
        if kind == "enum":
            return self.register(Enum(**_naming(spec), symbols=tuple(spec["symbols"]), default=spec.get("default")))
        if kind == "fixed":
            return self.register(Fixed(**_naming(spec), size=int(spec["size"]), logical=_logical(spec)))
        raise ContractError(f"not an Avro schema: {spec!r}")  # pragma: no cover - fastavro refuses it first

    def record(self, spec: dict[str, Any]) -> Record:
        record = self.register(Record(**_naming(spec)))  # before its fields, which may refer to it
        record.fields = [self.field(field) for field in spec.get("fields", [])]
        return record

    def field(self, spec: dict[str, Any]) -> Field:
        return Field(
            name=spec["name"],
            type=self.type(spec["type"]),
            aliases=tuple(spec.get("aliases", ())),
            has_default="default" in spec,
            default=spec.get("default"),
            spec=spec,
        )

    def register(self, named: _N) -> _N:
        self.names[named.fullname] = named
        return named


def _naming(spec: dict[str, Any]) -> dict[str, Any]:
    fullname: str = spec["name"]
    own = namespace_of(fullname)
    aliases: list[str] = list(spec.get("aliases", ()))
    return {
        "fullname": fullname,
        "aliases": frozenset(full_name(alias, own) for alias in aliases),
        "bare_aliases": frozenset(alias for alias in aliases if "." not in alias),
        "spec": spec,
    }


def _logical(spec: dict[str, Any]) -> Logical | None:
    name = spec.get("logicalType")
    if not isinstance(name, str):
        return None
    if name != "decimal":
        return Logical(name)
    precision, scale = spec.get("precision"), spec.get("scale", 0)
    if type(precision) is int and type(scale) is int and 0 <= scale <= precision and precision > 0:
        return Logical(name, precision, scale)
    return Logical(name)
