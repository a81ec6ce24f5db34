"""The one parsed Avro model that the codec, the natural-JSON mapping and the compatibility checker walk."""

from __future__ import annotations

from typing import Any

import pytest

from hubstream.errors import ContractError, EventValidationError
from schemas import model as m
from schemas.codec import compile_schema, problems
from schemas.natural import NaturalJson
from schemas.paths import format_path, join_path

ORDER: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "aliases": ["Purchase", "legacy.Bought"],
    "fields": [
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"], "default": "NEW"}},
        {"name": "previous", "type": ["null", "Status"], "default": None},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {
            "name": "odd",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 2},
            "aliases": ["o"],
        },
        {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "next", "type": ["null", "Order"], "default": None},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "namespace": "shop.items",
                    "fields": [{"name": "sku", "type": "string"}],
                },
            },
        },
    ],
}


def field(record: m.Record, name: str) -> m.Field:
    return next(f for f in record.fields if f.name == name)


def test_named_types_are_resolved_once_and_shared() -> None:
    schema = m.parse(ORDER)
    order = schema.root
    assert isinstance(order, m.Record) and order.fullname == "shop.Order" and order.name == "Order"
    status = field(order, "status").type
    assert isinstance(status, m.Enum) and status.fullname == "shop.Status" and status.default == "NEW"
    previous = field(order, "previous").type
    assert isinstance(previous, m.Union) and previous.branches[1] is status  # a reference is the same object
    recursive = field(order, "next").type
    assert isinstance(recursive, m.Union) and recursive.branches[1] is order  # a cycle, not an endless tree
    line = field(order, "lines").type
    assert isinstance(line, m.Array) and isinstance(line.items, m.Record) and line.items.fullname == "shop.items.Line"
    assert set(schema.types) == {"shop.Order", "shop.Status", "shop.items.Line"}
    assert schema.types["shop.Status"] is status
    assert set(schema.named) == set(schema.types)  # fastavro's named types, for the code that calls fastavro


def test_aliases_are_qualified_in_the_declaring_namespace() -> None:
    order = m.parse(ORDER).root
    assert isinstance(order, m.Record)
    assert order.aliases == {"shop.Purchase", "legacy.Bought"} and order.bare_aliases == {"Purchase"}
    assert field(order, "odd").aliases == ("o",)
    writer = m.parse({"type": "record", "name": "Purchase", "namespace": "other", "fields": []}).root
    assert isinstance(writer, m.Record) and m.names_match(order, writer)  # a bare alias matches the short name


def test_logical_types_and_defaults_are_kept_as_written() -> None:
    order = m.parse(ORDER).root
    assert isinstance(order, m.Record)
    placed, total, odd = (field(order, n).type for n in ("placed", "total", "odd"))
    assert placed == m.Primitive("long", m.Logical("timestamp-millis"))
    assert isinstance(total, m.Primitive) and total.logical == m.Logical("decimal", 9, 2) and total.logical.decimal
    # a decimal without a positive precision is invalid: read as its underlying type, as the spec says
    bad = m.parse({"type": "bytes", "logicalType": "decimal", "precision": 0, "scale": 0}).root
    assert isinstance(bad, m.Primitive) and bad.logical is not None and not bad.logical.decimal
    assert m.describe(bad) == "bytes" and m.describe(total) == "bytes (decimal(9,2))"
    assert isinstance(odd, m.Primitive) and odd.logical == m.Logical("decimal", 2, 2)
    tags, lines = field(order, "tags"), field(order, "lines")
    assert (tags.has_default, tags.default) == (True, {}) and (lines.has_default, lines.default) == (False, None)
    assert field(order, "previous").has_default and field(order, "previous").default is None


@pytest.mark.parametrize(
    ("schema", "name"),
    [(ORDER, "shop.Order"), ("long", "long"), (["null", "string"], "union"), ({"type": "map", "values": "int"}, "map")],
)
def test_a_schema_is_named_after_its_top_level_type(schema: Any, name: str) -> None:
    assert m.parse(schema).name == name
    assert compile_schema(m.parse(schema)).name == name


def test_invalid_schemas_are_contract_errors() -> None:
    with pytest.raises(ContractError, match="not valid JSON"):
        m.parse_text("{nope")
    with pytest.raises(ContractError, match="not valid Avro"):
        m.parse({"type": "record", "name": "R", "fields": [{"name": "a", "type": "Missing"}]})
    with pytest.raises(ContractError, match="not valid Avro"):
        m.parse_text(
            '{"type": "record", "name": "R", "namespace": "n", "fields": ['
            '{"name": "a", "type": {"type": "fixed", "name": "F", "size": 1}}, {"name": "b", "type": "other.F"}]}'
        )


def test_nullable_and_kinds() -> None:
    union = m.parse(["null", "int"]).root
    assert m.nullable(union) and m.nullable(m.parse("null").root) and not m.nullable(m.parse("int").root)
    mixed = m.parse(["null", {"type": "array", "items": "int"}]).root
    assert isinstance(mixed, m.Union) and [m.kind_of(b) for b in mixed.branches] == ["null", "array"]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ([], "$"),
        (["a"], "a"),
        (["a", 0, "b"], "a[0].b"),
        (["metadata", "x-trace"], 'metadata["x-trace"]'),
        ([3], "[3]"),
        (["a\n"], '["a\\n"]'),
        (["ünï"], '["ünï"]'),
    ],
)
def test_one_path_format(path: list[str | int], text: str) -> None:
    assert format_path(path) == text
    joined = ""
    for segment in path:
        joined = join_path(joined, segment)
    assert (joined or "$") == text


def test_the_codec_and_the_natural_mapping_report_the_same_paths() -> None:
    schema = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "metadata", "type": {"type": "map", "values": "string"}},
            {
                "name": "sections",
                "type": {
                    "type": "array",
                    "items": {"type": "record", "name": "S", "fields": [{"name": "order", "type": "int"}]},
                },
            },
        ],
    }
    value = {"metadata": {"x-trace": 5}, "sections": [{"order": 1}, {"order": "two"}]}
    codec_paths = [path for path, _ in problems(value, compile_schema(schema).schema.root)]
    with pytest.raises(EventValidationError) as caught:
        NaturalJson(schema).from_json(value)
    natural_paths = [path for path, _ in caught.value.problems]
    assert codec_paths == natural_paths == ['metadata["x-trace"]', "sections[1].order"]
