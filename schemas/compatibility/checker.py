"""The schema-resolution walk behind ``check_compatibility`` and ``reader_findings``.

``check_compatibility`` returns ``Finding``s, ``[]`` meaning compatible. Rule ids are stable:

    field-added-without-default     BACKWARD: a new field has no default, old data lacks it
    field-removed-without-default   FORWARD: a removed field has no default in the old schema
    reader-field-missing-default    the same, from ``reader_findings`` (no old/new direction known)
    type-mismatch                   a value of the writer's type cannot be read as the reader's type
    union-branch-missing            the writer's type matches no branch of the reader's union
    enum-symbol-missing             the writer may send symbols the reader lacks, and it has no default
    name-mismatch                   named types whose names differ and no reader alias matches
    fixed-size-mismatch             fixed types of different sizes
    decimal-mismatch                decimals whose precision or scale differ

Named types match on their unqualified names, as the specification says, or through a reader
alias; references and aliases resolve in the enclosing namespace.

Where this checker is stricter than fastavro, which decides per datum at read time: a writer
union branch, an enum symbol or a field of a record inside an array or map is flagged even if no
datum uses it yet; decimals whose precision or scale differ are flagged (the specification says
they do not match; fastavro rescales with the writer's scale); a reader field whose own name and
one of its aliases both name writer fields is checked against both (readers disagree on which
one they take). Changing a logical type over the same base type (for example timestamp-millis to
timestamp-micros) is not flagged: Avro readers fall back to the base type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas import model as t
from schemas.compatibility.modes import Mode


@dataclass(frozen=True)
class Finding:
    """One reason a change breaks readers: where (``path``), which rule (``rule``), why in words."""

    path: str
    rule: str
    message: str


@dataclass(frozen=True)
class _Roles:
    """How to speak of the reader and the writer in messages, given the direction checked."""

    reader: str
    writer: str
    consequence: str
    missing_default_rule: str
    missing_default_text: str


_NEUTRAL = _Roles(
    reader="reader schema",
    writer="writer schema",
    consequence="the reader schema cannot read data written with the writer schema",
    missing_default_rule="reader-field-missing-default",
    missing_default_text="is missing from the writer schema and has no default in the reader schema",
)
_BACKWARD = _Roles(
    reader="new schema",
    writer="old schema",
    consequence="new readers cannot read old data (BACKWARD)",
    missing_default_rule="field-added-without-default",
    missing_default_text="added without default",
)
_FORWARD = _Roles(
    reader="old schema",
    writer="new schema",
    consequence="old readers cannot read new data (FORWARD)",
    missing_default_rule="field-removed-without-default",
    missing_default_text="removed without default",
)

SchemaText = str | dict[str, Any]


def check_compatibility(new_schema: SchemaText, previous: Sequence[SchemaText], mode: Mode) -> list[Finding]:
    """Why ``new_schema`` breaks ``mode`` against ``previous`` (oldest first); ``[]`` if it does not.

    Versions are numbered from 1 in the order given. Non-transitive modes look at the last one only.
    """
    mode = Mode.parse(mode)
    if mode is Mode.NONE or not previous:
        return []
    new = _parse(new_schema)
    numbered = list(enumerate(previous, start=1))
    targets = numbered if mode.transitive else numbered[-1:]
    found: dict[tuple[str, str, str], list[int]] = {}
    for version, old_schema in targets:
        old = _parse(old_schema)
        for finding in _directions(new, old, mode):
            found.setdefault((finding.path, finding.rule, finding.message), []).append(version)
    return [
        Finding(path, rule, _against(versions) + message if mode.transitive else message)
        for (path, rule, message), versions in found.items()
    ]


def reader_findings(reader: SchemaText, writer: SchemaText) -> list[Finding]:
    """Why a reader with schema ``reader`` cannot read data written with ``writer``; ``[]`` if it can."""
    reader_type, writer_type = _parse(reader), _parse(writer)
    return _Resolver(_NEUTRAL).run(reader_type, writer_type, _root_label(reader_type))


def _parse(schema: SchemaText) -> t.AvroType:
    """A schema as JSON text or decoded JSON; ContractError when it is not valid Avro."""
    return (t.parse_text(schema) if isinstance(schema, str) else t.parse(schema)).root


def _directions(new: t.AvroType, old: t.AvroType, mode: Mode) -> list[Finding]:
    root = _root_label(new)
    findings: list[Finding] = []
    if mode.backward:
        findings += _Resolver(_BACKWARD).run(new, old, root)
    if mode.forward:
        findings += _Resolver(_FORWARD).run(old, new, root)
    return findings


def _against(versions: list[int]) -> str:
    if len(versions) == 1:
        return f"against version {versions[0]}: "
    listed = ", ".join(str(v) for v in versions[:-1])
    return f"against versions {listed} and {versions[-1]}: "


def _root_label(schema: t.AvroType) -> str:
    """What paths start with: the top-level type's name (``ChatResponse``, ``long``) or kind (``array``)."""
    if isinstance(schema, (t.Named, t.Primitive)):
        return schema.name
    return type(schema).__name__.lower()


@dataclass(frozen=True)
class _Where:
    """A position in the schema: ``path`` for machines, ``subject`` for people."""

    path: str
    relative: str
    subject: str

    @classmethod
    def root(cls, label: str) -> _Where:
        return cls(label, "", f"schema `{label}`")

    def field(self, name: str) -> _Where:
        relative = f"{self.relative}.{name}" if self.relative else name
        return _Where(f"{self.path}.{name}", relative, f"field `{relative}`")

    def items(self) -> _Where:
        return self._child("items", f"array items of {self.subject}")

    def values(self) -> _Where:
        return self._child("values", f"map values of {self.subject}")

    def _child(self, step: str, subject: str) -> _Where:
        relative = f"{self.relative}.{step}" if self.relative else step
        return _Where(f"{self.path}.{step}", relative, subject)


_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class _Resolver:
    """One walk of a reader schema against a writer schema, collecting findings."""

    def __init__(self, roles: _Roles) -> None:
        self.roles = roles
        self.in_progress: set[tuple[str, str]] = set()
        self.findings: list[Finding] = []

    def run(self, reader: t.AvroType, writer: t.AvroType, root: str) -> list[Finding]:
        self.resolve(reader, writer, _Where.root(root))
        return list(dict.fromkeys(self.findings))

    def report(self, where: _Where, rule: str, text: str) -> None:
        message = f"{where.subject}: {text}: {self.roles.consequence}"
        self.findings.append(Finding(where.path, rule, message))

    def resolve(self, reader: t.AvroType, writer: t.AvroType, where: _Where) -> None:
        if isinstance(writer, t.Union):
            self.writer_union(reader, writer, where)
        elif isinstance(reader, t.Union):
            self.reader_union(reader, writer, where, "")
        else:
            self.single(reader, writer, where)

    def writer_union(self, reader: t.AvroType, writer: t.Union, where: _Where) -> None:
        """Every branch the writer may have chosen must be readable."""
        note = f" (a branch of {t.describe(writer)})"
        for branch in writer.branches:
            if isinstance(reader, t.Union):
                self.reader_union(reader, branch, where, note)
            else:
                self.single(reader, branch, where, note)

    def reader_union(self, reader: t.Union, writer: t.AvroType, where: _Where, note: str) -> None:
        """The first reader branch that matches the writer's type is the one resolved against it."""
        branch = next((b for b in reader.branches if matches(b, writer)), None)
        if branch is None:
            self.report(
                where,
                "union-branch-missing",
                f"{t.describe(writer)} in the {self.roles.writer}{note} matches no branch of "
                f"{t.describe(reader)} in the {self.roles.reader}",
            )
        else:
            self.single(branch, writer, where)

    def single(self, reader: t.AvroType, writer: t.AvroType, where: _Where, note: str = "") -> None:
        if isinstance(reader, t.Primitive) and isinstance(writer, t.Primitive):
            self.primitive(reader, writer, where, note)
        elif isinstance(reader, t.Array) and isinstance(writer, t.Array):
            self.resolve(reader.items, writer.items, where.items())
        elif isinstance(reader, t.Map) and isinstance(writer, t.Map):
            self.resolve(reader.values, writer.values, where.values())
        elif isinstance(reader, t.Named) and type(reader) is type(writer):
            self.named(reader, writer, where)
        else:
            self.mismatch(reader, writer, where, note)

    def primitive(self, reader: t.Primitive, writer: t.Primitive, where: _Where, note: str) -> None:
        if not matches(reader, writer):
            self.mismatch(reader, writer, where, note)
        else:
            self.decimal(reader.logical, writer.logical, where)

    def named(self, reader: t.Named, writer: t.Named, where: _Where) -> None:
        if not t.names_match(reader, writer):
            self.report(
                where,
                "name-mismatch",
                f"{reader.kind} `{writer.fullname}` in the {self.roles.writer} cannot be read as "
                f"{reader.kind} `{reader.fullname}` in the {self.roles.reader} (names differ and no alias matches)",
            )
        elif isinstance(reader, t.Record) and isinstance(writer, t.Record):
            self.record(reader, writer, where)
        elif isinstance(reader, t.Enum) and isinstance(writer, t.Enum):
            self.enum(reader, writer, where)
        elif isinstance(reader, t.Fixed) and isinstance(writer, t.Fixed):
            self.fixed(reader, writer, where)

    def record(self, reader: t.Record, writer: t.Record, where: _Where) -> None:
        key = (reader.fullname, writer.fullname)
        if key in self.in_progress:
            return  # a recursive reference: assume compatible, the enclosing walk decides
        self.in_progress.add(key)
        claimed = {field.name for field in reader.fields}
        for field in reader.fields:
            self.field(field, writer_fields(field, writer, claimed), where.field(field.name))
        self.in_progress.discard(key)

    def field(self, field: t.Field, written: list[t.Field], where: _Where) -> None:
        for source in written:
            self.resolve(field.type, source.type, where)
        if not written and not field.has_default:
            self.findings.append(
                Finding(
                    where.path,
                    self.roles.missing_default_rule,
                    f"{where.subject} {self.roles.missing_default_text}: {self.roles.consequence}",
                )
            )

    def enum(self, reader: t.Enum, writer: t.Enum, where: _Where) -> None:
        missing = [symbol for symbol in writer.symbols if symbol not in reader.symbols]
        if missing and reader.default is None:
            self.report(
                where,
                "enum-symbol-missing",
                f"enum `{writer.name}` symbol(s) {', '.join(missing)} of the {self.roles.writer} are "
                f"missing from the {self.roles.reader}, whose enum has no default",
            )

    def fixed(self, reader: t.Fixed, writer: t.Fixed, where: _Where) -> None:
        if reader.size != writer.size:
            self.report(
                where,
                "fixed-size-mismatch",
                f"fixed `{writer.name}` is {writer.size} bytes in the {self.roles.writer} "
                f"but {reader.size} bytes in the {self.roles.reader}",
            )
        else:
            self.decimal(reader.logical, writer.logical, where)

    def decimal(self, reader: t.Logical | None, writer: t.Logical | None, where: _Where) -> None:
        if reader is None or writer is None or not reader.decimal or not writer.decimal:
            return
        if (reader.precision, reader.scale) != (writer.precision, writer.scale):
            self.report(
                where,
                "decimal-mismatch",
                f"decimal({writer.precision},{writer.scale}) in the {self.roles.writer} cannot be read as "
                f"decimal({reader.precision},{reader.scale}) in the {self.roles.reader} "
                "(precision and scale must match)",
            )

    def mismatch(self, reader: t.AvroType, writer: t.AvroType, where: _Where, note: str) -> None:
        self.report(
            where,
            "type-mismatch",
            f"{t.describe(writer)} in the {self.roles.writer}{note} cannot be read as "
            f"{t.describe(reader)} in the {self.roles.reader}",
        )


def writer_fields(field: t.Field, writer: t.Record, claimed: set[str]) -> list[t.Field]:
    """The writer fields a reader field may take its value from: by its name and by its aliases.

    Usually one. A writer field that a reader field (in ``claimed``) takes by its own name is not
    available to aliases; when both the name and an alias still match, readers disagree on which
    wins (fastavro ends up with the aliased field, Java's checker picks the named one), so both
    must be readable.
    """
    by_name = {f.name: f for f in writer.fields}
    names = [field.name] + [alias for alias in field.aliases if alias not in claimed]
    return [by_name[name] for name in dict.fromkeys(names) if name in by_name]


def matches(reader: t.AvroType, writer: t.AvroType) -> bool:
    """The spec's shallow "match": what picks a reader union branch; records match by name only."""
    if isinstance(reader, t.Union) or isinstance(writer, t.Union):
        return True
    if isinstance(reader, t.Primitive) and isinstance(writer, t.Primitive):
        return reader.name == writer.name or reader.name in _PROMOTIONS.get(writer.name, ())
    if isinstance(reader, t.Array) and isinstance(writer, t.Array):
        return matches(reader.items, writer.items)
    if isinstance(reader, t.Map) and isinstance(writer, t.Map):
        return matches(reader.values, writer.values)
    if isinstance(reader, t.Fixed) and isinstance(writer, t.Fixed):
        return reader.size == writer.size and t.names_match(reader, writer)
    if isinstance(reader, t.Named) and type(reader) is type(writer):
        return t.names_match(reader, writer)
    return False
