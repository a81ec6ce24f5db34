"""Natural JSON in and out of fastavro datums, for one Avro schema.

The producer API takes events as *natural JSON*, what a web developer would write, and delivery hands
them back the same way::

    converter = NaturalJson(contract.schema)   # compile once per schema
    datum = converter.from_json(body)          # EventValidationError lists every bad field path
    body = converter.to_json(datum)            # datum as decoded by fastavro.schemaless_reader

Natural JSON against Avro types:

    record        an object; a missing field takes its default, else "required field missing";
                  keys the record does not have are "unknown field" (typos get a suggestion)
    int, long     a JSON integer in range (not a boolean, not 1.0)
    float, double a number; the strings "NaN", "Infinity", "-Infinity" for what JSON cannot write
    boolean, string, null   only true/false, only a string, only null
    bytes, fixed  base64 (standard or URL-safe, padding optional); a fixed must decode to its size
    enum          one of the symbols
    array, map    a JSON array; a JSON object with any keys
    timestamp-millis, timestamp-micros
                  ISO-8601 date-time ("Z" or an offset; none means UTC) or epoch millis / micros
    local-timestamp-millis, local-timestamp-micros
                  the same, kept as a UTC wall clock; written back without "Z"
    date          "YYYY-MM-DD" or days since 1970-01-01
    time-millis, time-micros   "HH:MM[:SS[.fff]]" or millis / micros since midnight
    uuid          "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
    decimal       a string or a number, with no more decimal places than the scale
    union         null, or the one branch the value fits; Avro's wrapper {"<type or full name>": value}
                  picks a branch; when several numeric branches fit the first wins, when other
                  branches fit the value is ambiguous and needs the wrapper

Problem paths run from the root: ``sections[2].order``, ``metadata.lang``, ``metadata["x-trace"]``;
the root itself is ``$``. Every problem is reported, not just the first.

Union datums: where fastavro could not tell the chosen branch from the Python value (e.g. ``["int",
"long"]``, two records, string and enum) the datum is fastavro's tuple notation ``(name, value)``, which
``schemaless_writer`` follows; ``["null", X]`` and other unions whose branches take distinct Python types
stay plain. Read with ``return_named_type=True`` when a union holds several named types, so ``to_json``
knows the branch; where the natural form alone would be ambiguous it writes the wrapper form.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import functools
import json
import math
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException

from hubstream.errors import ContractError, EventValidationError, SerdeError

Problems = list[tuple[str, str]]

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_DAYS_SHIFT = date(1970, 1, 1).toordinal()
_FLOAT_MAX = 3.4028234663852886e38
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}\Z")

_KINDS: dict[type, str] = {
    type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value)) or type(value).__name__


def _show(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def format_path(path: list[str | int]) -> str:
    """``sections[2].order``, ``metadata["x-trace"]``; the root itself is ``$``."""
    if not path:
        return "$"
    out = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _IDENTIFIER.match(segment):
            out.append(f".{segment}" if out else segment)
        else:
            out.append(f"[{json.dumps(segment, ensure_ascii=False)}]")
    return "".join(out)


class _Ctx:
    """Where the walk is and what went wrong so far; ``tuples`` counts union tuples emitted below."""

    __slots__ = ("path", "problems", "tuples")

    def __init__(self, path: list[str | int]) -> None:
        self.path = path
        self.problems: Problems = []
        self.tuples = 0

    def fail(self, problem: str) -> None:
        self.problems.append((format_path(self.path), problem))

    def trial(self) -> _Ctx:
        return _Ctx(list(self.path))


def _has_tuple(datum: Any) -> bool:
    if isinstance(datum, tuple):
        return True
    if isinstance(datum, dict):
        return any(_has_tuple(v) for v in datum.values())
    return isinstance(datum, list) and any(_has_tuple(v) for v in datum)


def _fresh(datum: Any) -> Any:
    return copy.deepcopy(datum) if isinstance(datum, (dict, list, tuple)) else datum


class _Node:
    """One compiled Avro type. ``json_types``: natural forms it may take; ``datum_types``: what fastavro's
    union writer would accept for it; ``family``: branches of one family are interchangeable in a union."""

    wrap_name = "?"
    display = "?"
    json_types: frozenset[type] = frozenset()
    datum_types: frozenset[type] = frozenset()
    family: str | None = None

    def load(self, value: Any, ctx: _Ctx) -> Any:
        raise NotImplementedError

    def dump(self, datum: Any) -> Any:
        return datum

    def accepts(self, datum: Any) -> bool:
        return type(datum) in self.datum_types

    def default(self, value: Any) -> Any:
        """Avro default (JSON encoding of the underlying type) -> datum; ValueError when it does not fit."""
        ctx = _Ctx([])
        datum = self.load(value, ctx)
        if ctx.problems:
            raise ValueError(ctx.problems[0][1])
        return datum


class _Null(_Node):
    wrap_name = display = "null"
    json_types = datum_types = frozenset({type(None)})

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if value is not None:
            ctx.fail(f"expected null, got {_kind(value)}")
        return None


class _Boolean(_Node):
    wrap_name = display = "boolean"
    json_types = datum_types = frozenset({bool})

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is not bool:
            ctx.fail(f"expected true or false (Avro boolean), got {_kind(value)}")
        return value


class _Integer(_Node):
    json_types = datum_types = frozenset({int})
    family = "number"

    def __init__(self, name: str, bits: int) -> None:
        self.wrap_name = self.display = name
        self.low, self.high = -(1 << bits - 1), (1 << bits - 1) - 1

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is not int:
            ctx.fail(f"expected an integer (Avro {self.display}), got {_kind(value)}")
        elif not self.low <= value <= self.high:
            ctx.fail(f"integer out of range for Avro {self.display} ({self.low} to {self.high})")
        return value

    def accepts(self, datum: Any) -> bool:
        return type(datum) is int and self.low <= datum <= self.high


class _Floating(_Node):
    json_types = frozenset({int, float, str})
    datum_types = frozenset({int, float})
    family = "number"

    def __init__(self, name: str) -> None:
        self.wrap_name = self.display = name
        self.limit = _FLOAT_MAX if name == "float" else math.inf

    def load(self, value: Any, ctx: _Ctx) -> Any:
        kind = type(value)
        if kind is str and value in _NON_FINITE:
            return _NON_FINITE[value]
        if kind is not int and kind is not float:
            ctx.fail(f"expected a number (Avro {self.display}), got {_kind(value)}")
            return None
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if (math.isinf(number) and kind is int) or (math.isfinite(number) and abs(number) > self.limit):
            ctx.fail(f"number out of range for Avro {self.display}")
        return number

    def dump(self, datum: Any) -> Any:
        number = float(datum)
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


class _String(_Node):
    wrap_name = display = "string"
    json_types = datum_types = frozenset({str})

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is not str:
            ctx.fail(f"expected a string (Avro string), got {_kind(value)}")
        elif not value.isascii() and not _is_utf8(value):
            ctx.fail("string is not valid Unicode text (it holds a lone surrogate)")
        return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode(text: str) -> bytes | None:
    if not _BASE64.match(text):
        return None
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


class _Bytes(_Node):
    wrap_name = display = "bytes"
    json_types = frozenset({str})
    datum_types = frozenset({bytes, bytearray})
    size: int | None = None

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is not str:
            ctx.fail(f"expected a base64 string (Avro {self.display}), got {_kind(value)}")
            return None
        data = _b64decode(value)
        if data is None:
            ctx.fail(f"expected a base64 string (Avro {self.display}), got a string that is not base64")
        elif self.size is not None and len(data) != self.size:
            ctx.fail(f"expected {self.size} bytes (Avro {self.display}), got {len(data)}")
        return data

    def dump(self, datum: Any) -> Any:
        return base64.b64encode(datum).decode("ascii")

    def default(self, value: Any) -> Any:
        if type(value) is not str:
            raise ValueError(f"expected a string of code points 0-255, got {_kind(value)}")
        data = value.encode("latin-1")
        if self.size is not None and len(data) != self.size:
            raise ValueError(f"expected {self.size} bytes, got {len(data)}")
        return data


class _Fixed(_Bytes):
    datum_types = frozenset({bytes})

    def __init__(self, name: str, size: int) -> None:
        self.wrap_name = name
        self.display = f"fixed {name}"
        self.size = size

    def accepts(self, datum: Any) -> bool:
        return type(datum) is bytes and len(datum) == self.size


class _Enum(_Node):
    json_types = datum_types = frozenset({str})

    def __init__(self, name: str, symbols: list[str]) -> None:
        self.wrap_name = self.display = name
        self.symbols = frozenset(symbols)
        shown = ", ".join(repr(s) for s in symbols[:12])
        self.listing = shown + (", ..." if len(symbols) > 12 else "")

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is not str or value not in self.symbols:
            got = _show(value) if type(value) is str else _kind(value)
            ctx.fail(f"expected one of {self.listing} (Avro enum {self.display}), got {got}")
        return value

    def accepts(self, datum: Any) -> bool:
        return type(datum) is str and datum in self.symbols


class _Array(_Node):
    wrap_name = display = "array"
    json_types = frozenset({list})
    datum_types = frozenset({list, tuple, bytes, bytearray})

    def __init__(self, items: _Node) -> None:
        self.items = items

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is not list:
            ctx.fail(f"expected an array, got {_kind(value)}")
            return None
        out, path, items = [], ctx.path, self.items
        for index, item in enumerate(value):
            path.append(index)
            out.append(items.load(item, ctx))
            path.pop()
        return out

    def dump(self, datum: Any) -> Any:
        return [self.items.dump(item) for item in datum]

    def default(self, value: Any) -> Any:
        if type(value) is not list:
            raise ValueError(f"expected an array, got {_kind(value)}")
        return [self.items.default(item) for item in value]

    def accepts(self, datum: Any) -> bool:
        return type(datum) is list


class _Map(_Node):
    wrap_name = display = "map"
    json_types = datum_types = frozenset({dict})

    def __init__(self, values: _Node) -> None:
        self.values = values

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if not isinstance(value, dict):
            ctx.fail(f"expected an object (Avro map), got {_kind(value)}")
            return None
        out, path, values = {}, ctx.path, self.values
        for key, item in value.items():
            path.append(str(key))
            if type(key) is not str:
                ctx.fail(f"map keys must be strings, got {_kind(key)}")
            elif not key.isascii() and not _is_utf8(key):
                ctx.fail("map key is not valid Unicode text (it holds a lone surrogate)")
            out[key] = values.load(item, ctx)
            path.pop()
        return out

    def dump(self, datum: Any) -> Any:
        return {key: self.values.dump(item) for key, item in datum.items()}

    def default(self, value: Any) -> Any:
        if type(value) is not dict:
            raise ValueError(f"expected an object, got {_kind(value)}")
        return {key: self.values.default(item) for key, item in value.items()}


class _Field:
    __slots__ = ("name", "node", "raw_default", "has_default", "default_datum", "default_has_tuple")

    def __init__(self, name: str, node: _Node, schema: dict[str, Any]) -> None:
        self.name, self.node = name, node
        self.has_default = "default" in schema
        self.raw_default = schema.get("default")
        self.default_datum: Any = None
        self.default_has_tuple = False


class _Record(_Node):
    json_types = datum_types = frozenset({dict})

    def __init__(self, name: str) -> None:
        self.wrap_name = self.display = name
        self.fields: list[_Field] = []
        self.by_name: dict[str, _Field] = {}

    def add_field(self, field: _Field) -> None:
        self.fields.append(field)
        self.by_name[field.name] = field

    def resolve_defaults(self) -> None:
        for field in self.fields:
            if field.has_default:
                try:
                    field.default_datum = field.node.default(field.raw_default)
                except (ValueError, TypeError, KeyError) as exc:
                    raise ContractError(
                        f"the default of {self.display}.{field.name} does not fit its type: {exc}"
                    ) from None
                field.default_has_tuple = _has_tuple(field.default_datum)

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if not isinstance(value, dict):
            ctx.fail(f"expected an object (record {self.display}), got {_kind(value)}")
            return None
        out: dict[str, Any] = {}
        path, seen = ctx.path, 0
        for field in self.fields:
            if field.name in value:
                seen += 1
                path.append(field.name)
                out[field.name] = field.node.load(value[field.name], ctx)
                path.pop()
            elif field.has_default:
                out[field.name] = _fresh(field.default_datum)
                ctx.tuples += field.default_has_tuple
            else:
                path.append(field.name)
                ctx.fail("required field missing")
                path.pop()
        if seen < len(value):
            self._unknown(value, ctx)
        return out

    def _unknown(self, value: dict[Any, Any], ctx: _Ctx) -> None:
        for key in value:
            if key in self.by_name:
                continue
            ctx.path.append(str(key))
            close = difflib.get_close_matches(str(key), self.by_name, n=1)
            ctx.fail("unknown field" + (f"; did you mean {close[0]!r}?" if close else ""))
            ctx.path.pop()

    def dump(self, datum: Any) -> Any:
        return {field.name: field.node.dump(datum[field.name]) for field in self.fields}

    def default(self, value: Any) -> Any:
        if type(value) is not dict:
            raise ValueError(f"expected an object, got {_kind(value)}")
        out = {}
        for field in self.fields:
            if field.name in value:
                out[field.name] = field.node.default(value[field.name])
            elif field.has_default:
                out[field.name] = field.node.default(field.raw_default)
            else:
                raise ValueError(f"field {field.name} is missing")
        return out

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, dict)


class _Union(_Node):
    wrap_name = display = "union"

    def __init__(self, branches: list[_Node]) -> None:
        self.branches = branches
        self.null = next((b for b in branches if isinstance(b, _Null)), None)
        self.single = len(branches) - (self.null is not None) <= 1
        self.listing = ", ".join(b.display for b in branches)
        self.json_types = frozenset().union(*(b.json_types for b in branches))
        self.by_key: dict[str, _Node] = {b.wrap_name: b for b in branches}
        short = [(b.wrap_name.rpartition(".")[2], b) for b in branches if "." in b.wrap_name]
        for name, branch in short:
            if name not in self.by_key and sum(1 for n, _ in short if n == name) == 1:
                self.by_key[name] = branch
        seen: set[type] = set()
        self.plain_safe = True
        for branch in branches:
            self.plain_safe &= not (seen & branch.datum_types)
            seen |= branch.datum_types

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if value is None and self.null is not None:
            return None
        chosen = self._choose(value, ctx)
        if chosen is None:
            return None
        branch, datum, nested_tuples = chosen
        if self.plain_safe and not nested_tuples:
            return datum
        ctx.tuples += 1
        return (branch.wrap_name, datum)

    def _choose(self, value: Any, ctx: _Ctx) -> tuple[_Node, Any, bool] | None:
        wrapped = None
        if type(value) is dict and len(value) == 1:
            key, inner = next(iter(value.items()))
            if key in self.by_key:
                wrapped = ctx.trial()
                wrapped.path.append(key)
                datum = self.by_key[key].load(inner, wrapped)
                if not wrapped.problems:
                    return self.by_key[key], datum, wrapped.tuples > 0
        candidates = [b for b in self.branches if type(value) in b.json_types]
        if len(candidates) == 1 and wrapped is None:
            tuples, problems = ctx.tuples, len(ctx.problems)
            datum = candidates[0].load(value, ctx)
            return None if len(ctx.problems) > problems else (candidates[0], datum, ctx.tuples > tuples)
        fits = []
        for branch in candidates:
            trial = ctx.trial()
            datum = branch.load(value, trial)
            if not trial.problems:
                fits.append((branch, datum, trial.tuples > 0))
        if fits and all(f[0].family is not None and f[0].family == fits[0][0].family for f in fits[1:]):
            return fits[0]
        if fits:
            names = ", ".join(fit[0].display for fit in fits)
            ctx.fail(f'ambiguous: the value fits {names}; wrap it to choose, e.g. {{"{fits[0][0].wrap_name}": ...}}')
        elif wrapped is not None:
            ctx.problems.extend(wrapped.problems)
        else:
            ctx.fail(f"expected one of {self.listing}; got {_kind(value)}")
        return None

    def dump(self, datum: Any) -> Any:
        if type(datum) is tuple and len(datum) == 2 and datum[0] in self.by_key:
            branch, datum = self.by_key[datum[0]], datum[1]
        else:
            branch = self._branch_of(datum)
        natural = branch.dump(datum)
        if branch is self.null:
            return natural
        if type(natural) is dict and len(natural) == 1 and next(iter(natural)) in self.by_key:
            return {branch.wrap_name: natural}  # would read back as a wrapper
        if self.single:
            return natural
        chosen = self._choose(natural, _Ctx([]))
        return natural if chosen is not None and chosen[0] is branch else {branch.wrap_name: natural}

    def _branch_of(self, datum: Any) -> _Node:
        candidates = [b for b in self.branches if b.accepts(datum)]
        if not candidates:
            raise ValueError(f"a {type(datum).__name__} fits no branch of the union ({self.listing})")
        if type(datum) is dict:
            for branch in candidates:
                if isinstance(branch, _Record) and branch.by_name.keys() == datum.keys():
                    return branch
        return candidates[0]

    def default(self, value: Any) -> Any:
        branch = self.branches[0]
        datum = branch.default(value)
        if datum is None or self.plain_safe and not _has_tuple(datum):
            return datum
        return (branch.wrap_name, datum)


class _Timestamp(_Node):
    wrap_name = "long"
    json_types = frozenset({str, int})
    datum_types = frozenset({datetime, int})

    def __init__(self, logical: str, per_second: int, local: bool) -> None:
        self.display = f"long ({logical})"
        self.logical, self.per_second, self.local = logical, per_second, local
        self.unit = "milliseconds" if per_second == 1000 else "microseconds"
        self.epoch = _EPOCH_NAIVE if local else _EPOCH

    def load(self, value: Any, ctx: _Ctx) -> Any:
        kind = type(value)
        if kind is int:
            return self._from_epoch(value, ctx)
        if kind is not str:
            ctx.fail(f"expected an ISO-8601 date-time string or epoch {self.unit} (Avro {self.logical}), "
                     f"got {_kind(value)}")
            return None
        parsed = _parse_datetime(value)
        if parsed is None:
            ctx.fail(f"expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got {_show(value)}")
            return None
        try:
            moment = parsed.replace(tzinfo=_UTC) if parsed.tzinfo is None else parsed.astimezone(_UTC)
        except OverflowError:
            ctx.fail("date-time out of range (years 1 to 9999 in UTC)")
            return None
        if self.local:
            moment = moment.replace(tzinfo=None)
        return self._truncate(moment)

    def _from_epoch(self, value: int, ctx: _Ctx) -> datetime | None:
        try:
            if not _LONG_MIN <= value <= _LONG_MAX:
                raise OverflowError
            return self.epoch + timedelta(microseconds=value * (1_000_000 // self.per_second))
        except OverflowError:
            ctx.fail(f"epoch {self.unit} out of range (years 1 to 9999)")
            return None

    def _truncate(self, moment: datetime) -> datetime:
        if self.per_second == 1000:
            return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment

    def dump(self, datum: Any) -> Any:
        if type(datum) is int:
            datum = self.epoch + timedelta(microseconds=datum * (1_000_000 // self.per_second))
        if datum.tzinfo is not None:
            datum = datum.astimezone(_UTC).replace(tzinfo=None)
        text = datum.isoformat(timespec=self.unit)
        return text if self.local else text + "Z"

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, datetime) or type(datum) is int


def _parse_datetime(text: str) -> datetime | None:
    text = text.upper()
    if not _DATETIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class _Date(_Node):
    wrap_name = "int"
    display = "int (date)"
    json_types = frozenset({str, int})
    datum_types = frozenset({date, datetime, int, str})

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is int:
            try:
                return date.fromordinal(value + _DAYS_SHIFT)
            except (ValueError, OverflowError):
                ctx.fail("days since 1970-01-01 out of range (years 1 to 9999)")
                return None
        if type(value) is not str:
            ctx.fail(f"expected a date 'YYYY-MM-DD' or days since 1970-01-01 (Avro date), got {_kind(value)}")
            return None
        try:
            if not _DATE.match(value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            ctx.fail(f"expected a date like '2024-05-01', got {_show(value)}")
            return None

    def dump(self, datum: Any) -> Any:
        if type(datum) is int:
            datum = date.fromordinal(datum + _DAYS_SHIFT)
        return date(datum.year, datum.month, datum.day).isoformat()

    def accepts(self, datum: Any) -> bool:
        return type(datum) is date or type(datum) is int


class _Time(_Node):
    json_types = frozenset({str, int})
    datum_types = frozenset({time, int})

    def __init__(self, logical: str, per_second: int) -> None:
        self.wrap_name = "int" if per_second == 1000 else "long"
        self.display = f"{self.wrap_name} ({logical})"
        self.logical, self.per_second = logical, per_second
        self.unit = "milliseconds" if per_second == 1000 else "microseconds"

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is int:
            if not 0 <= value < 86_400 * self.per_second:
                ctx.fail(f"{self.unit} since midnight out of range (0 to {86_400 * self.per_second - 1})")
                return None
            return self._from_units(value)
        if type(value) is not str:
            ctx.fail(f"expected a time of day 'HH:MM:SS.sss' or {self.unit} since midnight "
                     f"(Avro {self.logical}), got {_kind(value)}")
            return None
        try:
            if not _TIME.match(value):
                raise ValueError
            moment = time.fromisoformat(value)
        except ValueError:
            ctx.fail(f"expected a time of day like '13:45:00.000' (no offset), got {_show(value)}")
            return None
        if self.per_second == 1000:
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment

    def _from_units(self, value: int) -> time:
        micros = value * (1_000_000 // self.per_second)
        seconds, micro = divmod(micros, 1_000_000)
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)

    def dump(self, datum: Any) -> Any:
        if type(datum) is int:
            datum = self._from_units(datum)
        return datum.isoformat(timespec=self.unit)

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, time) or type(datum) is int


class _Uuid(_Node):
    wrap_name = "string"
    display = "string (uuid)"
    json_types = frozenset({str})
    datum_types = frozenset({str, uuid.UUID})

    def load(self, value: Any, ctx: _Ctx) -> Any:
        if type(value) is str and _UUID.match(value):
            return uuid.UUID(value)
        got = _show(value) if type(value) is str else _kind(value)
        ctx.fail(f"expected a UUID like '123e4567-e89b-12d3-a456-426614174000', got {got}")
        return None

    def dump(self, datum: Any) -> Any:
        return str(datum)

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, uuid.UUID) or type(datum) is str


class _Decimal(_Node):
    json_types = frozenset({str, int, float})
    datum_types = frozenset({Decimal, bytes, bytearray})

    def __init__(self, precision: int, scale: int, fixed: _Fixed | None) -> None:
        self.precision, self.scale, self.fixed = precision, scale, fixed
        self.wrap_name = fixed.wrap_name if fixed else "bytes"
        self.logical = f"decimal({precision},{scale})"
        self.display = f"{self.wrap_name} ({self.logical})"
        self.quantum = Decimal(1).scaleb(-scale)
        self.context = Context(prec=precision)

    def load(self, value: Any, ctx: _Ctx) -> Any:
        kind = type(value)
        if kind is str and _DECIMAL.match(value):
            return self._fit(Decimal(value), _show(value), ctx)
        if kind is int:
            return self._fit(Decimal(value), str(value) if value.bit_length() < 64 else "the number", ctx)
        if kind is float and math.isfinite(value):
            return self._fit(Decimal(repr(value)), repr(value), ctx)
        got = f"string {_show(value)}" if kind is str else _kind(value)
        ctx.fail(f"expected a decimal number as a string or number (Avro {self.logical}), got {got}")
        return None

    def _fit(self, number: Decimal, shown: str, ctx: _Ctx) -> Decimal | None:
        if number and number.adjusted() >= self.precision - self.scale:
            ctx.fail(f"{shown} has too many digits for Avro {self.logical} "
                     f"(at most {self.precision - self.scale} before the point)")
            return None
        try:
            fitted = number.quantize(self.quantum, context=self.context)
        except InvalidOperation:
            fitted = None
        if fitted is None or fitted != number:
            ctx.fail(f"{shown} has more than {self.scale} decimal places (Avro {self.logical})")
            return None
        return fitted  # fastavro's parser already checked that the precision fits a fixed's size

    def dump(self, datum: Any) -> Any:
        if not isinstance(datum, Decimal):
            datum = self._from_bytes(bytes(datum))
        return format(datum, "f")

    def _from_bytes(self, data: bytes) -> Decimal:
        return Decimal(f"{int.from_bytes(data, 'big', signed=True)}E-{self.scale}")

    def default(self, value: Any) -> Any:
        number = self._from_bytes((self.fixed or _Bytes()).default(value))
        ctx = _Ctx([])
        fitted = self._fit(number, str(number), ctx)
        if ctx.problems:
            raise ValueError(ctx.problems[0][1])
        return fitted

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, Decimal)


_PRIMITIVES: dict[str, Any] = {
    "null": _Null,
    "boolean": _Boolean,
    "int": lambda: _Integer("int", 32),
    "long": lambda: _Integer("long", 64),
    "float": lambda: _Floating("float"),
    "double": lambda: _Floating("double"),
    "bytes": _Bytes,
    "string": _String,
}


def _logical(schema: dict[str, Any], fixed: _Fixed | None = None) -> _Node | None:
    """The node for a logical type fastavro knows; None means: use the underlying type (Avro's rule)."""
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        precision, scale = schema.get("precision"), schema.get("scale", 0)
        if type(precision) is int and type(scale) is int and 0 <= scale <= precision and precision > 0:
            return _Decimal(precision, scale, fixed)
        return None
    simple = {
        ("long", "timestamp-millis"): lambda: _Timestamp(logical, 1000, local=False),
        ("long", "timestamp-micros"): lambda: _Timestamp(logical, 1_000_000, local=False),
        ("long", "local-timestamp-millis"): lambda: _Timestamp(logical, 1000, local=True),
        ("long", "local-timestamp-micros"): lambda: _Timestamp(logical, 1_000_000, local=True),
        ("int", "date"): _Date,
        ("int", "time-millis"): lambda: _Time(logical, 1000),
        ("long", "time-micros"): lambda: _Time(logical, 1_000_000),
        ("string", "uuid"): _Uuid,
    }
    factory = simple.get((kind, logical))
    return factory() if factory else None


def _compile(schema: Any, named: dict[str, _Node], records: list[_Record]) -> _Node:
    """Walk a schema parsed by fastavro: named types carry full names, later uses are full-name strings."""
    if isinstance(schema, list):
        return _Union([_compile(branch, named, records) for branch in schema])
    if isinstance(schema, str):
        return _PRIMITIVES[schema]() if schema in _PRIMITIVES else named[schema]
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _compile(kind, named, records)
    if kind in ("record", "error"):
        record = _Record(schema["name"])
        named[record.wrap_name] = record
        records.append(record)
        for field in schema["fields"]:
            record.add_field(_Field(field["name"], _compile(field["type"], named, records), field))
        return record
    node: _Node
    if kind == "enum":
        node = _Enum(schema["name"], list(schema["symbols"]))
    elif kind == "fixed":
        fixed = _Fixed(schema["name"], schema["size"])
        node = _logical(schema, fixed) or fixed
    elif kind == "array":
        return _Array(_compile(schema["items"], named, records))
    elif kind == "map":
        return _Map(_compile(schema["values"], named, records))
    else:
        return _logical(schema) or _compile(kind, named, records)
    named[schema["name"]] = node
    return node


class NaturalJson:
    """Natural JSON <-> fastavro datum for one Avro schema, compiled once; safe to share across requests."""

    def __init__(self, schema: Any, *, name: str | None = None) -> None:
        try:
            parsed = fastavro.parse_schema(schema, _write_hint=False)
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            raise ContractError(f"schema is not valid Avro: {exc}") from exc
        records: list[_Record] = []
        self._root = _compile(parsed, {}, records)
        for record in records:
            record.resolve_defaults()
        self.schema = schema
        self.name = name or (parsed.get("name") if isinstance(parsed, dict) else None) or self._root.display

    @classmethod
    def for_schema(cls, schema: Any) -> NaturalJson:
        """The shared converter for this schema, compiled on first use (keyed by the schema's JSON text)."""
        return _cached(json.dumps(schema, sort_keys=True, separators=(",", ":")))

    def from_json(self, value: Any, *, schema_name: str | None = None) -> Any:
        """A datum for ``fastavro.schemaless_writer``; EventValidationError lists every problem by path."""
        ctx, datum = _Ctx([]), None
        try:
            datum = self._root.load(value, ctx)
        except RecursionError:
            ctx.problems = [("$", "the event is nested too deeply")]
        if ctx.problems:
            raise EventValidationError(schema_name or self.name, ctx.problems)
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
