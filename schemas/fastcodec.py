"""Avro binary encoders and decoders compiled per schema: fastavro's results without its per-value dispatch.

fastavro's writer and reader walk the schema again for every value they write or read: a chain of type
comparisons, a logical-type lookup and a Python call per field, and on reading a ``read(1)`` call per
varint byte. For a schema used for millions of records it pays to walk it once and generate a Python
function that does only the work left: index the dict, encode the string, append the bytes.

What fastavro does is kept, so results match ``fastavro.schemaless_writer`` / ``schemaless_reader``
(and, for valid records, Apache avro's ``DatumWriter``, which the tests check byte for byte):

- schemas are parsed by ``fastavro.parse_schema`` (names, namespaces, named-type references);
- logical types go through fastavro's own ``LOGICAL_WRITERS`` / ``LOGICAL_READERS`` functions, except
  timestamp-millis/-micros with aware datetimes, done inline with the same arithmetic;
- a record missing a field gets the field's default (``null`` for a nullable field without one);
- unions other than ``[null, T]`` are written by fastavro's ``write_data`` from inside the generated code.

Stricter than fastavro on writing, on purpose: a record with a field the schema does not define is
refused (fastavro drops it silently), ``boolean`` takes only ``bool``, ``int``/``long`` are range-checked.
Decoding rejects a body with bytes left over after the record.

Decoding with a reader schema other than the writer's (schema resolution) is fastavro's ``_read_data``
(``resolving_decoder``), with one fix: a top-level field the writer lacks gets a fresh copy of its
default, decoded like a value, where fastavro would share one object between records.

Varints are the costly part in Python: lengths under 4096 come from a table, and the upper bytes of
large longs (epoch-millis timestamps need 6 bytes) from small caches, both ways.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import fastavro
from fastavro.logical_readers import LOGICAL_READERS
from fastavro.logical_writers import LOGICAL_WRITERS
from fastavro.schema import to_parsing_canonical_form

try:  # the compiled (Cython) fastavro: write into a bytearray, read from a file object
    from fastavro._read import _read_data as fastavro_read
    from fastavro._write import write_data as _cy_write_data
except ImportError:  # pragma: no cover - pure-Python fastavro (no wheel for this platform)
    from fastavro._read_py import read_data as _py_read_data
    from fastavro._write_py import write_data as _py_write_data
    from fastavro.io.binary_decoder import BinaryDecoder
    from fastavro.io.binary_encoder import BinaryEncoder

    _cy_write_data = None

    def fastavro_read(fo: Any, writer: Any, named: Any, reader: Any = None, options: Any = None) -> Any:
        return _py_read_data(BinaryDecoder(fo), writer, named, reader, options or {})


PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_TIMESTAMP_UNITS = {
    "long-timestamp-millis": datetime.timedelta(milliseconds=1),
    "long-timestamp-micros": datetime.timedelta(microseconds=1),
}
# More items than this in one array/map block of zero-byte values is taken for corrupt input.
MAX_EMPTY_ITEMS = 1 << 24
_FASTAVRO_WRITE_OPTIONS: dict[str, bool] = {"strict": False, "strict_allow_default": False, "disable_tuple_notation": False}
_FASTAVRO_READ_OPTIONS: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------------
# Runtime helpers the generated code calls (only on the slow side of each branch).


def _varint(z: int) -> bytes:
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Varint bytes of zig-zag(n) for the small non-negative numbers that lengths, counts and indexes are.
_LEN: tuple[bytes, ...] = tuple(_varint(n << 1) for n in range(1 << 12))
_LEN_CACHED = len(_LEN)

# Large longs (timestamps above all) are written as their low 14 bits, two bytes that both carry the
# continuation bit, then the varint of the rest; the rest changes rarely (every 8 s for epoch millis),
# so its bytes are cached. _LOW14[2 * n : 2 * n + 2] are the two low bytes for n.
_LOW14 = b"".join(bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80)) for n in range(1 << 14))
_HIGH_BYTES: dict[int, bytes] = {}
_HIGH_VALUES: dict[bytes, int] = {}  # the other way: a 4-byte varint tail -> its value
_HIGH_CACHE_SIZE = 4096


def _wlen(n: int) -> bytes:
    return _varint(n << 1)


def _wlong(out: bytearray, v: int) -> None:
    if not LONG_MIN <= v <= LONG_MAX:
        raise ValueError(f"{v} is out of range for an Avro long (64-bit)")
    z = (v << 1) ^ (v >> 63)
    if z < 0x4000:
        out += _varint(z)
        return
    high = z >> 14
    tail = _HIGH_BYTES.get(high)
    if tail is None:
        tail = _varint(high)
        if len(_HIGH_BYTES) >= _HIGH_CACHE_SIZE:
            _HIGH_BYTES.clear()
        _HIGH_BYTES[high] = tail
    low = (z & 0x3FFF) << 1
    out += _LOW14[low : low + 2]
    out += tail


def _wint(out: bytearray, v: int) -> None:
    if not INT_MIN <= v <= INT_MAX:
        raise ValueError(f"{v} is out of range for an Avro int (32-bit)")
    out += _varint((v << 1) ^ (v >> 63))


def _not_bool(v: object) -> None:
    raise TypeError(f"expected a bool, got {type(v).__name__}")


def _not_null(v: object) -> None:
    raise TypeError(f"expected None, got {type(v).__name__}")


def _bad_fixed(v: object, size: int) -> None:
    raise ValueError(f"expected {size} bytes, got {len(v) if hasattr(v, '__len__') else type(v).__name__}")  # type: ignore[arg-type]


def fastavro_write(out: bytearray, datum: Any, schema: Any, named: dict[str, Any]) -> None:
    if _cy_write_data is not None:
        _cy_write_data(out, datum, schema, named, "", _FASTAVRO_WRITE_OPTIONS)
    else:  # pragma: no cover
        buffer = BytesIO()
        _py_write_data(BinaryEncoder(buffer), datum, schema, named, "", _FASTAVRO_WRITE_OPTIONS)
        out += buffer.getvalue()


def _rlong(data: bytes, pos: int, b: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``b`` (already read) had the continuation bit set."""
    b2 = data[pos]
    if b2 < 0x80:
        n = (b & 0x7F) | (b2 << 7)
        return (n >> 1) ^ -(n & 1), pos + 1
    high = _HIGH_VALUES.get(data[pos + 1 : pos + 5])
    if high is not None:  # a 6-byte varint whose last 4 bytes were seen before
        n = (b & 0x7F) | ((b2 & 0x7F) << 7) | (high << 14)
        return (n >> 1) ^ -(n & 1), pos + 5
    start = pos
    n = b & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("a varint runs past 10 bytes")
    if pos - start == 5:
        if len(_HIGH_VALUES) >= _HIGH_CACHE_SIZE:
            _HIGH_VALUES.clear()
        _HIGH_VALUES[data[start + 1 : pos]] = n >> 14
    return (n >> 1) ^ -(n & 1), pos


def _rlen(data: bytes, pos: int, b: int) -> tuple[int, int]:
    n, pos = (b >> 1) ^ -(b & 1), pos
    if b & 0x80:
        n, pos = _rlong(data, pos, b)
    if n < 0:
        raise ValueError(f"negative length {n}")
    return n, pos


def _rcount(data: bytes, pos: int, b: int, item_min_size: int) -> tuple[int, int]:
    """A block count of an array or map; a negative count is followed by the block's size in bytes."""
    n, pos = (b >> 1) ^ -(b & 1), pos
    if b & 0x80:
        n, pos = _rlong(data, pos, b)
    if n < 0:
        n = -n
        b = data[pos]
        pos += 1
        if b & 0x80:
            _, pos = _rlong(data, pos, b)
    if item_min_size and n * item_min_size > len(data) - pos:
        raise ValueError(f"a block of {n} items cannot fit in the {len(data) - pos} bytes left")
    if n > MAX_EMPTY_ITEMS:
        raise ValueError(f"a block of {n} items is larger than {MAX_EMPTY_ITEMS}")
    return n, pos


def _bad_index(what: str, index: int) -> None:
    raise ValueError(f"{what} index {index} is out of range")


def _check_end(pos: int, size: int) -> None:
    if pos > size:
        raise EOFError(f"the Avro body ends early: {size} bytes, the record needs more")
    raise ValueError(f"{size - pos} bytes are left over after the record ({size} bytes in all)")


# ---------------------------------------------------------------------------------------------------
# Schema helpers


def _base(schema: Any, named: Mapping[str, Any]) -> tuple[str, Any]:
    """(kind, schema dict or name): kind is a primitive, record/enum/fixed/array/map, or union."""
    if isinstance(schema, list):
        return "union", schema
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema, schema
        return _base(named[schema], named)
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _base(kind, named)
    if kind in PRIMITIVES or kind in ("record", "error", "enum", "fixed", "array", "map"):
        return ("record" if kind == "error" else kind), schema
    return _base(named[kind], named)


def _logical_key(schema: Any) -> str | None:
    if isinstance(schema, dict) and "logicalType" in schema and isinstance(schema.get("type"), str):
        return f"{schema['type']}-{schema['logicalType']}"
    return None


def _min_size(schema: Any, named: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> int:
    kind, s = _base(schema, named)
    if kind == "null":
        return 0
    if kind == "fixed":
        return int(s["size"])
    if kind == "record":
        if s["name"] in seen:
            return 0
        return min(1, sum(_min_size(f["type"], named, seen | {s["name"]}) for f in s["fields"]))
    return 1


def _writer_default(value: Any, schema: Any, named: Mapping[str, Any]) -> Any:
    """A field default (JSON) as the writer takes it: bytes/fixed defaults are strings of code points 0-255."""
    kind, s = _base(schema, named)
    if kind == "union":
        return _writer_default(value, s[0], named)
    if kind in ("bytes", "fixed") and isinstance(value, str):
        return value.encode("latin-1")
    return value


_IDENT = re.compile(r"[^A-Za-z0-9_]")
_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


class _Generator:
    """Emits Python source for one top-level schema; constants travel in the namespace, never in the source."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.namespace: dict[str, Any] = {
            "_LEN": _LEN,
            "_LENN": _LEN_CACHED,
            "_wlen": _wlen,
            "_wlong": _wlong,
            "_wint": _wint,
            "_not_bool": _not_bool,
            "_not_null": _not_null,
            "_bad_fixed": _bad_fixed,
            "fastavro_write": fastavro_write,
            "_NAMED": named,
            "_rlong": _rlong,
            "_HIGH_VALUES": _HIGH_VALUES,
            "_rlen": _rlen,
            "_rcount": _rcount,
            "_bad_index": _bad_index,
            "_check_end": _check_end,
            "_EPOCH": _EPOCH,
            "_TD": datetime.timedelta,
            "_pack_f": struct.Struct("<f").pack,
            "_pack_d": struct.Struct("<d").pack,
            "_unpack_f": struct.Struct("<f").unpack_from,
            "_unpack_d": struct.Struct("<d").unpack_from,
        }
        self.functions: list[str] = []
        self.writers: dict[str, str] = {}
        self.readers: dict[str, str] = {}
        self._counter = 0

    def var(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def const(self, value: Any, prefix: str = "_k") -> str:
        name = self.var(prefix)
        self.namespace[name] = value
        return name

    def bind_locals(self, function: str) -> str:
        """Make the constants a function uses keyword-only defaults: locals are the fastest names to load."""
        header, _, body = function.partition("\n")
        used = sorted({name for name in _NAME.findall(body) if name in self.namespace})
        if not used:
            return function
        params = header[header.index("(") + 1 : header.rindex(")")]
        bound = ", ".join(f"{name}={name}" for name in used)
        return f"{header[: header.index('(')]}({params}, *, {bound}):\n{body}"

    # ---- writing ------------------------------------------------------------------------------------

    def write(self, schema: Any, v: str, ind: str) -> list[str]:
        """Lines that append the encoding of local ``v`` (of ``schema``) to ``out``."""
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return self.write(self.named[schema], v, ind)
        lines: list[str] = []
        key = _logical_key(schema)
        if key in _TIMESTAMP_UNITS:
            # aware datetimes inline, with fastavro's arithmetic; anything else (naive, int) as fastavro does it
            unit = self.const(_TIMESTAMP_UNITS[key], "_unit")
            prepare = self.const(LOGICAL_WRITERS[key], "_lw")
            lines += [
                f"{ind}try: {v} = ({v} - _EPOCH) // {unit}",
                f"{ind}except TypeError: {v} = {prepare}({v}, {self.const(schema, '_s')})",
            ]
        elif key is not None and key in LOGICAL_WRITERS:
            lines.append(f"{ind}{v} = {self.const(LOGICAL_WRITERS[key], '_lw')}({v}, {self.const(schema, '_s')})")
        kind, s = _base(schema, self.named)
        if kind == "null":
            lines.append(f"{ind}if {v} is not None: _not_null({v})")
        elif kind == "boolean":
            lines += [
                f"{ind}if {v} is True: out.append(1)",
                f"{ind}elif {v} is False: out.append(0)",
                f"{ind}else: _not_bool({v})",
            ]
        elif kind in ("int", "long"):
            z = self.var("z")
            slow = "_wlong" if kind == "long" else "_wint"
            lines += [
                f"{ind}{z} = ({v} << 1) ^ ({v} >> 63)",
                f"{ind}if {z} < 0x80: out.append({z})",
                f"{ind}else: {slow}(out, {v})",
            ]
        elif kind == "float":
            lines.append(f"{ind}out += _pack_f({v})")
        elif kind == "double":
            lines.append(f"{ind}out += _pack_d({v})")
        elif kind == "string":
            b = self.var("b")
            lines += [f"{ind}{b} = {v}.encode()", *self._write_len(f"len({b})", ind), f"{ind}out += {b}"]
        elif kind == "bytes":
            lines += [*self._write_len(f"len({v})", ind), f"{ind}out += {v}"]
        elif kind == "fixed":
            size = int(s["size"])
            lines += [f"{ind}if len({v}) != {size}: _bad_fixed({v}, {size})", f"{ind}out += {v}"]
        elif kind == "enum":
            index = self.const({sym: _LEN[i] for i, sym in enumerate(s["symbols"])}, "_sym")
            lines.append(f"{ind}out += {index}[{v}]")
        elif kind == "array":
            n, item = self.var("n"), self.var("i")
            lines += [
                f"{ind}{n} = len({v})",
                f"{ind}if {n}:",
                *self._write_len(n, ind + "    "),
                f"{ind}    for {item} in {v}:",
                *self.write(s["items"], item, ind + "        "),
                f"{ind}out.append(0)",
            ]
        elif kind == "map":
            n, k, item, kb = self.var("n"), self.var("k"), self.var("x"), self.var("b")
            lines += [
                f"{ind}{n} = len({v})",
                f"{ind}if {n}:",
                *self._write_len(n, ind + "    "),
                f"{ind}    for {k}, {item} in {v}.items():",
                f"{ind}        {kb} = {k}.encode()",
                *self._write_len(f"len({kb})", ind + "        "),
                f"{ind}        out += {kb}",
                *self.write(s["values"], item, ind + "        "),
                f"{ind}out.append(0)",
            ]
        elif kind == "union":
            lines += self._write_union(s, v, ind)
        elif kind == "record":
            lines.append(f"{ind}{self.record_writer(s)}(out, {v})")
        else:  # pragma: no cover - _base returns only the kinds above
            raise ValueError(f"cannot compile Avro type {kind!r}")
        return lines

    def _write_len(self, n: str, ind: str) -> list[str]:
        if not n.isidentifier():
            var = self.var("n")
            return [f"{ind}{var} = {n}", *self._write_len(var, ind)]
        return [f"{ind}out += _LEN[{n}] if {n} < _LENN else _wlen({n})"]

    def _write_union(self, branches: list[Any], v: str, ind: str) -> list[str]:
        nulls = [i for i, b in enumerate(branches) if b == "null"]
        if len(branches) == 2 and len(nulls) == 1:
            other = 1 - nulls[0]
            return [
                f"{ind}if {v} is None: out.append({nulls[0] * 2})",
                # a tuple is fastavro's (branch name, value) notation, as schemas.natural_json emits it
                f"{ind}elif type({v}) is tuple: fastavro_write(out, {v}, {self.const(branches, '_s')}, _NAMED)",
                f"{ind}else:",
                f"{ind}    out.append({other * 2})",
                *self.write(branches[other], v, ind + "    "),
            ]
        # branch choice (type checks, tuple notation, "-type" keys) is fastavro's
        return [f"{ind}fastavro_write(out, {v}, {self.const(branches, '_s')}, _NAMED)"]

    def record_writer(self, schema: dict[str, Any]) -> str:
        name = schema["name"]
        if name not in self.writers:
            fn = self.writers[name] = self.var("_w_" + _IDENT.sub("_", name) + "_")
            body = self.record_write_body(schema, "r", "    ")
            self.functions.append("\n".join([f"def {fn}(out, r):", *body, "    return None"]))
        return self.writers[name]

    def record_write_body(self, schema: dict[str, Any], r: str, ind: str) -> list[str]:
        fields = schema["fields"]
        filler = self.const(_RecordFiller(schema, self.named), "_fill")
        lines = [f"{ind}if len({r}) != {len(fields)}: {r} = {filler}({r})"]
        for field in fields:
            v = self.var("v")
            lines.append(f"{ind}{v} = {r}[{field['name']!r}]")
            lines += self.write(field["type"], v, ind)
        return lines

    # ---- reading ------------------------------------------------------------------------------------

    def read(self, schema: Any, v: str, ind: str) -> list[str]:
        """Lines that decode a value of ``schema`` at ``data[pos]`` into local ``v`` and advance ``pos``."""
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return self.read(self.named[schema], v, ind)
        kind, s = _base(schema, self.named)
        lines: list[str] = []
        if kind == "null":
            lines.append(f"{ind}{v} = None")
        elif kind == "boolean":
            lines += [f"{ind}{v} = data[pos] != 0", f"{ind}pos += 1"]
        elif kind in ("int", "long") and _logical_key(schema) in _TIMESTAMP_UNITS:
            lines += self._read_timestamp(v, ind)
        elif kind in ("int", "long"):
            lines += self._read_long(v, ind)
        elif kind == "float":
            lines += [f"{ind}{v} = _unpack_f(data, pos)[0]", f"{ind}pos += 4"]
        elif kind == "double":
            lines += [f"{ind}{v} = _unpack_d(data, pos)[0]", f"{ind}pos += 8"]
        elif kind in ("string", "bytes"):
            c, start = self.var("c"), self.var("p")
            decode = ".decode()" if kind == "string" else ""
            lines += [
                f"{ind}{c} = data[pos]",
                f"{ind}if not {c} & 0x81:",  # a length under 64: one byte
                f"{ind}    {start} = pos + 1",
                f"{ind}    pos = {start} + ({c} >> 1)",
                f"{ind}else:",
                f"{ind}    {c}, {start} = _rlen(data, pos + 1, {c})",
                f"{ind}    pos = {start} + {c}",
                f"{ind}{v} = data[{start}:pos]{decode}",
            ]
        elif kind == "fixed":
            size = int(s["size"])
            lines += [f"{ind}{v} = data[pos:pos + {size}]", f"{ind}pos += {size}"]
        elif kind == "enum":
            index = self.var("n")
            symbols = self.const(tuple(s["symbols"]), "_syms")
            lines += [
                *self._read_long(index, ind),
                f"{ind}if 0 <= {index} < {len(s['symbols'])}: {v} = {symbols}[{index}]",
                f"{ind}else: _bad_index('enum symbol', {index})",
            ]
        elif kind in ("array", "map"):
            lines += self._read_blocks(kind, s, v, ind)
        elif kind == "union":
            index = self.var("n")
            lines += self._read_long(index, ind)
            for i, branch in enumerate(s):
                lines.append(f"{ind}{'if' if i == 0 else 'elif'} {index} == {i}:")
                lines += self.read(branch, v, ind + "    ")
            lines.append(f"{ind}else: _bad_index('union branch', {index})")
        elif kind == "record":
            lines.append(f"{ind}{v}, pos = {self.record_reader(s)}(data, pos)")
        else:  # pragma: no cover
            raise ValueError(f"cannot compile Avro type {kind!r}")
        key = _logical_key(schema)
        if key in _TIMESTAMP_UNITS:  # fastavro's epoch + timedelta, without its keyword-argument call
            scale = " * 1000" if key == "long-timestamp-millis" else ""
            lines.append(f"{ind}{v} = _EPOCH + _TD(0, 0, {v}{scale})")
        elif key is not None and key in LOGICAL_READERS:
            lines.append(f"{ind}{v} = {self.const(LOGICAL_READERS[key], '_lr')}({v}, {self.const(schema, '_s')}, None)")
        return lines

    def _read_long(self, v: str, ind: str) -> list[str]:
        b = self.var("c")
        return [
            f"{ind}{b} = data[pos]",
            f"{ind}pos += 1",
            f"{ind}if {b} < 0x80: {v} = ({b} >> 1) ^ -({b} & 1)",
            f"{ind}else: {v}, pos = _rlong(data, pos, {b})",
        ]

    def _read_timestamp(self, v: str, ind: str) -> list[str]:
        """A long that is usually 6 bytes (epoch millis): _rlong's cached path inlined."""
        b, b2, high = self.var("c"), self.var("c"), self.var("h")
        return [
            f"{ind}{b} = data[pos]",
            f"{ind}{b2} = data[pos + 1] if {b} >= 0x80 else 0",
            f"{ind}if {b2} >= 0x80 and ({high} := _HIGH_VALUES.get(data[pos + 2 : pos + 6])) is not None:",
            f"{ind}    {v} = ({b} & 0x7F) | (({b2} & 0x7F) << 7) | ({high} << 14)",
            f"{ind}    {v} = ({v} >> 1) ^ -({v} & 1)",
            f"{ind}    pos += 6",
            f"{ind}elif {b} < 0x80:",
            f"{ind}    {v} = ({b} >> 1) ^ -({b} & 1)",
            f"{ind}    pos += 1",
            f"{ind}else: {v}, pos = _rlong(data, pos + 1, {b})",
        ]

    def _read_blocks(self, kind: str, s: dict[str, Any], v: str, ind: str) -> list[str]:
        item_schema = s["items"] if kind == "array" else s["values"]
        min_size = _min_size(item_schema, self.named) + (1 if kind == "map" else 0)
        count, b, item = self.var("n"), self.var("c"), self.var("x")
        lines = [
            f"{ind}{v} = {'[]' if kind == 'array' else '{}'}",
            "{ind}while True:".format(ind=ind),
            f"{ind}    {b} = data[pos]",
            f"{ind}    pos += 1",
            f"{ind}    if not {b} & 0x81: {count} = {b} >> 1",
            f"{ind}    else: {count}, pos = _rcount(data, pos, {b}, {min_size})",
            f"{ind}    if not {count}: break",
            f"{ind}    for _ in range({count}):",
        ]
        inner = ind + "        "
        if kind == "array":
            lines += self.read(item_schema, item, inner)
            lines.append(f"{inner}{v}.append({item})")
        else:
            key = self.var("k")
            lines += self.read("string", key, inner)
            lines += self.read(item_schema, item, inner)
            lines.append(f"{inner}{v}[{key}] = {item}")
        return lines

    def record_reader(self, schema: dict[str, Any]) -> str:
        name = schema["name"]
        if name not in self.readers:
            fn = self.readers[name] = self.var("_r_" + _IDENT.sub("_", name) + "_")
            body, result = self.record_read_body(schema, "    ")
            self.functions.append("\n".join([f"def {fn}(data, pos):", *body, f"    return {result}, pos"]))
        return self.readers[name]

    def record_read_body(self, schema: dict[str, Any], ind: str) -> tuple[list[str], str]:
        lines: list[str] = []
        items: list[str] = []
        for field in schema["fields"]:
            v = self.var("v")
            lines += self.read(field["type"], v, ind)
            items.append(f"{field['name']!r}: {v}")
        return lines, "{" + ", ".join(items) + "}"


class _RecordFiller:
    """Completes a record dict that lacks fields (defaults, or None for nullable fields); refuses extras."""

    def __init__(self, schema: dict[str, Any], named: Mapping[str, Any]) -> None:
        self.name = schema["name"]
        self.names = [f["name"] for f in schema["fields"]]
        self.known = frozenset(self.names)
        self.defaults: dict[str, Any] = {}
        self.required: set[str] = set()
        for f in schema["fields"]:
            if "default" in f:
                self.defaults[f["name"]] = _writer_default(f["default"], f["type"], named)
            elif _nullable(f["type"], named):
                self.defaults[f["name"]] = None
            else:
                self.required.add(f["name"])

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        extra = [key for key in record if key not in self.known]
        if extra:
            raise ValueError(f"{self.name} has no field {', '.join(map(str, extra))}")
        missing = [name for name in self.names if name not in record]
        required = [name for name in missing if name in self.required]
        if required:
            raise ValueError(f"{self.name} field {', '.join(required)} is missing and has no default")
        filled = dict(record)
        for name in missing:
            filled[name] = self.defaults[name]
        return filled


def _nullable(schema: Any, named: Mapping[str, Any]) -> bool:
    kind, s = _base(schema, named)
    return kind == "null" or (kind == "union" and any(_base(b, named)[0] == "null" for b in s))


# ---------------------------------------------------------------------------------------------------
# Why a record cannot be written: walked only after the generated encoder has refused it.

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _join(path: str, segment: str | int) -> str:
    if isinstance(segment, int):
        return f"{path}[{segment}]"
    if _IDENTIFIER.match(segment):
        return f"{path}.{segment}" if path else segment
    return f"{path}[{json.dumps(segment, ensure_ascii=False)}]"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def problems(value: Any, schema: Any, named: Mapping[str, Any], path: str = "") -> list[tuple[str, str]]:
    """Every reason ``value`` cannot be written as ``schema``, as (field path, problem); [] if none found."""
    out: list[tuple[str, str]] = []
    _problems(value, schema, named, path, out)
    return out


def _problems(value: Any, schema: Any, named: Mapping[str, Any], path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(schema, str) and schema not in PRIMITIVES:
        schema = named[schema]
    where = path or "$"
    key = _logical_key(schema)
    if key is not None and key in LOGICAL_WRITERS and value is not None:
        try:
            value = LOGICAL_WRITERS[key](value, schema)
        except Exception as exc:  # noqa: BLE001 - any failure is the value's
            out.append((where, f"not a valid {schema['logicalType']}: {exc}"))
            return
    kind, s = _base(schema, named)
    ok_types: dict[str, tuple[type, ...]] = {
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
    if kind == "union":
        _union_problems(value, s, named, path, out)
        return
    expected = ok_types[kind]
    if not isinstance(value, expected) or (kind in ("float", "double") and isinstance(value, bool)):
        described = kind if kind not in ("record", "enum", "fixed") else f"{kind} {s['name']}"
        out.append((where, f"expected {described}, got {_type_name(value)}"))
        return
    if kind in ("int", "long"):
        low, high = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
        if not low <= value <= high:
            out.append((where, f"{value} is out of range for an Avro {kind}"))
    elif kind == "fixed" and len(value) != int(s["size"]):
        out.append((where, f"expected {s['size']} bytes, got {len(value)}"))
    elif kind == "enum" and value not in s["symbols"]:
        out.append((where, f"{value!r} is not one of {', '.join(s['symbols'])}"))
    elif kind == "array":
        for index, item in enumerate(value):
            _problems(item, s["items"], named, _join(path, index), out)
    elif kind == "map":
        for map_key, item in value.items():
            if not isinstance(map_key, str):
                out.append((where, f"map keys must be strings, got {_type_name(map_key)}"))
                continue
            _problems(item, s["values"], named, _join(path, map_key), out)
    elif kind == "record":
        _record_problems(value, s, named, path, out)


def _record_problems(value: Mapping[str, Any], s: dict[str, Any], named: Mapping[str, Any], path: str, out: list[tuple[str, str]]) -> None:
    known = {f["name"] for f in s["fields"]}
    for extra in value:
        if extra not in known:
            out.append((_join(path, str(extra)), f"{s['name']} has no such field"))
    for field in s["fields"]:
        name = field["name"]
        if name in value:
            _problems(value[name], field["type"], named, _join(path, name), out)
        elif "default" not in field and not _nullable(field["type"], named):
            out.append((_join(path, name), "missing, and the field has no default"))


def _union_problems(value: Any, branches: list[Any], named: Mapping[str, Any], path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(value, tuple) and len(value) == 2:
        return  # fastavro's (branch, value) notation: fastavro checks it when writing
    found: list[list[tuple[str, str]]] = []
    for branch in branches:
        branch_problems = problems(value, branch, named, path)
        if not branch_problems:
            return
        found.append(branch_problems)
    others = [p for b, p in zip(branches, found, strict=True) if b != "null"]
    if value is not None and len(others) == 1:
        out.extend(others[0])  # an optional field: say what is wrong with the value itself
        return
    listing = ", ".join(_base(b, named)[0] if not isinstance(b, str) or b in PRIMITIVES else b for b in branches)
    out.append((path or "$", f"{_type_name(value)} fits none of the union's branches ({listing})"))


# ---------------------------------------------------------------------------------------------------
# Public


@dataclass(frozen=True, eq=False)
class CompiledSchema:
    """One parsed schema with its generated ``encode(record) -> bytes`` and ``decode(bytes) -> record``."""

    name: str
    parsed: Any  # fastavro's parsed form
    named: dict[str, Any]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    source: str

    @functools.cached_property
    def canonical_form(self) -> str:
        """Avro's Parsing Canonical Form: equal forms decode the same bytes the same way."""
        return str(to_parsing_canonical_form(self.parsed))


def compile_schema(schema: Any) -> CompiledSchema:
    """Parse ``schema`` (JSON text or a dict) with fastavro and generate its encoder and decoder."""
    if isinstance(schema, (str, bytes)):
        schema = json.loads(schema)
    named: dict[str, Any] = {}
    parsed = fastavro.parse_schema(copy.deepcopy(schema), named)
    gen = _Generator(named)
    kind, s = _base(parsed, named)
    encode_lines = ["def encode(r):", "    out = bytearray()"]
    decode_lines = ["def decode(data):", "    pos = 0"]
    if kind == "record":
        encode_lines += gen.record_write_body(s, "r", "    ")
        body, result = gen.record_read_body(s, "    ")
        decode_lines += body
        decode_lines += ["    if pos != len(data): _check_end(pos, len(data))", f"    return {result}"]
    else:
        encode_lines += gen.write(parsed, "r", "    ")
        decode_lines += gen.read(parsed, "value", "    ")
        decode_lines += ["    if pos != len(data): _check_end(pos, len(data))", "    return value"]
    encode_lines.append("    return bytes(out)")
    functions = [*gen.functions, "\n".join(encode_lines), "\n".join(decode_lines)]
    source = "\n\n".join(gen.bind_locals(f) for f in functions) + "\n"
    namespace = gen.namespace
    name = s["name"] if isinstance(s, dict) and "name" in s else str(kind)
    exec(compile(source, f"<avro codec {name}>", "exec"), namespace)  # noqa: S102 - source built above, names only
    return CompiledSchema(name, parsed, named, namespace["encode"], namespace["decode"], source)


def resolving_decoder(writer: CompiledSchema, reader: CompiledSchema) -> Callable[[bytes], Any]:
    """Decode ``writer``'s bytes into ``reader``'s shape: the writer's own decoder when the two are the
    same schema (same Parsing Canonical Form), otherwise fastavro's schema resolution."""
    if reader is writer or reader.canonical_form == writer.canonical_form:
        return writer.decode
    return _Resolution(writer, reader).decode


class _Resolution:
    __slots__ = ("writer", "reader", "named", "fresh_defaults")

    def __init__(self, writer: CompiledSchema, reader: CompiledSchema) -> None:
        self.writer = writer
        self.reader = reader
        self.named = {"writer": writer.named, "reader": reader.named}
        self.fresh_defaults = _added_field_defaults(writer, reader)

    def decode(self, data: bytes) -> Any:
        fo = BytesIO(data)
        record = fastavro_read(fo, self.writer.parsed, self.named, self.reader.parsed, _FASTAVRO_READ_OPTIONS)
        if fo.tell() != len(data):
            _check_end(fo.tell(), len(data))
        for name, default in self.fresh_defaults:
            # fastavro hands out the schema's own default object: each record gets its own copy
            record[name] = copy.deepcopy(default)
        return record


def _added_field_defaults(writer: CompiledSchema, reader: CompiledSchema) -> list[tuple[str, Any]]:
    """Top-level reader fields the writer lacks, with their defaults decoded as a written value would be
    (fastavro returns a default as the JSON value: 0, not a datetime, for a timestamp-millis field)."""
    if not (isinstance(writer.parsed, dict) and isinstance(reader.parsed, dict)):
        return []
    if writer.parsed.get("type") != "record" or reader.parsed.get("type") != "record":
        return []
    written = {f["name"] for f in writer.parsed["fields"]}
    out: list[tuple[str, Any]] = []
    for field in reader.parsed["fields"]:
        if field["name"] in written or set(field.get("aliases", [])) & written or "default" not in field:
            continue
        out.append((field["name"], _typed_default(field, reader.named)))
    return out


def _typed_default(field: dict[str, Any], named: dict[str, Any]) -> Any:
    body = bytearray()
    try:
        fastavro_write(body, _writer_default(field["default"], field["type"], named), field["type"], named)
        return fastavro_read(BytesIO(bytes(body)), field["type"], {"writer": named, "reader": named}, None, {})
    except Exception:  # noqa: BLE001 - a default fastavro cannot round-trip stays as fastavro gives it
        return field["default"]
