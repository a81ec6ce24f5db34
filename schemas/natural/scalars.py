"""Nodes for the Avro types that hold one value: null, boolean, numbers, string, bytes, fixed, enum."""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

from schemas.natural.nodes import Ctx, Node, is_utf8, json_kind, show

_FLOAT_MAX = 3.4028234663852886e38
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}\Z")


class NullNode(Node):
    wrap_name = display = "null"
    json_types = datum_types = frozenset({type(None)})

    def load(self, value: Any, ctx: Ctx) -> Any:
        if value is not None:
            ctx.fail(f"expected null, got {json_kind(value)}")
        return None


class BooleanNode(Node):
    wrap_name = display = "boolean"
    json_types = datum_types = frozenset({bool})

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is not bool:
            ctx.fail(f"expected true or false (Avro boolean), got {json_kind(value)}")
        return value


class IntegerNode(Node):
    json_types = datum_types = frozenset({int})
    family = "number"

    def __init__(self, name: str, bits: int) -> None:
        self.wrap_name = self.display = name
        self.low, self.high = -(1 << bits - 1), (1 << bits - 1) - 1

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is not int:
            ctx.fail(f"expected an integer (Avro {self.display}), got {json_kind(value)}")
        elif not self.low <= value <= self.high:
            ctx.fail(f"integer out of range for Avro {self.display} ({self.low} to {self.high})")
        return value

    def accepts(self, datum: Any) -> bool:
        return type(datum) is int and self.low <= datum <= self.high


class FloatingNode(Node):
    json_types = frozenset({int, float, str})
    datum_types = frozenset({int, float})
    family = "number"

    def __init__(self, name: str) -> None:
        self.wrap_name = self.display = name
        self.limit = _FLOAT_MAX if name == "float" else math.inf

    def load(self, value: Any, ctx: Ctx) -> Any:
        kind = type(value)
        if kind is str and value in _NON_FINITE:
            return _NON_FINITE[value]
        if kind is not int and kind is not float:
            ctx.fail(f"expected a number (Avro {self.display}), got {json_kind(value)}")
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


class StringNode(Node):
    wrap_name = display = "string"
    json_types = datum_types = frozenset({str})

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is not str:
            ctx.fail(f"expected a string (Avro string), got {json_kind(value)}")
        elif not value.isascii() and not is_utf8(value):
            ctx.fail("string is not valid Unicode text (it holds a lone surrogate)")
        return value


def _b64decode(text: str) -> bytes | None:
    if not _BASE64.match(text):
        return None
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


class BytesNode(Node):
    wrap_name = display = "bytes"
    json_types = frozenset({str})
    datum_types = frozenset({bytes, bytearray})
    size: int | None = None

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is not str:
            ctx.fail(f"expected a base64 string (Avro {self.display}), got {json_kind(value)}")
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
            raise ValueError(f"expected a string of code points 0-255, got {json_kind(value)}")
        data = value.encode("latin-1")
        if self.size is not None and len(data) != self.size:
            raise ValueError(f"expected {self.size} bytes, got {len(data)}")
        return data


class FixedNode(BytesNode):
    datum_types = frozenset({bytes})

    def __init__(self, name: str, size: int) -> None:
        self.wrap_name = name
        self.display = f"fixed {name}"
        self.size = size

    def accepts(self, datum: Any) -> bool:
        return type(datum) is bytes and len(datum) == self.size


class EnumNode(Node):
    json_types = datum_types = frozenset({str})

    def __init__(self, name: str, symbols: list[str]) -> None:
        self.wrap_name = self.display = name
        self.symbols = frozenset(symbols)
        shown = ", ".join(repr(s) for s in symbols[:12])
        self.listing = shown + (", ..." if len(symbols) > 12 else "")

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is not str or value not in self.symbols:
            got = show(value) if type(value) is str else json_kind(value)
            ctx.fail(f"expected one of {self.listing} (Avro enum {self.display}), got {got}")
        return value

    def accepts(self, datum: Any) -> bool:
        return type(datum) is str and datum in self.symbols
