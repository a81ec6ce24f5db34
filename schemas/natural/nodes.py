"""The walk's state and the base of every node: what a natural-JSON node loads, dumps and accepts."""

from __future__ import annotations

import copy
from typing import Any

from schemas.paths import format_path

Problems = list[tuple[str, str]]

_KINDS: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_kind(value: Any) -> str:
    return _KINDS.get(type(value)) or type(value).__name__


def show(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


class Ctx:
    """Where the walk is and what went wrong so far; ``tuples`` counts union tuples emitted below.

    With ``limit``, only the first ``limit`` problems are kept; ``failures`` counts them all.
    """

    __slots__ = ("failures", "limit", "path", "problems", "tuples")

    def __init__(self, path: list[str | int], limit: int | None = None) -> None:
        self.path = path
        self.problems: Problems = []
        self.tuples = 0
        self.limit = limit
        self.failures = 0

    def fail(self, problem: str) -> None:
        self.failures += 1
        if self.limit is None or len(self.problems) < self.limit:
            self.problems.append((format_path(self.path), problem))

    def trial(self) -> Ctx:
        return Ctx(list(self.path))


def has_tuple(datum: Any) -> bool:
    if isinstance(datum, tuple):
        return True
    if isinstance(datum, dict):
        return any(has_tuple(v) for v in datum.values())
    return isinstance(datum, list) and any(has_tuple(v) for v in datum)


def fresh(datum: Any) -> Any:
    return copy.deepcopy(datum) if isinstance(datum, (dict, list, tuple)) else datum


class Node:
    """One compiled Avro type. ``json_types``: natural forms it may take; ``datum_types``: what fastavro's
    union writer would accept for it; ``family``: branches of one family are interchangeable in a union."""

    wrap_name = "?"
    display = "?"
    json_types: frozenset[type] = frozenset()
    datum_types: frozenset[type] = frozenset()
    family: str | None = None

    def load(self, value: Any, ctx: Ctx) -> Any:
        raise NotImplementedError

    def dump(self, datum: Any) -> Any:
        return datum

    def accepts(self, datum: Any) -> bool:
        return type(datum) in self.datum_types

    def default(self, value: Any) -> Any:
        """Avro default (JSON encoding of the underlying type) -> datum; ValueError when it does not fit."""
        ctx = Ctx([])
        datum = self.load(value, ctx)
        if ctx.problems:
            raise ValueError(ctx.problems[0][1])
        return datum


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
