"""Why a value cannot be written: walked only after the generated encoder has refused it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from schemas.codec.logical import LOGICAL_WRITERS, logical_key
from schemas.codec.runtime import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN
from schemas.model import (
    PRIMITIVES,
    Array,
    AvroType,
    Enum,
    Fixed,
    Map,
    Named,
    Record,
    Union,
    is_null,
    kind_of,
    nullable,
)
from schemas.paths import ROOT, join_path

Problems = list[tuple[str, str]]

_OK_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "string": (str,),
    "bytes": (bytes, bytearray, memoryview),
    "fixed": (bytes, bytearray, memoryview),
    "enum": (str,),
    "array": (list, tuple),
    "map": (Mapping,),
    "record": (Mapping,),
}


def problems(value: Any, schema: AvroType, path: str = "") -> Problems:
    """Every reason ``value`` cannot be written as ``schema``, as (field path, problem); [] if none found."""
    out: Problems = []
    _problems(value, schema, path, out)
    return out


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _problems(value: Any, schema: AvroType, path: str, out: Problems) -> None:
    where = path or ROOT
    key = logical_key(schema)
    if key is not None and key in LOGICAL_WRITERS and value is not None:
        try:
            value = cast(Any, LOGICAL_WRITERS[key](value, schema.spec))
        except Exception as exc:  # noqa: BLE001 - any failure is the value's
            out.append((where, f"not a valid {schema.spec['logicalType']}: {exc}"))
            return
    if isinstance(schema, Union):
        _union_problems(value, schema, path, out)
        return
    kind = kind_of(schema)
    if not _fits(value, kind):
        described = f"{kind} {schema.fullname}" if isinstance(schema, Named) else kind
        out.append((where, f"expected {described}, got {_type_name(value)}"))
        return
    if kind in ("int", "long"):
        low, high = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
        if not low <= value <= high:
            out.append((where, f"{value} is out of range for an Avro {kind}"))
    elif isinstance(schema, Fixed) and len(value) != schema.size:
        out.append((where, f"expected {schema.size} bytes, got {len(value)}"))
    elif isinstance(schema, Enum) and value not in schema.symbols:
        out.append((where, f"{value!r} is not one of {', '.join(schema.symbols)}"))
    elif isinstance(schema, Array):
        for index, item in enumerate(value):
            _problems(item, schema.items, join_path(path, index), out)
    elif isinstance(schema, Map):
        for map_key, item in value.items():
            if not isinstance(map_key, str):
                out.append((where, f"map keys must be strings, got {_type_name(map_key)}"))
                continue
            _problems(item, schema.values, join_path(path, map_key), out)
    elif isinstance(schema, Record):
        _record_problems(value, schema, path, out)


def _fits(value: Any, kind: str) -> bool:
    return isinstance(value, _OK_TYPES[kind]) and not (kind in ("float", "double") and isinstance(value, bool))


def _record_problems(value: Mapping[str, Any], record: Record, path: str, out: Problems) -> None:
    known = {f.name for f in record.fields}
    for extra in value:
        if extra not in known:
            out.append((join_path(path, str(extra)), f"{record.fullname} has no such field"))
    for field in record.fields:
        if field.name in value:
            _problems(value[field.name], field.type, join_path(path, field.name), out)
        elif not field.has_default and not nullable(field.type):
            out.append((join_path(path, field.name), "missing, and the field has no default"))


def _union_problems(value: Any, union: Union, path: str, out: Problems) -> None:
    if isinstance(value, tuple) and len(value) == 2:
        return  # fastavro's (branch, value) notation: fastavro checks it when writing
    found: list[Problems] = []
    for branch in union.branches:
        branch_problems = problems(value, branch, path)
        if not branch_problems:
            return
        found.append(branch_problems)
    others = [p for b, p in zip(union.branches, found, strict=True) if not is_null(b)]
    if value is not None and len(others) == 1:
        out.extend(others[0])  # an optional field: say what is wrong with the value itself
        return
    # a branch that names a type defined elsewhere is shown by that name, one defined inline by its kind
    listing = ", ".join(
        spec if isinstance(spec, str) and spec not in PRIMITIVES else kind_of(branch)
        for spec, branch in zip(union.spec, union.branches, strict=True)
    )
    out.append((path or ROOT, f"{_type_name(value)} fits none of the union's branches ({listing})"))
