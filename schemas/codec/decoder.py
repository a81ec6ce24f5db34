"""The decoder's source: lines that read a value at ``data[pos]`` and advance ``pos``, one function per record."""

from __future__ import annotations

from schemas.codec.emitter import Emitter
from schemas.codec.logical import LOGICAL_READERS, logical_key
from schemas.codec.runtime import TIMESTAMP_UNITS
from schemas.model import Array, AvroType, Enum, Fixed, Map, Primitive, Record, Union

_STRING = Primitive("string", spec="string")


class DecoderSource:
    def __init__(self, emitter: Emitter) -> None:
        self.emit = emitter
        self.readers: dict[str, str] = {}

    def read(self, schema: AvroType, v: str, ind: str) -> list[str]:
        """Lines that decode a value of ``schema`` at ``data[pos]`` into local ``v`` and advance ``pos``."""
        emit = self.emit
        key = logical_key(schema)
        lines: list[str] = []
        if isinstance(schema, Primitive):
            lines += self._primitive(schema.name, key, v, ind)
        elif isinstance(schema, Fixed):
            lines += [f"{ind}{v} = data[pos:pos + {schema.size}]", f"{ind}pos += {schema.size}"]
        elif isinstance(schema, Enum):
            index = emit.var("n")
            symbols = emit.const(schema.symbols, "_syms")
            lines += [
                *self._read_long(index, ind),
                f"{ind}if 0 <= {index} < {len(schema.symbols)}: {v} = {symbols}[{index}]",
                f"{ind}else: _bad_index('enum symbol', {index})",
            ]
        elif isinstance(schema, (Array, Map)):
            lines += self._read_blocks(schema, v, ind)
        elif isinstance(schema, Union):
            index = emit.var("n")
            lines += self._read_long(index, ind)
            for i, branch in enumerate(schema.branches):
                lines.append(f"{ind}{'if' if i == 0 else 'elif'} {index} == {i}:")
                lines += self.read(branch, v, ind + "    ")
            lines.append(f"{ind}else: _bad_index('union branch', {index})")
        else:
            lines.append(f"{ind}{v}, pos = {self.record_reader(schema)}(data, pos)")
        if key in TIMESTAMP_UNITS:  # fastavro's epoch + timedelta, without its keyword-argument call
            scale = " * 1000" if key == "long-timestamp-millis" else ""
            lines.append(f"{ind}{v} = _EPOCH + _TD(0, 0, {v}{scale})")
        elif key is not None and key in LOGICAL_READERS:
            lines.append(
                f"{ind}{v} = {emit.const(LOGICAL_READERS[key], '_lr')}({v}, {emit.const(schema.spec, '_s')}, None)"
            )
        return lines

    def _primitive(self, kind: str, key: str | None, v: str, ind: str) -> list[str]:
        if kind == "null":
            return [f"{ind}{v} = None"]
        if kind == "boolean":
            return [f"{ind}{v} = data[pos] != 0", f"{ind}pos += 1"]
        if kind in ("int", "long"):
            return self._read_timestamp(v, ind) if key in TIMESTAMP_UNITS else self._read_long(v, ind)
        if kind == "float":
            return [f"{ind}{v} = _unpack_f(data, pos)[0]", f"{ind}pos += 4"]
        if kind == "double":
            return [f"{ind}{v} = _unpack_d(data, pos)[0]", f"{ind}pos += 8"]
        c, start = self.emit.var("c"), self.emit.var("p")
        decode = ".decode()" if kind == "string" else ""
        return [
            f"{ind}{c} = data[pos]",
            f"{ind}if not {c} & 0x81:",  # a length under 64: one byte
            f"{ind}    {start} = pos + 1",
            f"{ind}    pos = {start} + ({c} >> 1)",
            f"{ind}else:",
            f"{ind}    {c}, {start} = _rlen(data, pos + 1, {c})",
            f"{ind}    pos = {start} + {c}",
            f"{ind}{v} = data[{start}:pos]{decode}",
        ]

    def _read_long(self, v: str, ind: str) -> list[str]:
        b = self.emit.var("c")
        return [
            f"{ind}{b} = data[pos]",
            f"{ind}pos += 1",
            f"{ind}if {b} < 0x80: {v} = ({b} >> 1) ^ -({b} & 1)",
            f"{ind}else: {v}, pos = _rlong(data, pos, {b})",
        ]

    def _read_timestamp(self, v: str, ind: str) -> list[str]:
        """A long that is usually 6 bytes (epoch millis): _rlong's cached path inlined."""
        b, b2, high = self.emit.var("c"), self.emit.var("c"), self.emit.var("h")
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

    def _read_blocks(self, schema: Array | Map, v: str, ind: str) -> list[str]:
        is_array = isinstance(schema, Array)
        item_schema = schema.items if isinstance(schema, Array) else schema.values
        min_size = _min_size(item_schema) + (0 if is_array else 1)
        emit = self.emit
        count, b, item = emit.var("n"), emit.var("c"), emit.var("x")
        lines = [
            f"{ind}{v} = {'[]' if is_array else '{}'}",
            f"{ind}while True:",
            f"{ind}    {b} = data[pos]",
            f"{ind}    pos += 1",
            f"{ind}    if not {b} & 0x81: {count} = {b} >> 1",
            f"{ind}    else: {count}, pos = _rcount(data, pos, {b}, {min_size})",
            f"{ind}    if not {count}: break",
            f"{ind}    for _ in range({count}):",
        ]
        inner = ind + "        "
        if is_array:
            lines += self.read(item_schema, item, inner)
            lines.append(f"{inner}{v}.append({item})")
        else:
            key = emit.var("k")
            lines += self.read(_STRING, key, inner)
            lines += self.read(item_schema, item, inner)
            lines.append(f"{inner}{v}[{key}] = {item}")
        return lines

    def record_reader(self, record: Record) -> str:
        name = record.fullname
        if name not in self.readers:
            fn = self.readers[name] = self.emit.function_name("_r_", name)
            body, result = self.record_body(record, "    ")
            self.emit.functions.append("\n".join([f"def {fn}(data, pos):", *body, f"    return {result}, pos"]))
        return self.readers[name]

    def record_body(self, record: Record, ind: str) -> tuple[list[str], str]:
        lines: list[str] = []
        items: list[str] = []
        for field in record.fields:
            v = self.emit.var("v")
            lines += self.read(field.type, v, ind)
            items.append(f"{field.name!r}: {v}")
        return lines, "{" + ", ".join(items) + "}"


def _min_size(schema: AvroType, seen: frozenset[str] = frozenset()) -> int:
    """The fewest bytes a value of ``schema`` takes (0 or 1, or a fixed's size): bounds block counts."""
    if isinstance(schema, Primitive) and schema.name == "null":
        return 0
    if isinstance(schema, Fixed):
        return schema.size
    if isinstance(schema, Record):
        if schema.fullname in seen:
            return 0
        return min(1, sum(_min_size(f.type, seen | {schema.fullname}) for f in schema.fields))
    return 1
