"""The generated module's namespace and the conventions its source follows.

Constants (symbol tables, schemas handed to fastavro, logical-type functions) travel in the namespace,
never in the source: a schema's names reach the source only as ``repr`` literals.
"""

from __future__ import annotations

import datetime
import re
import struct
from typing import Any

from schemas.codec import runtime as rt

_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
IDENT = re.compile(r"[^A-Za-z0-9_]")


class Emitter:
    """Fresh local names, constants and the finished functions of one generated module."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.namespace: dict[str, Any] = {
            "_LEN": rt.LEN,
            "_LENN": rt.LEN_CACHED,
            "_wlen": rt.wlen,
            "_wlong": rt.wlong,
            "_wint": rt.wint,
            "_not_bool": rt.not_bool,
            "_not_null": rt.not_null,
            "_bad_fixed": rt.bad_fixed,
            "fastavro_write": rt.fastavro_write,
            "_NAMED": named,
            "_rlong": rt.rlong,
            "_HIGH_VALUES": rt.HIGH_VALUES,
            "_rlen": rt.rlen,
            "_rcount": rt.rcount,
            "_bad_index": rt.bad_index,
            "_check_end": rt.check_end,
            "_EPOCH": rt.EPOCH,
            "_TD": datetime.timedelta,
            "_pack_f": struct.Struct("<f").pack,
            "_pack_d": struct.Struct("<d").pack,
            "_unpack_f": struct.Struct("<f").unpack_from,
            "_unpack_d": struct.Struct("<d").unpack_from,
        }
        self.functions: list[str] = []
        self._counter = 0

    def var(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def const(self, value: Any, prefix: str = "_k") -> str:
        name = self.var(prefix)
        self.namespace[name] = value
        return name

    def function_name(self, prefix: str, schema_name: str) -> str:
        return self.var(prefix + IDENT.sub("_", schema_name) + "_")

    def bind_locals(self, function: str) -> str:
        """Make the constants a function uses keyword-only defaults: locals are the fastest names to load."""
        header, _, body = function.partition("\n")
        used = sorted({name for name in _NAME.findall(body) if name in self.namespace})
        if not used:
            return function
        params = header[header.index("(") + 1 : header.rindex(")")]
        bound = ", ".join(f"{name}={name}" for name in used)
        return f"{header[: header.index('(')]}({params}, *, {bound}):\n{body}"

    def module(self, *functions: str) -> str:
        return "\n\n".join(self.bind_locals(f) for f in [*self.functions, *functions]) + "\n"
