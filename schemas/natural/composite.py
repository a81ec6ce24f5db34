"""Nodes for the Avro types that hold others: array, map, record (with its fields) and union."""

from __future__ import annotations

import difflib
from typing import Any

from hubstream.errors import ContractError
from schemas.natural.nodes import Ctx, Node, fresh, has_tuple, is_utf8, json_kind
from schemas.natural.scalars import NullNode

# difflib's suggestions cost per unknown key; past this many in one object, none are offered
_SUGGESTED_KEYS = 20


class ArrayNode(Node):
    wrap_name = display = "array"
    json_types = frozenset({list})
    datum_types = frozenset({list, tuple, bytes, bytearray})

    def __init__(self, items: Node) -> None:
        self.items = items

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is not list:
            ctx.fail(f"expected an array, got {json_kind(value)}")
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
            raise ValueError(f"expected an array, got {json_kind(value)}")
        return [self.items.default(item) for item in value]

    def accepts(self, datum: Any) -> bool:
        return type(datum) is list


class MapNode(Node):
    wrap_name = display = "map"
    json_types = datum_types = frozenset({dict})

    def __init__(self, values: Node) -> None:
        self.values = values

    def load(self, value: Any, ctx: Ctx) -> Any:
        if not isinstance(value, dict):
            ctx.fail(f"expected an object (Avro map), got {json_kind(value)}")
            return None
        out, path, values = {}, ctx.path, self.values
        for key, item in value.items():
            path.append(str(key))
            if type(key) is not str:
                ctx.fail(f"map keys must be strings, got {json_kind(key)}")
            elif not key.isascii() and not is_utf8(key):
                ctx.fail("map key is not valid Unicode text (it holds a lone surrogate)")
            out[key] = values.load(item, ctx)
            path.pop()
        return out

    def dump(self, datum: Any) -> Any:
        return {key: self.values.dump(item) for key, item in datum.items()}

    def default(self, value: Any) -> Any:
        if type(value) is not dict:
            raise ValueError(f"expected an object, got {json_kind(value)}")
        return {key: self.values.default(item) for key, item in value.items()}


class FieldNode:
    __slots__ = ("default_datum", "default_has_tuple", "has_default", "name", "node", "raw_default")

    def __init__(self, name: str, node: Node, has_default: bool, raw_default: Any) -> None:
        self.name, self.node = name, node
        self.has_default = has_default
        self.raw_default = raw_default
        self.default_datum: Any = None
        self.default_has_tuple = False


class RecordNode(Node):
    json_types = datum_types = frozenset({dict})

    def __init__(self, name: str) -> None:
        self.wrap_name = self.display = name
        self.fields: list[FieldNode] = []
        self.by_name: dict[str, FieldNode] = {}

    def add_field(self, field: FieldNode) -> None:
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
                field.default_has_tuple = has_tuple(field.default_datum)

    def load(self, value: Any, ctx: Ctx) -> Any:
        if not isinstance(value, dict):
            ctx.fail(f"expected an object (record {self.display}), got {json_kind(value)}")
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
                out[field.name] = fresh(field.default_datum)
                ctx.tuples += field.default_has_tuple
            else:
                path.append(field.name)
                ctx.fail("required field missing")
                path.pop()
        if seen < len(value):
            self._unknown(value, ctx)
        return out

    def _unknown(self, value: dict[Any, Any], ctx: Ctx) -> None:
        unknown = 0
        for key in value:
            if key in self.by_name:
                continue
            unknown += 1
            ctx.path.append(str(key))
            # fuzzy matching costs per key: an object of many unknown keys gets suggestions for the first few
            close = difflib.get_close_matches(str(key), self.by_name, n=1) if unknown <= _SUGGESTED_KEYS else []
            ctx.fail("unknown field" + (f"; did you mean {close[0]!r}?" if close else ""))
            ctx.path.pop()

    def dump(self, datum: Any) -> Any:
        return {field.name: field.node.dump(datum[field.name]) for field in self.fields}

    def default(self, value: Any) -> Any:
        if type(value) is not dict:
            raise ValueError(f"expected an object, got {json_kind(value)}")
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


class UnionNode(Node):
    wrap_name = display = "union"

    def __init__(self, branches: list[Node]) -> None:
        self.branches = branches
        self.null = next((b for b in branches if isinstance(b, NullNode)), None)
        self.single = len(branches) - (self.null is not None) <= 1
        self.listing = ", ".join(b.display for b in branches)
        self.json_types = frozenset().union(*(b.json_types for b in branches))
        self.by_key: dict[str, Node] = {b.wrap_name: b for b in branches}
        short = [(b.wrap_name.rpartition(".")[2], b) for b in branches if "." in b.wrap_name]
        for name, branch in short:
            if name not in self.by_key and sum(1 for n, _ in short if n == name) == 1:
                self.by_key[name] = branch
        seen: set[type] = set()
        self.plain_safe = True
        for branch in branches:
            self.plain_safe &= not (seen & branch.datum_types)
            seen |= branch.datum_types

    def load(self, value: Any, ctx: Ctx) -> Any:
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

    def _choose(self, value: Any, ctx: Ctx) -> tuple[Node, Any, bool] | None:
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
            tuples, failures = ctx.tuples, ctx.failures
            datum = candidates[0].load(value, ctx)
            return None if ctx.failures > failures else (candidates[0], datum, ctx.tuples > tuples)
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
            ctx.failures += len(wrapped.problems)
            room = len(wrapped.problems) if ctx.limit is None else max(0, ctx.limit - len(ctx.problems))
            ctx.problems.extend(wrapped.problems[:room])
        else:
            ctx.fail(f"expected one of {self.listing}; got {json_kind(value)}")
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
        chosen = self._choose(natural, Ctx([]))
        return natural if chosen is not None and chosen[0] is branch else {branch.wrap_name: natural}

    def _branch_of(self, datum: Any) -> Node:
        candidates = [b for b in self.branches if b.accepts(datum)]
        if not candidates:
            raise ValueError(f"a {type(datum).__name__} fits no branch of the union ({self.listing})")
        if type(datum) is dict:
            for branch in candidates:
                if isinstance(branch, RecordNode) and branch.by_name.keys() == datum.keys():
                    return branch
        return candidates[0]

    def default(self, value: Any) -> Any:
        branch = self.branches[0]
        datum = branch.default(value)
        if datum is None or (self.plain_safe and not has_tuple(datum)):
            return datum
        return (branch.wrap_name, datum)
