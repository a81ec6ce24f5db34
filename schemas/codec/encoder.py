"""The encoder's source: lines that append a value's Avro binary to ``out``, one function per record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.codec.emitter import Emitter
from schemas.codec.logical import LOGICAL_WRITERS, logical_key
from schemas.codec.runtime import LEN, TIMESTAMP_UNITS
from schemas.model import Array, AvroType, Enum, Fixed, Map, Primitive, Record, Union, is_null, nullable


class EncoderSource:
    def __init__(self, emitter: Emitter) -> None:
        self.emit = emitter
        self.writers: dict[str, str] = {}

    def write(self, schema: AvroType, v: str, ind: str) -> list[str]:
        """Lines that append the encoding of local ``v`` (of ``schema``) to ``out``."""
        emit = self.emit
        lines: list[str] = []
        key = logical_key(schema)
        if key in TIMESTAMP_UNITS:
            # aware datetimes inline, with fastavro's arithmetic; anything else (naive, int) as fastavro does it
            unit = emit.const(TIMESTAMP_UNITS[key], "_unit")
            prepare = emit.const(LOGICAL_WRITERS[key], "_lw")
            lines += [
                f"{ind}try: {v} = ({v} - _EPOCH) // {unit}",
                f"{ind}except TypeError: {v} = {prepare}({v}, {emit.const(schema.spec, '_s')})",
            ]
        elif key is not None and key in LOGICAL_WRITERS:
            lines.append(f"{ind}{v} = {emit.const(LOGICAL_WRITERS[key], '_lw')}({v}, {emit.const(schema.spec, '_s')})")
        if isinstance(schema, Primitive):
            lines += self._primitive(schema.name, v, ind)
        elif isinstance(schema, Fixed):
            lines += [f"{ind}if len({v}) != {schema.size}: _bad_fixed({v}, {schema.size})", f"{ind}out += {v}"]
        elif isinstance(schema, Enum):
            index = emit.const({sym: LEN[i] for i, sym in enumerate(schema.symbols)}, "_sym")
            lines.append(f"{ind}out += {index}[{v}]")
        elif isinstance(schema, Array):
            n, item = emit.var("n"), emit.var("i")
            lines += [
                f"{ind}{n} = len({v})",
                f"{ind}if {n}:",
                *self._write_len(n, ind + "    "),
                f"{ind}    for {item} in {v}:",
                *self.write(schema.items, item, ind + "        "),
                f"{ind}out.append(0)",
            ]
        elif isinstance(schema, Map):
            n, k, item, kb = emit.var("n"), emit.var("k"), emit.var("x"), emit.var("b")
            lines += [
                f"{ind}{n} = len({v})",
                f"{ind}if {n}:",
                *self._write_len(n, ind + "    "),
                f"{ind}    for {k}, {item} in {v}.items():",
                f"{ind}        {kb} = {k}.encode()",
                *self._write_len(f"len({kb})", ind + "        "),
                f"{ind}        out += {kb}",
                *self.write(schema.values, item, ind + "        "),
                f"{ind}out.append(0)",
            ]
        elif isinstance(schema, Union):
            lines += self._write_union(schema, v, ind)
        else:
            lines.append(f"{ind}{self.record_writer(schema)}(out, {v})")
        return lines

    def _primitive(self, kind: str, v: str, ind: str) -> list[str]:
        if kind == "null":
            return [f"{ind}if {v} is not None: _not_null({v})"]
        if kind == "boolean":
            return [
                f"{ind}if {v} is True: out.append(1)",
                f"{ind}elif {v} is False: out.append(0)",
                f"{ind}else: _not_bool({v})",
            ]
        if kind in ("int", "long"):
            z = self.emit.var("z")
            slow = "_wlong" if kind == "long" else "_wint"
            return [
                f"{ind}{z} = ({v} << 1) ^ ({v} >> 63)",
                f"{ind}if {z} < 0x80: out.append({z})",
                f"{ind}else: {slow}(out, {v})",
            ]
        if kind == "float":
            return [f"{ind}out += _pack_f({v})"]
        if kind == "double":
            return [f"{ind}out += _pack_d({v})"]
        if kind == "string":
            b = self.emit.var("b")
            return [f"{ind}{b} = {v}.encode()", *self._write_len(f"len({b})", ind), f"{ind}out += {b}"]
        return [*self._write_len(f"len({v})", ind), f"{ind}out += {v}"]  # bytes

    def _write_len(self, n: str, ind: str) -> list[str]:
        if not n.isidentifier():
            var = self.emit.var("n")
            return [f"{ind}{var} = {n}", *self._write_len(var, ind)]
        return [f"{ind}out += _LEN[{n}] if {n} < _LENN else _wlen({n})"]

    def _write_union(self, union: Union, v: str, ind: str) -> list[str]:
        branches = union.branches
        nulls = [i for i, b in enumerate(branches) if is_null(b)]
        if len(branches) == 2 and len(nulls) == 1:
            other = 1 - nulls[0]
            return [
                f"{ind}if {v} is None: out.append({nulls[0] * 2})",
                # a tuple is fastavro's (branch name, value) notation, as schemas.natural emits it
                f"{ind}elif type({v}) is tuple: fastavro_write(out, {v}, {self.emit.const(union.spec, '_s')}, _NAMED)",
                f"{ind}else:",
                f"{ind}    out.append({other * 2})",
                *self.write(branches[other], v, ind + "    "),
            ]
        # branch choice (type checks, tuple notation, "-type" keys) is fastavro's
        return [f"{ind}fastavro_write(out, {v}, {self.emit.const(union.spec, '_s')}, _NAMED)"]

    def record_writer(self, record: Record) -> str:
        name = record.fullname
        if name not in self.writers:
            fn = self.writers[name] = self.emit.function_name("_w_", name)
            body = self.record_body(record, "r", "    ")
            self.emit.functions.append("\n".join([f"def {fn}(out, r):", *body, "    return None"]))
        return self.writers[name]

    def record_body(self, record: Record, r: str, ind: str) -> list[str]:
        fields = record.fields
        filler = self.emit.const(RecordFiller(record), "_fill")
        lines = [f"{ind}if len({r}) != {len(fields)}: {r} = {filler}({r})"]
        for field in fields:
            v = self.emit.var("v")
            lines.append(f"{ind}{v} = {r}[{field.name!r}]")
            lines += self.write(field.type, v, ind)
        return lines


class RecordFiller:
    """Completes a record dict that lacks fields (defaults, or None for nullable fields); refuses extras."""

    def __init__(self, record: Record) -> None:
        self.name = record.fullname
        self.names = [f.name for f in record.fields]
        self.known = frozenset(self.names)
        self.defaults: dict[str, Any] = {}
        self.required: set[str] = set()
        for f in record.fields:
            if f.has_default:
                self.defaults[f.name] = writer_default(f.default, f.type)
            elif nullable(f.type):
                self.defaults[f.name] = None
            else:
                self.required.add(f.name)

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


def writer_default(value: Any, schema: AvroType) -> Any:
    """A field default (JSON) as the writer takes it: bytes/fixed defaults are strings of code points 0-255."""
    if isinstance(schema, Union):
        return writer_default(value, schema.branches[0])
    if (isinstance(schema, Fixed) or (isinstance(schema, Primitive) and schema.name == "bytes")) and isinstance(
        value, str
    ):
        return value.encode("latin-1")
    return value
