"""Avro schema compatibility: known cases, a property test against fastavro, and readable findings.

The table ports cases from Apache Avro's ``TestSchemaCompatibility`` (reader/writer pairs) and
Confluent's ``AvroCompatibilityTest`` (modes, transitive histories), rewritten from memory, plus
cases for each resolution rule of the Avro 1.11 specification.
"""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hubstream.errors import ConfigurationError, ContractError
from schemas.compatibility import Finding, Mode, UnknownModeError, check_compatibility, reader_findings

CONTRACTS = Path(__file__).resolve().parents[1] / "schemas" / "avro"
NO_DEFAULT = object()

# --------------------------------------------------------------------------------------------
# schema builders


def rec(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def fld(name: str, type_: Any, default: Any = NO_DEFAULT, **extra: Any) -> dict[str, Any]:
    spec = {"name": name, "type": type_, **extra}
    if default is not NO_DEFAULT:
        spec["default"] = default
    return spec


def enum(name: str, *symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols), **extra}


def fixed(name: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size, **extra}


def array(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


def amap(values: Any) -> dict[str, Any]:
    return {"type": "map", "values": values}


def decimal(precision: int, scale: int, base: Any = "bytes") -> dict[str, Any]:
    if isinstance(base, dict):
        return {**base, "logicalType": "decimal", "precision": precision, "scale": scale}
    return {"type": base, "logicalType": "decimal", "precision": precision, "scale": scale}


def logical(base: str, name: str) -> dict[str, Any]:
    return {"type": base, "logicalType": name}


def one(type_: Any, default: Any = NO_DEFAULT) -> dict[str, Any]:
    """A record ``R`` with the single field ``f``: the usual frame for type-level cases."""
    return rec("R", fld("f", type_, default))


def linked_list(name: str, value: str) -> dict[str, Any]:
    return rec(name, fld("value", value), fld("next", ["null", name], None))


# Confluent's AvroCompatibilityTest schemas (record "myrecord").
S1 = rec("myrecord", fld("f1", "string"))
S2 = rec("myrecord", fld("f1", "string"), fld("f2", "string", "foo"))
S3 = rec("myrecord", fld("f1", "string"), fld("f2", "string"))
S4 = rec("myrecord", fld("f1_new", "string", aliases=["f1"]))
S6 = rec("myrecord", fld("f1", ["null", "string"], None))
S7 = rec("myrecord", fld("f1", ["null", "string", "int"], None))
S8 = rec("myrecord", fld("f1", "string"), fld("f2", "string", "foo"), fld("f3", "string", "bar"))

# --------------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Case:
    id: str
    rule: str  # the rule the case is about, for counting coverage
    new: Any
    previous: tuple[Any, ...]
    mode: Mode
    expected: tuple[tuple[str, str], ...] = ()  # (rule, path) pairs; () means compatible


def reads(id_: str, rule: str, reader: Any, writer: Any, *expected: tuple[str, str]) -> Case:
    """A reader/writer pair, checked as BACKWARD (the new schema reads data of the old)."""
    return Case(id_, rule, reader, (writer,), Mode.BACKWARD, tuple(expected))


B, F = Mode.BACKWARD, Mode.FORWARD
MISMATCH = "type-mismatch"
ADDED = "field-added-without-default"
REMOVED = "field-removed-without-default"
UNION = "union-branch-missing"

CASES = [
    # ---- primitives and promotions (Avro TestSchemaCompatibility)
    reads("int-reads-int", "promotion", one("int"), one("int")),
    reads("long-reads-int", "promotion", one("long"), one("int")),
    reads("float-reads-int", "promotion", one("float"), one("int")),
    reads("double-reads-int", "promotion", one("double"), one("int")),
    reads("float-reads-long", "promotion", one("float"), one("long")),
    reads("double-reads-long", "promotion", one("double"), one("long")),
    reads("double-reads-float", "promotion", one("double"), one("float")),
    reads("bytes-reads-string", "promotion", one("bytes"), one("string")),
    reads("string-reads-bytes", "promotion", one("string"), one("bytes")),
    reads("null-reads-null", "promotion", one("null"), one("null")),
    reads("int-cannot-read-long", "promotion", one("int"), one("long"), (MISMATCH, "R.f")),
    reads("int-cannot-read-float", "promotion", one("int"), one("float"), (MISMATCH, "R.f")),
    reads("long-cannot-read-double", "promotion", one("long"), one("double"), (MISMATCH, "R.f")),
    reads("float-cannot-read-double", "promotion", one("float"), one("double"), (MISMATCH, "R.f")),
    reads("boolean-cannot-read-int", "promotion", one("boolean"), one("int"), (MISMATCH, "R.f")),
    reads("string-cannot-read-int", "promotion", one("string"), one("int"), (MISMATCH, "R.f")),
    reads("null-cannot-read-int", "promotion", one("null"), one("int"), (MISMATCH, "R.f")),
    reads("top-level-long-reads-int", "promotion", '"long"', '"int"'),
    reads("top-level-int-cannot-read-long", "promotion", '"int"', '"long"', (MISMATCH, "int")),
    # ---- records: fields by name, defaults, aliases
    reads("empty-reads-empty", "record-fields", rec("R"), rec("R")),
    reads("writer-field-ignored", "record-fields", rec("R"), one("int")),
    reads("reader-field-without-default", "record-fields", one("int"), rec("R"), (ADDED, "R.f")),
    reads("reader-field-with-default", "record-fields", one("int", 0), rec("R")),
    reads("null-default-counts", "record-fields", one(["null", "int"], None), rec("R")),
    reads(
        "fields-reordered",
        "record-fields",
        rec("R", fld("b", "int"), fld("a", "string")),
        rec("R", fld("a", "string"), fld("b", "int")),
    ),
    reads("field-type-promoted", "record-fields", one("long"), one("int")),
    reads("field-alias-renames", "field-alias", rec("R", fld("g", "int", aliases=["f"])), one("int")),
    reads("field-renamed-without-alias", "field-alias", rec("R", fld("g", "int")), one("int"), (ADDED, "R.g")),
    reads(
        "field-alias-type-checked",
        "field-alias",
        rec("R", fld("g", "int", aliases=["f"])),
        one("string"),
        (MISMATCH, "R.g"),
    ),
    reads(
        "field-alias-taken-by-name",
        "field-alias",
        rec("R", fld("f", "int"), fld("g", "int", aliases=["f"])),
        one("int"),
        (ADDED, "R.g"),
    ),
    reads(
        "field-name-and-alias-both-written",
        "field-alias",
        rec("R", fld("y", "int", aliases=["x"])),
        rec("R", fld("x", "string"), fld("y", "int")),
        (MISMATCH, "R.y"),
    ),
    Case("confluent-add-field-with-default", "record-fields", S2, (S1,), B),
    Case("confluent-add-field-without-default", "record-fields", S3, (S1,), B, ((ADDED, "myrecord.f2"),)),
    Case("confluent-rename-with-alias", "field-alias", S4, (S1,), B),
    Case("confluent-remove-field-forward", "record-fields", S1, (S3,), F, ((REMOVED, "myrecord.f2"),)),
    Case("confluent-remove-defaulted-field-forward", "record-fields", S1, (S2,), F),
    Case("confluent-add-field-forward", "record-fields", S3, (S1,), F),
    # ---- named types: record names, aliases, namespaces, references
    reads("record-names-differ", "names", rec("Other"), rec("R"), ("name-mismatch", "Other")),
    reads("record-alias-matches-writer", "names", rec("Other", aliases=["R"]), rec("R")),
    reads("record-namespace-changed", "names", rec("R", namespace="b"), rec("R", namespace="a")),
    reads("record-full-alias", "names", rec("New", namespace="b", aliases=["a.Old"]), rec("Old", namespace="a")),
    reads(
        "record-relative-alias-other-namespace",
        "names",
        rec("New", namespace="b", aliases=["c.Old"]),
        rec("Old", namespace="a"),
        ("name-mismatch", "New"),
    ),
    reads(
        "nested-record-renamed",
        "names",
        one(rec("B", fld("x", "int"))),
        one(rec("A", fld("x", "int"))),
        ("name-mismatch", "R.f"),
    ),
    reads(
        "reference-in-enclosing-namespace",
        "references",
        rec("R", fld("a", rec("P", fld("x", "long"))), fld("b", "P"), namespace="n"),
        rec("R", fld("a", rec("P", fld("x", "int"))), fld("b", "n.P"), namespace="n"),
    ),
    reads(
        "reference-checked-at-each-use",
        "references",
        rec("R", fld("a", rec("P", fld("x", "int"))), fld("b", "P")),
        rec("R", fld("a", rec("P", fld("x", "int"))), fld("b", rec("Q", fld("y", "int")))),
        ("name-mismatch", "R.b"),
    ),
    reads(
        "reference-across-namespaces",
        "references",
        rec("R", fld("a", rec("P", fld("x", "long"), namespace="other")), fld("b", "other.P"), namespace="n"),
        rec("R", fld("a", rec("P", fld("x", "int"), namespace="other")), fld("b", "other.P"), namespace="n"),
    ),
    reads(
        "reference-across-namespaces-narrowed",
        "references",
        rec("R", fld("a", rec("P", fld("x", "int"), namespace="other")), fld("b", "other.P"), namespace="n"),
        rec("R", fld("a", rec("P", fld("x", "long"), namespace="other")), fld("b", "other.P"), namespace="n"),
        (MISMATCH, "R.a.x"),
        (MISMATCH, "R.b.x"),
    ),
    reads(
        "reference-to-changed-record",
        "references",
        rec("R", fld("a", rec("P", fld("x", "int"), fld("z", "int"))), fld("b", "P")),
        rec("R", fld("a", rec("P", fld("x", "int"))), fld("b", "P")),
        (ADDED, "R.a.z"),
        (ADDED, "R.b.z"),
    ),
    # ---- recursive records
    reads("recursive-reads-itself", "recursion", linked_list("L", "int"), linked_list("L", "int")),
    reads("recursive-promoted", "recursion", linked_list("L", "long"), linked_list("L", "int")),
    reads("recursive-narrowed", "recursion", linked_list("L", "int"), linked_list("L", "long"), (MISMATCH, "L.value")),
    reads(
        "mutually-recursive",
        "recursion",
        rec("A", fld("b", ["null", rec("B", fld("a", ["null", "A"], None), fld("n", "long"))], None)),
        rec("A", fld("b", ["null", rec("B", fld("a", ["null", "A"], None), fld("n", "int"))], None)),
    ),
    # ---- enums
    reads("enum-same", "enum", one(enum("E", "A", "B")), one(enum("E", "A", "B"))),
    reads("enum-reader-has-more", "enum", one(enum("E", "A", "B", "C")), one(enum("E", "A", "B"))),
    reads(
        "enum-reader-has-fewer",
        "enum",
        one(enum("E", "A", "B")),
        one(enum("E", "A", "B", "C")),
        ("enum-symbol-missing", "R.f"),
    ),
    reads("enum-reader-default", "enum", one(enum("E", "A", "B", default="A")), one(enum("E", "A", "B", "C"))),
    reads("enum-names-differ", "enum", one(enum("E2", "A")), one(enum("E", "A")), ("name-mismatch", "R.f")),
    reads("enum-cannot-read-string", "enum", one(enum("E", "A")), one("string"), (MISMATCH, "R.f")),
    # ---- fixed
    reads("fixed-same", "fixed", one(fixed("F", 4)), one(fixed("F", 4))),
    reads("fixed-size-differs", "fixed", one(fixed("F", 8)), one(fixed("F", 4)), ("fixed-size-mismatch", "R.f")),
    reads("fixed-names-differ", "fixed", one(fixed("G", 4)), one(fixed("F", 4)), ("name-mismatch", "R.f")),
    reads("fixed-cannot-read-bytes", "fixed", one(fixed("F", 4)), one("bytes"), (MISMATCH, "R.f")),
    # ---- arrays and maps
    reads("array-items-promoted", "array-map", one(array("long")), one(array("int"))),
    reads("array-items-narrowed", "array-map", one(array("int")), one(array("long")), (MISMATCH, "R.f.items")),
    reads("map-values-promoted", "array-map", one(amap("double")), one(amap("float"))),
    reads("map-values-changed", "array-map", one(amap("int")), one(amap("string")), (MISMATCH, "R.f.values")),
    reads("array-cannot-read-map", "array-map", one(array("int")), one(amap("int")), (MISMATCH, "R.f")),
    reads(
        "array-of-records-field-added",
        "array-map",
        one(array(rec("I", fld("a", "int"), fld("b", "int")))),
        one(array(rec("I", fld("a", "int")))),
        (ADDED, "R.f.items.b"),
    ),
    reads("map-of-arrays-nested", "array-map", one(amap(array("long"))), one(amap(array("int")))),
    # ---- unions
    reads("union-reads-same-union", "unions", one(["null", "int"]), one(["null", "int"])),
    reads("union-reads-smaller-union", "unions", one(["null", "int", "string"]), one(["null", "int"])),
    reads(
        "union-cannot-read-larger-union", "unions", one(["null", "int"]), one(["null", "int", "string"]), (UNION, "R.f")
    ),
    reads("union-reads-promoted-branch", "unions", one(["null", "long"]), one(["null", "int"])),
    reads("union-reads-reordered-branches", "unions", one(["int", "null"]), one(["null", "int"])),
    reads("empty-union-reads-empty-union", "unions", one([]), one([])),
    reads("union-reads-empty-union", "unions", one(["int"]), one([])),
    reads("union-reads-non-union", "unions", one(["null", "string"]), one("string")),
    reads("union-reads-promoted-non-union", "unions", one(["null", "double"]), one("int")),
    reads("union-lacks-writer-type", "unions", one(["null", "string"]), one("int"), (UNION, "R.f")),
    reads("non-union-reads-single-union", "unions", one("int"), one(["int"])),
    reads("non-union-reads-promotable-union", "unions", one("long"), one(["int", "long"])),
    reads("non-union-cannot-read-optional", "unions", one("string"), one(["null", "string"]), (MISMATCH, "R.f")),
    reads(
        "union-first-match-is-resolved",
        "unions",
        one(["null", rec("P", fld("y", "int"))]),
        one(rec("P", fld("x", "int"))),
        (ADDED, "R.f.y"),
    ),
    reads(
        "union-of-records-by-name",
        "unions",
        one([rec("A", fld("a", "int")), rec("B", fld("b", "long"))]),
        one([rec("B", fld("b", "int")), rec("A", fld("a", "int"))]),
    ),
    Case("confluent-field-to-union", "unions", S6, (S1,), B),
    Case("confluent-remove-union-branch", "unions", S6, (S7,), B, ((UNION, "myrecord.f1"),)),
    Case("confluent-add-union-branch", "unions", S7, (S6,), B),
    # ---- logical types
    reads("timestamp-on-long", "logical", one(logical("long", "timestamp-millis")), one("long")),
    reads("plain-long-reads-timestamp", "logical", one("long"), one(logical("long", "timestamp-micros"))),
    reads("date-promoted-to-long", "logical", one("long"), one(logical("int", "date"))),
    reads("unknown-logical-type", "logical", one(logical("string", "postal-code")), one("string")),
    reads("uuid-cannot-read-int", "logical", one(logical("string", "uuid")), one("int"), (MISMATCH, "R.f")),
    reads("decimal-same", "logical", one(decimal(10, 2)), one(decimal(10, 2))),
    reads("decimal-scale-differs", "logical", one(decimal(10, 3)), one(decimal(10, 2)), ("decimal-mismatch", "R.f")),
    reads(
        "decimal-precision-differs", "logical", one(decimal(12, 2)), one(decimal(10, 2)), ("decimal-mismatch", "R.f")
    ),
    reads("decimal-reads-plain-bytes", "logical", one(decimal(10, 2)), one("bytes")),
    reads(
        "decimal-on-fixed-scale-differs",
        "logical",
        one(decimal(9, 3, fixed("D", 4))),
        one(decimal(9, 2, fixed("D", 4))),
        ("decimal-mismatch", "R.f"),
    ),
    # ---- modes
    Case("none-allows-anything", "modes", one("string"), (one("int"),), Mode.NONE),
    Case("no-previous-versions", "modes", one("string"), (), Mode.FULL_TRANSITIVE),
    Case("backward-widening", "modes", one("long"), (one("int"),), B),
    Case("forward-rejects-widening", "modes", one("long"), (one("int"),), F, ((MISMATCH, "R.f"),)),
    Case("forward-accepts-narrowing", "modes", one("int"), (one("long"),), F),
    Case("full-optional-field-added", "modes", S2, (S1,), Mode.FULL),
    Case("full-rejects-field-without-default", "modes", S3, (S1,), Mode.FULL, ((ADDED, "myrecord.f2"),)),
    Case("full-rejects-removal-without-default", "modes", S1, (S3,), Mode.FULL, ((REMOVED, "myrecord.f2"),)),
    Case("full-rejects-widening", "modes", one("long"), (one("int"),), Mode.FULL, ((MISMATCH, "R.f"),)),
    Case(
        "full-accepts-enum-growth-with-default",
        "modes",
        one(enum("E", "A", "B", "C", default="A")),
        (one(enum("E", "A", "B", default="A")),),
        Mode.FULL,
    ),
    Case(
        "forward-enum-symbol-added",
        "enum",
        one(enum("E", "A", "B", "C")),
        (one(enum("E", "A", "B")),),
        F,
        (("enum-symbol-missing", "R.f"),),
    ),
    Case(
        "forward-enum-symbol-added-old-default",
        "enum",
        one(enum("E", "A", "B", "C", default="A")),
        (one(enum("E", "A", "B", default="A")),),
        F,
    ),
    Case("forward-union-branch-added", "unions", S7, (S6,), F, ((UNION, "myrecord.f1"),)),
    Case("forward-field-made-optional", "unions", S6, (S1,), F, ((MISMATCH, "myrecord.f1"),)),
    # ---- transitive histories (v1 -> v2 -> v3)
    Case("backward-checks-latest-only", "transitive", S3, (S1, S2), B),
    Case(
        "backward-transitive-sees-v1", "transitive", S3, (S1, S2), Mode.BACKWARD_TRANSITIVE, ((ADDED, "myrecord.f2"),)
    ),
    Case("backward-transitive-defaults-added", "transitive", S8, (S1, S2), Mode.BACKWARD_TRANSITIVE),
    Case("forward-transitive-defaults-removed", "transitive", S1, (S8, S2), Mode.FORWARD_TRANSITIVE),
    Case("forward-checks-latest-only", "transitive", S1, (S3, S2), F),
    Case(
        "forward-transitive-sees-v1", "transitive", S1, (S3, S2), Mode.FORWARD_TRANSITIVE, ((REMOVED, "myrecord.f2"),)
    ),
    Case("full-transitive-sees-v1", "transitive", S3, (S1, S2), Mode.FULL_TRANSITIVE, ((ADDED, "myrecord.f2"),)),
    Case("full-transitive-clean-history", "transitive", S8, (S1, S2), Mode.FULL_TRANSITIVE),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_known_case(case: Case) -> None:
    findings = check_compatibility(case.new, list(case.previous), case.mode)
    assert sorted((f.rule, f.path) for f in findings) == sorted(case.expected), findings
    for finding in findings:
        assert finding.message and "\n" not in finding.message


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def test_reader_findings_is_the_backward_core() -> None:
    """reader_findings(reader, writer) and BACKWARD(new=reader, old=writer) agree on rules and paths."""
    for case in (c for c in CASES if c.mode is B and len(c.previous) == 1):
        direct = reader_findings(case.new, case.previous[0])
        rules = [f.rule.replace("reader-field-missing-default", ADDED) for f in direct]
        assert sorted(zip(rules, (f.path for f in direct), strict=True)) == sorted(case.expected), case.id


# --------------------------------------------------------------------------------------------
# modes


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("backward", Mode.BACKWARD),
        ("Backward", Mode.BACKWARD),
        ("FORWARD", Mode.FORWARD),
        ("None", Mode.NONE),
        ("full", Mode.FULL),
        ("full-transitive", Mode.FULL_TRANSITIVE),
        ("FullTransitive", Mode.FULL_TRANSITIVE),
        ("full_transitive", Mode.FULL_TRANSITIVE),
        (" backward transitive ", Mode.BACKWARD_TRANSITIVE),
        ("ForwardTransitive", Mode.FORWARD_TRANSITIVE),
        (Mode.FULL, Mode.FULL),
    ],
)
def test_mode_parse(text: str, mode: Mode) -> None:
    assert Mode.parse(text) is mode


def test_modes_have_their_azure_names_and_azure_offers_three() -> None:
    names = {mode: mode.azure_name for mode in Mode}
    assert names == {
        Mode.NONE: "None",
        Mode.BACKWARD: "Backward",
        Mode.FORWARD: "Forward",
        Mode.FULL: "Full",
        Mode.BACKWARD_TRANSITIVE: "BackwardTransitive",
        Mode.FORWARD_TRANSITIVE: "ForwardTransitive",
        Mode.FULL_TRANSITIVE: "FullTransitive",
    }
    assert {mode for mode in Mode if mode.in_azure} == {Mode.NONE, Mode.BACKWARD, Mode.FORWARD}
    assert all(Mode.parse(name) is mode for mode, name in names.items())
    assert Mode.parse("backwardtransitive") is Mode.BACKWARD_TRANSITIVE


def test_the_emulator_groups_use_the_same_modes() -> None:
    from schemas.emulator.groups import SchemaGroup

    assert SchemaGroup("g").compatibility is Mode.BACKWARD


@pytest.mark.parametrize("text", ["", "full!", "transitive", "backwards", "strict"])
def test_mode_parse_rejects_with_valid_list(text: str) -> None:
    with pytest.raises(UnknownModeError) as info:
        Mode.parse(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigurationError)
    assert "BACKWARD_TRANSITIVE" in str(info.value) and repr(text) in str(info.value)


def test_check_accepts_mode_text() -> None:
    assert check_compatibility(S3, [S1], "backward")[0].rule == ADDED  # type: ignore[arg-type] - text, on purpose


def test_invalid_schema_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="not valid Avro"):
        check_compatibility(rec("R", fld("f", "NoSuchType")), [S1], B)
    with pytest.raises(ContractError, match="not valid JSON"):
        reader_findings("{nope", S1)


def test_unqualified_reference_resolves_in_enclosing_namespace() -> None:
    inner = rec("Q", fld("p", "P"), namespace="other")  # means other.P, which does not exist
    with pytest.raises(ContractError):
        reader_findings(rec("R", fld("a", rec("P")), fld("q", inner), namespace="n"), S1)


def test_schema_text_and_dict_agree() -> None:
    assert check_compatibility(json.dumps(S3), [json.dumps(S1)], B) == check_compatibility(S3, [S1], B)


# --------------------------------------------------------------------------------------------
# findings on a realistic contract


def chat_response() -> dict[str, Any]:
    schema = json.loads((CONTRACTS / "hubstream.chat.ChatResponse.avsc").read_text(encoding="utf-8"))
    schema["fields"].append(
        fld("usage", ["null", rec("Usage", fld("promptTokens", "int"), fld("completionTokens", "int"))], None)
    )
    return schema


def evolve(schema: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with fields replaced (a dict), removed (None) or appended (name not present yet)."""
    new = copy.deepcopy(schema)
    by_name = {f["name"]: f for f in new["fields"]}
    for name, spec in changes.items():
        if spec is None:
            new["fields"].remove(by_name[name])
        elif name in by_name:
            new["fields"][new["fields"].index(by_name[name])] = spec
        else:
            new["fields"].append(spec)
    return new


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def test_realistic_field_removed_without_default() -> None:
    old = chat_response()
    finding = only(check_compatibility(evolve(old, userId=None), [old], Mode.FULL))
    assert finding == Finding(
        "ChatResponse.userId",
        REMOVED,
        "field `userId` removed without default: old readers cannot read new data (FORWARD)",
    )


def test_realistic_field_added_without_default() -> None:
    old = chat_response()
    finding = only(check_compatibility(evolve(old, locale=fld("locale", "string")), [old], B))
    assert finding.path == "ChatResponse.locale" and finding.rule == ADDED
    assert finding.message == "field `locale` added without default: new readers cannot read old data (BACKWARD)"


def test_realistic_optional_field_added_is_fully_compatible() -> None:
    old = chat_response()
    new = evolve(old, locale=fld("locale", ["null", "string"], None))
    assert check_compatibility(new, [old], Mode.FULL_TRANSITIVE) == []


def test_realistic_map_values_changed() -> None:
    old = chat_response()
    new = evolve(old, metadata=fld("metadata", amap("int"), {}))
    backward, forward = check_compatibility(new, [old], Mode.FULL)
    assert backward.path == forward.path == "ChatResponse.metadata.values"
    assert backward.message == (
        "map values of field `metadata`: string in the old schema cannot be read as int in the new schema: "
        "new readers cannot read old data (BACKWARD)"
    )
    assert forward.message.endswith("old readers cannot read new data (FORWARD)")


def test_realistic_nested_record_field_added() -> None:
    old = chat_response()
    usage = rec("Usage", fld("promptTokens", "int"), fld("completionTokens", "int"), fld("cachedTokens", "int"))
    new = evolve(old, usage=fld("usage", ["null", usage], None))
    finding = only(check_compatibility(new, [old], B))
    assert finding.path == "ChatResponse.usage.cachedTokens"
    assert finding.message.startswith("field `usage.cachedTokens` added without default")


def test_realistic_type_narrowed_names_both_types() -> None:
    old = chat_response()
    finding = only(check_compatibility(evolve(old, sequence=fld("sequence", "int")), [old], B))
    assert (finding.path, finding.rule) == ("ChatResponse.sequence", MISMATCH)
    assert "long in the old schema cannot be read as int in the new schema" in finding.message


def test_realistic_made_required_mentions_union_branch() -> None:
    old = evolve(chat_response(), content=fld("content", ["null", "string"], None))
    finding = only(check_compatibility(evolve(old, content=fld("content", "string")), [old], B))
    assert finding.path == "ChatResponse.content"
    assert "null in the old schema (a branch of [null, string]) cannot be read as string" in finding.message


def test_realistic_enum_symbol_removed() -> None:
    old = evolve(chat_response(), status=fld("status", enum("Status", "STREAMING", "DONE", "FAILED"), "DONE"))
    new = evolve(old, status=fld("status", enum("Status", "STREAMING", "DONE"), "DONE"))
    finding = only(check_compatibility(new, [old], B))
    assert (finding.path, finding.rule) == ("ChatResponse.status", "enum-symbol-missing")
    assert "symbol(s) FAILED of the old schema are missing from the new schema" in finding.message


def test_transitive_findings_name_the_versions_and_dedupe() -> None:
    v1 = chat_response()
    v2 = evolve(v1, locale=fld("locale", "string", "en"))
    v3 = evolve(v2, locale=fld("locale", "string"))  # fine against v2, not against v1
    v4 = evolve(v3, tone=fld("tone", "string"))  # breaks against every version
    findings = check_compatibility(v4, [v1, v2, v3], Mode.BACKWARD_TRANSITIVE)
    messages = {f.path: f.message for f in findings}
    assert messages == {
        "ChatResponse.locale": "against version 1: field `locale` added without default: "
        "new readers cannot read old data (BACKWARD)",
        "ChatResponse.tone": "against versions 1, 2 and 3: field `tone` added without default: "
        "new readers cannot read old data (BACKWARD)",
    }


def test_reader_findings_speaks_of_reader_and_writer() -> None:
    finding = only(reader_findings(S3, S1))
    assert finding.rule == "reader-field-missing-default"
    assert "missing from the writer schema" in finding.message


def test_contracts_in_repo_are_compatible_with_themselves() -> None:
    for path in CONTRACTS.glob("*.avsc"):
        text = path.read_text(encoding="utf-8")
        assert check_compatibility(text, [text], Mode.FULL_TRANSITIVE) == [], path.name


# --------------------------------------------------------------------------------------------
# property: whenever the checker says "compatible", fastavro really reads the data
#
# The checker decides per schema, fastavro per datum, so the checker may be stricter: it flags a
# writer union branch, an enum symbol or a record field inside arrays/maps even when the data never
# uses it, and decimals whose precision or scale differ (fastavro rescales with the writer's
# scale). The property is one-sided for that reason: fastavro failing => the checker reported.
# Bytes are drawn as UTF-8 text: bytes -> string is a legal promotion, but fastavro (like any
# reader) fails to decode non-UTF-8 bytes as a string, which is about data, not schemas.
#
# Writer: a record of up to 4 fields of primitives, optional and three-branch unions, enums (with
# or without default), fixed, arrays, maps, nested (optional) records and references to earlier
# named types, each with or without a default. Reader: the writer with fields kept, dropped,
# renamed (with or without alias) or added, defaults toggled, types promoted, narrowed, wrapped
# in or unwrapped from a union or replaced, union branches added, removed or reordered, enum
# symbols and fixed sizes redrawn, arrays and maps swapped, records renamed (with or without
# alias) and namespaces changed.

PRIMS = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
PROMOTE = {
    "int": ["long", "float", "double"],
    "long": ["float", "double"],
    "float": ["double"],
    "string": ["bytes"],
    "bytes": ["string"],
}
DEMOTE = {
    "long": ["int"],
    "float": ["int", "long"],
    "double": ["int", "long", "float"],
    "string": ["bytes"],
    "bytes": ["string"],
}
SYMBOLS = ["A", "B", "C", "D"]


class Names:
    """Named types of one schema as it is generated, in document order."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.count = prefix, 0
        self.defs: dict[str, dict[str, Any]] = {}
        self.renames: dict[str, str] = {}

    def fresh(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}"


def zero(type_: Any, defs: dict[str, dict[str, Any]]) -> Any:
    """A valid JSON default for ``type_``."""
    if isinstance(type_, list):
        return zero(type_[0], defs)
    if isinstance(type_, str):
        if type_ in defs:
            return zero(defs[type_], defs)
        return {"null": None, "boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0}.get(type_, "")
    kind = type_["type"]
    if kind == "record":
        return {f["name"]: zero(f["type"], defs) for f in type_["fields"]}
    return {"enum": lambda: type_["symbols"][0], "fixed": lambda: "\u0000" * type_["size"], "array": list, "map": dict}[
        kind
    ]()


def datum(type_: Any, defs: dict[str, dict[str, Any]]) -> st.SearchStrategy[Any]:
    if isinstance(type_, list):
        return st.one_of([datum(branch, defs) for branch in type_])
    if isinstance(type_, str):
        return datum(defs[type_], defs) if type_ in defs else PRIM_DATA[type_]
    kind = type_["type"]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: datum(f["type"], defs) for f in type_["fields"]})
    if kind == "enum":
        return st.sampled_from(type_["symbols"])
    if kind == "fixed":
        return st.binary(min_size=type_["size"], max_size=type_["size"])
    if kind == "array":
        return st.lists(datum(type_["items"], defs), max_size=3)
    return st.dictionaries(st.text(max_size=3), datum(type_["values"], defs), max_size=3)


PRIM_DATA: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "double": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(max_size=5),
    "bytes": st.text(max_size=5).map(str.encode),
}


def define(names: Names, spec: dict[str, Any]) -> dict[str, Any]:
    names.defs[spec["name"]] = spec
    return spec


@st.composite
def gen_type(draw: st.DrawFn, names: Names, depth: int) -> Any:
    kinds = ["primitive", "primitive", "optional", "enum", "fixed", "union"]
    kinds += ["array", "map", "record", "optional-record"] if depth > 0 else []
    kinds += ["reference"] if names.defs else []
    kind = draw(st.sampled_from(kinds))
    if kind == "primitive":
        return draw(st.sampled_from(PRIMS))
    if kind == "optional":
        return ["null", draw(st.sampled_from(PRIMS[1:]))]
    if kind == "union":
        return ["null", *draw(st.lists(st.sampled_from(PRIMS[1:]), min_size=2, max_size=2, unique=True))]
    if kind == "enum":
        symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True))
        extra = {"default": draw(st.sampled_from(symbols))} if draw(st.booleans()) else {}
        return define(names, enum(names.fresh(), *symbols, **extra))
    if kind == "fixed":
        return define(names, fixed(names.fresh(), draw(st.integers(1, 4))))
    if kind == "array":
        return array(draw(gen_type(names, depth - 1)))
    if kind == "map":
        return amap(draw(gen_type(names, depth - 1)))
    if kind == "reference":
        return draw(st.sampled_from(sorted(names.defs)))
    record = draw(gen_record(names, depth - 1, names.fresh()))
    return ["null", record] if kind == "optional-record" else record


@st.composite
def gen_record(draw: st.DrawFn, names: Names, depth: int, name: str) -> dict[str, Any]:
    fields = []
    for field_name in draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4, unique=True)):
        type_ = draw(gen_type(names, depth))
        default = zero(type_, names.defs) if draw(st.booleans()) else NO_DEFAULT
        fields.append(fld(field_name, type_, default))
    return define(names, rec(name, *fields))


@st.composite
def mutate(draw: st.DrawFn, type_: Any, names: Names, depth: int) -> Any:
    """The reader's version of a writer type: kept, reshaped, promoted, narrowed or replaced."""
    action = draw(st.sampled_from(["keep", "keep", "shape", "shape", "shape", "replace", "optional", "unwrap"]))
    if action == "replace":
        return draw(gen_type(names, depth))
    if action == "optional" and not isinstance(type_, list) and type_ != "null":
        return ["null", draw(mutate(type_, names, depth))]
    if action == "unwrap" and isinstance(type_, list) and len(type_) > 1:
        return draw(mutate(type_[-1], names, depth))
    if action == "shape":
        return draw(reshape(type_, names, depth))
    return draw(copy_type(type_, names, depth))


@st.composite
def copy_type(draw: st.DrawFn, type_: Any, names: Names, depth: int) -> Any:
    """The same type in the reader, with nested named types still open to mutation."""
    if isinstance(type_, list):
        return [draw(copy_type(branch, names, depth)) for branch in type_]
    if isinstance(type_, str):
        return names.renames.get(type_, type_)
    if type_["type"] == "record":
        return draw(mutate_record(type_, names, depth))
    if type_["type"] in ("enum", "fixed"):
        return define(names, copy.deepcopy(type_))
    if type_["type"] == "array":
        return array(draw(mutate(type_["items"], names, depth)))
    return amap(draw(mutate(type_["values"], names, depth)))


@st.composite
def reshape(draw: st.DrawFn, type_: Any, names: Names, depth: int) -> Any:
    if isinstance(type_, str) and type_ in PROMOTE | DEMOTE:
        return draw(st.sampled_from(PROMOTE.get(type_, []) + DEMOTE.get(type_, [])))
    if isinstance(type_, list):
        branches = [draw(copy_type(b, names, depth)) for b in type_]
        if len(branches) > 1 and draw(st.booleans()):
            branches.pop(draw(st.integers(0, len(branches) - 1)))
        elif draw(st.booleans()):
            branches.reverse()
        extra = draw(st.sampled_from(PRIMS))
        return [*branches, extra] if extra not in branches and draw(st.booleans()) else branches
    if isinstance(type_, dict) and type_["type"] == "enum":
        symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True))
        extra = {"default": draw(st.sampled_from(symbols))} if draw(st.booleans()) else {}
        return define(names, enum(type_["name"], *symbols, **extra))
    if isinstance(type_, dict) and type_["type"] == "fixed":
        return define(names, fixed(type_["name"], draw(st.integers(1, 4))))
    if isinstance(type_, dict) and type_["type"] in ("array", "map"):
        inner = draw(mutate(type_.get("items", type_.get("values")), names, depth))
        return draw(st.sampled_from([array(inner), amap(inner)]))
    return draw(copy_type(type_, names, depth))


@st.composite
def mutate_record(draw: st.DrawFn, writer: dict[str, Any], names: Names, depth: int) -> dict[str, Any]:
    name = writer["name"]
    extra: dict[str, Any] = {}
    if draw(st.integers(0, 19)) == 0:
        name = names.fresh()
        extra = {"aliases": [writer["name"]]} if draw(st.booleans()) else {}
        names.renames[writer["name"]] = name
    fields = []
    for spec in writer["fields"]:
        action = draw(st.sampled_from(["keep"] * 5 + ["mutate"] * 3 + ["drop", "rename", "alias", "default"]))
        if action == "drop":
            continue
        type_ = draw(
            mutate(spec["type"], names, depth) if action == "mutate" else copy_type(spec["type"], names, depth)
        )
        has_default = ("default" in spec) != (action == "default")
        field_name = spec["name"] + "_new" if action in ("rename", "alias") else spec["name"]
        aliases = {"aliases": [spec["name"]]} if action == "alias" else {}
        fields.append(fld(field_name, type_, zero(type_, names.defs) if has_default else NO_DEFAULT, **aliases))
    for added in draw(st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True)):
        type_ = draw(gen_type(names, depth))
        with_default = draw(st.sampled_from([True, True, True, False]))
        fields.append(fld(added, type_, zero(type_, names.defs) if with_default else NO_DEFAULT))
    return define(names, rec(name, *fields, **extra))


def valid(schema: dict[str, Any]) -> bool:
    try:
        fastavro.parse_schema(copy.deepcopy(schema))
    except Exception:  # noqa: BLE001 - any rejection: the mutation produced a schema that is not valid Avro
        return False
    return True


@st.composite
def writer_reader_data(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    writer_names = Names("N")
    writer = draw(gen_record(writer_names, 2, "R"))
    reader = draw(mutate_record(writer, Names("X"), 1))
    namespaces = st.sampled_from([None, "hub.v1", "hub.v2"])  # named types match on unqualified names
    for schema in (writer, reader):
        if (namespace := draw(namespaces)) is not None:
            schema["namespace"] = namespace
    assume(valid(reader))
    data = draw(st.lists(datum(writer, writer_names.defs), min_size=1, max_size=3))
    return writer, reader, data


def fastavro_error(writer: dict[str, Any], reader: dict[str, Any], data: list[Any]) -> Exception | None:
    parsed_writer, parsed_reader = fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    for item in data:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, item)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # noqa: BLE001 - whatever fastavro raises, a reader fails
            return exc
    return None


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(writer_reader_data())
def test_compatible_means_fastavro_reads_the_data(case: tuple[dict[str, Any], dict[str, Any], list[Any]]) -> None:
    writer, reader, data = case
    findings = reader_findings(reader, writer)
    error = fastavro_error(writer, reader, data)
    event(
        "compatible"
        if not findings
        else "incompatible, fastavro failed"
        if error
        else "incompatible, sampled data happened to read"
    )
    if error is not None:
        assert findings, f"fastavro could not read ({error!r}) but the checker found nothing:\n{writer}\n{reader}"


def read_with_fastavro(writer: Any, reader: Any, item: Any) -> Any:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(writer), item)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, fastavro.parse_schema(writer), fastavro.parse_schema(reader))


@pytest.mark.parametrize(
    ("reader", "writer", "item", "rule"),
    [
        pytest.param(one(["null", "int"]), one(["null", "int", "string"]), {"f": 1}, UNION, id="unused-union-branch"),
        pytest.param(
            one(enum("E", "A")), one(enum("E", "A", "B")), {"f": "A"}, "enum-symbol-missing", id="unused-enum-symbol"
        ),
        pytest.param(
            one(array(rec("I", fld("a", "int"), fld("b", "int")))),
            one(array(rec("I", fld("a", "int")))),
            {"f": []},
            "reader-field-missing-default",
            id="record-in-empty-array",
        ),
        pytest.param(
            one(decimal(10, 3)), one(decimal(10, 2)), {"f": Decimal("1.25")}, "decimal-mismatch", id="decimal-scale"
        ),
    ],
)
def test_stricter_than_fastavro_where_documented(reader: Any, writer: Any, item: Any, rule: str) -> None:
    """fastavro resolves per datum (and rescales decimals with the writer's scale); the checker per schema."""
    read_with_fastavro(writer, reader, item)
    assert [f.rule for f in reader_findings(reader, writer)] == [rule]
