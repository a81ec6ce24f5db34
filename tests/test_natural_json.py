"""Natural JSON <-> fastavro datums: every rule in and out, with exact problem paths."""

from __future__ import annotations

import copy
import io
import json
import math
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from hubstream.errors import ContractError, EventValidationError, SerdeError
from schemas.contracts import load_contracts
from schemas.natural import NaturalJson, from_natural_json, to_natural_json
from schemas.paths import format_path

UTC = UTC
CONTRACTS = load_contracts(Path(schemas.__file__).parent / "avro")
CHAT = CONTRACTS["hubstream.chat.ChatResponse"]
MINUTES = CONTRACTS["hubstream.meetings.MinutesFinalized"]


def one_field(field_type: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": "T", "namespace": "test", "fields": [{"name": "v", "type": field_type, **extra}]}


def write_read(schema: Any, datum: Any, **read_options: Any) -> Any:
    parsed = fastavro.parse_schema(schema)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed, None, **read_options)


def problems_of(value: Any, schema: Any) -> list[tuple[str, str]]:
    with pytest.raises(EventValidationError) as caught:
        from_natural_json(value, schema)
    return caught.value.problems


DEC = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
FIXED_DEC = {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 10, "scale": 2}
TS_MS = {"type": "long", "logicalType": "timestamp-millis"}
TS_US = {"type": "long", "logicalType": "timestamp-micros"}
LOCAL_MS = {"type": "long", "logicalType": "local-timestamp-millis"}
LOCAL_US = {"type": "long", "logicalType": "local-timestamp-micros"}
DATE = {"type": "int", "logicalType": "date"}
TIME_MS = {"type": "int", "logicalType": "time-millis"}
TIME_US = {"type": "long", "logicalType": "time-micros"}
UUID = {"type": "string", "logicalType": "uuid"}
ENUM = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
FIXED2 = {"type": "fixed", "name": "Two", "size": 2}
AN_ID = "123e4567-e89b-12d3-a456-426614174000"
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# (id, field type, natural input, datum, natural output)
ACCEPTED = [
    ("null", "null", None, None, None),
    ("boolean", "boolean", True, True, True),
    ("int", "int", 5, 5, 5),
    ("int-min", "int", -(2**31), -(2**31), -(2**31)),
    ("int-max", "int", 2**31 - 1, 2**31 - 1, 2**31 - 1),
    ("long-max", "long", 2**63 - 1, 2**63 - 1, 2**63 - 1),
    ("float", "float", 1.5, 1.5, 1.5),
    ("float-from-int", "float", 2, 2.0, 2.0),
    ("double", "double", 1e300, 1e300, 1e300),
    ("double-infinity", "double", "Infinity", math.inf, "Infinity"),
    ("double-minus-infinity", "double", "-Infinity", -math.inf, "-Infinity"),
    ("string", "string", "héllo ✓", "héllo ✓", "héllo ✓"),
    ("bytes", "bytes", "aGk=", b"hi", "aGk="),
    ("bytes-unpadded", "bytes", "aGk", b"hi", "aGk="),
    ("bytes-urlsafe", "bytes", "-_8", b"\xfb\xff", "+/8="),
    ("bytes-empty", "bytes", "", b"", ""),
    ("fixed", FIXED2, "+/8=", b"\xfb\xff", "+/8="),
    ("enum", ENUM, "GREEN", "GREEN", "GREEN"),
    ("array", {"type": "array", "items": "int"}, [1, 2], [1, 2], [1, 2]),
    ("array-empty", {"type": "array", "items": "int"}, [], [], []),
    ("map", {"type": "map", "values": "long"}, {"a": 1, "x-y": 2}, {"a": 1, "x-y": 2}, {"a": 1, "x-y": 2}),
    ("ts-ms-z", TS_MS, "2024-05-01T12:00:00Z", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-offset", TS_MS, "2024-05-01T14:00:00+02:00", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-offset-compact", TS_MS, "2024-05-01T07:00:00-0500", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-naive-is-utc", TS_MS, "2024-05-01T12:00:00", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-no-seconds", TS_MS, "2024-05-01T12:00Z", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-lowercase", TS_MS, "2024-05-01t12:00:00z", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-space", TS_MS, "2024-05-01 12:00:00Z", NOON, "2024-05-01T12:00:00.000Z"),
    ("ts-ms-millis", TS_MS, "2024-05-01T12:00:00.250Z", NOON.replace(microsecond=250000), "2024-05-01T12:00:00.250Z"),
    (
        "ts-ms-truncates",
        TS_MS,
        "2024-05-01T12:00:00.123987Z",
        NOON.replace(microsecond=123000),
        "2024-05-01T12:00:00.123Z",
    ),
    (
        "ts-ms-nanos",
        TS_MS,
        "2024-05-01T12:00:00.123456789Z",
        NOON.replace(microsecond=123000),
        "2024-05-01T12:00:00.123Z",
    ),
    ("ts-ms-epoch", TS_MS, 1714564800000, NOON, "2024-05-01T12:00:00.000Z"),
    (
        "ts-ms-before-epoch",
        TS_MS,
        -1,
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "1969-12-31T23:59:59.999Z",
    ),
    ("ts-us", TS_US, "2024-05-01T12:00:00.123456Z", NOON.replace(microsecond=123456), "2024-05-01T12:00:00.123456Z"),
    ("ts-us-epoch", TS_US, 1714564800000001, NOON.replace(microsecond=1), "2024-05-01T12:00:00.000001Z"),
    ("local-ms", LOCAL_MS, "2024-05-01T12:00:00", datetime(2024, 5, 1, 12), "2024-05-01T12:00:00.000"),
    (
        "local-ms-offset-to-utc",
        LOCAL_MS,
        "2024-05-01T14:00:00+02:00",
        datetime(2024, 5, 1, 12),
        "2024-05-01T12:00:00.000",
    ),
    ("local-ms-epoch", LOCAL_MS, 1714564800000, datetime(2024, 5, 1, 12), "2024-05-01T12:00:00.000"),
    (
        "local-us",
        LOCAL_US,
        "2024-05-01T12:00:00.000007",
        datetime(2024, 5, 1, 12, 0, 0, 7),
        "2024-05-01T12:00:00.000007",
    ),
    ("date", DATE, "2024-05-01", date(2024, 5, 1), "2024-05-01"),
    ("date-days", DATE, 0, date(1970, 1, 1), "1970-01-01"),
    ("date-days-negative", DATE, -1, date(1969, 12, 31), "1969-12-31"),
    ("time-ms", TIME_MS, "13:45:30.250", time(13, 45, 30, 250000), "13:45:30.250"),
    ("time-ms-short", TIME_MS, "13:45", time(13, 45), "13:45:00.000"),
    ("time-ms-int", TIME_MS, 3_600_001, time(1, 0, 0, 1000), "01:00:00.001"),
    ("time-us", TIME_US, "13:45:30.123456", time(13, 45, 30, 123456), "13:45:30.123456"),
    ("time-us-int", TIME_US, 86_399_999_999, time(23, 59, 59, 999999), "23:59:59.999999"),
    ("uuid", UUID, AN_ID, uuid.UUID(AN_ID), AN_ID),
    ("uuid-uppercase", UUID, AN_ID.upper(), uuid.UUID(AN_ID), AN_ID),
    ("decimal-string", DEC, "12.34", Decimal("12.34"), "12.34"),
    ("decimal-int", DEC, 12, Decimal("12.00"), "12.00"),
    ("decimal-float", DEC, 1.5, Decimal("1.50"), "1.50"),
    ("decimal-negative", DEC, "-0.05", Decimal("-0.05"), "-0.05"),
    ("decimal-exponent", DEC, "1e2", Decimal("100.00"), "100.00"),
    ("decimal-trailing-zero", DEC, "1.230", Decimal("1.23"), "1.23"),
    ("decimal-max", DEC, "99999999.99", Decimal("99999999.99"), "99999999.99"),
    ("decimal-fixed", FIXED_DEC, "-12.34", Decimal("-12.34"), "-12.34"),
    ("unknown-logical-type", {"type": "int", "logicalType": "percent"}, 7, 7, 7),
    ("mismatched-logical-type", {"type": "string", "logicalType": "date"}, "today", "today", "today"),
]


@pytest.mark.parametrize(
    ("field_type", "natural", "datum", "back"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepts_and_round_trips(field_type: Any, natural: Any, datum: Any, back: Any) -> None:
    schema = one_field(field_type)
    converted = from_natural_json({"v": natural}, schema)
    assert converted == {"v": datum}
    assert type(converted["v"]) is type(datum)
    decoded = write_read(schema, converted)
    assert decoded == {"v": datum}
    assert to_natural_json(decoded, schema) == {"v": back}
    assert from_natural_json({"v": back}, schema) == {"v": datum}


def test_nan_is_written_as_a_string() -> None:
    schema = one_field("double")
    datum = from_natural_json({"v": "NaN"}, schema)
    assert math.isnan(datum["v"])
    assert to_natural_json(write_read(schema, datum), schema) == {"v": "NaN"}


# (id, field type, natural input, problem at path "v")
REJECTED = [
    ("null-gets-int", "null", 0, "expected null, got integer"),
    ("boolean-gets-int", "boolean", 1, "expected true or false (Avro boolean), got integer"),
    ("boolean-gets-string", "boolean", "true", "expected true or false (Avro boolean), got string"),
    ("int-gets-string", "int", "5", "expected an integer (Avro int), got string"),
    ("int-gets-bool", "int", True, "expected an integer (Avro int), got boolean"),
    ("int-gets-float", "int", 1.0, "expected an integer (Avro int), got number"),
    ("int-gets-null", "int", None, "expected an integer (Avro int), got null"),
    ("int-too-big", "int", 2**31, "integer out of range for Avro int (-2147483648 to 2147483647)"),
    ("int-too-small", "int", -(2**31) - 1, "integer out of range for Avro int (-2147483648 to 2147483647)"),
    ("long-too-big", "long", 2**63, "integer out of range for Avro long (-9223372036854775808 to 9223372036854775807)"),
    ("long-gets-array", "long", [1], "expected an integer (Avro long), got array"),
    ("float-gets-string", "float", "1.5", "expected a number (Avro float), got string"),
    ("float-gets-bool", "double", False, "expected a number (Avro double), got boolean"),
    ("float-out-of-range", "float", 1e39, "number out of range for Avro float"),
    ("double-huge-int", "double", 10**400, "number out of range for Avro double"),
    ("string-gets-int", "string", 5, "expected a string (Avro string), got integer"),
    ("string-gets-object", "string", {"a": 1}, "expected a string (Avro string), got object"),
    ("string-lone-surrogate", "string", "a\ud800", "string is not valid Unicode text (it holds a lone surrogate)"),
    ("bytes-gets-int", "bytes", 5, "expected a base64 string (Avro bytes), got integer"),
    (
        "bytes-not-base64",
        "bytes",
        "not base64!",
        "expected a base64 string (Avro bytes), got a string that is not base64",
    ),
    ("bytes-bad-length", "bytes", "aGkxx", "expected a base64 string (Avro bytes), got a string that is not base64"),
    ("fixed-wrong-size", FIXED2, "aGk6", "expected 2 bytes (Avro fixed test.Two), got 3"),
    ("enum-unknown-symbol", ENUM, "BLUE", "expected one of 'RED', 'GREEN' (Avro enum test.Color), got 'BLUE'"),
    ("enum-gets-int", ENUM, 1, "expected one of 'RED', 'GREEN' (Avro enum test.Color), got integer"),
    ("array-gets-object", {"type": "array", "items": "int"}, {"0": 1}, "expected an array, got object"),
    ("map-gets-array", {"type": "map", "values": "int"}, [1], "expected an object (Avro map), got array"),
    ("ts-garbage", TS_MS, "yesterday", "expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got 'yesterday'"),
    (
        "ts-date-only",
        TS_MS,
        "2024-05-01",
        "expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got '2024-05-01'",
    ),
    (
        "ts-bad-month",
        TS_MS,
        "2024-13-01T00:00:00Z",
        "expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got '2024-13-01T00:00:00Z'",
    ),
    (
        "ts-float",
        TS_MS,
        1.5,
        "expected an ISO-8601 date-time string or epoch milliseconds (Avro timestamp-millis), got number",
    ),
    (
        "ts-bool",
        TS_US,
        True,
        "expected an ISO-8601 date-time string or epoch microseconds (Avro timestamp-micros), got boolean",
    ),
    ("ts-epoch-out-of-range", TS_MS, 2**62, "epoch milliseconds out of range (years 1 to 9999)"),
    ("ts-before-year-1", TS_MS, "0001-01-01T00:00:00+01:00", "date-time out of range (years 1 to 9999 in UTC)"),
    (
        "ts-long-string-shortened",
        TS_MS,
        "x" * 50,
        "expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'",
    ),
    ("date-invalid-day", DATE, "2024-02-30", "expected a date like '2024-05-01', got '2024-02-30'"),
    ("date-basic-format", DATE, "20240501", "expected a date like '2024-05-01', got '20240501'"),
    ("date-with-time", DATE, "2024-05-01T00:00:00Z", "expected a date like '2024-05-01', got '2024-05-01T00:00:00Z'"),
    ("date-float", DATE, 1.0, "expected a date 'YYYY-MM-DD' or days since 1970-01-01 (Avro date), got number"),
    ("date-days-out-of-range", DATE, 10**7, "days since 1970-01-01 out of range (years 1 to 9999)"),
    ("time-hour-25", TIME_MS, "25:00", "expected a time of day like '13:45:00.000' (no offset), got '25:00'"),
    ("time-offset", TIME_MS, "13:45:00Z", "expected a time of day like '13:45:00.000' (no offset), got '13:45:00Z'"),
    ("time-negative", TIME_MS, -1, "milliseconds since midnight out of range (0 to 86399999)"),
    ("time-a-day", TIME_US, 86_400_000_000, "microseconds since midnight out of range (0 to 86399999999)"),
    (
        "time-null",
        TIME_MS,
        None,
        "expected a time of day 'HH:MM:SS.sss' or milliseconds since midnight (Avro time-millis), got null",
    ),
    (
        "uuid-garbage",
        UUID,
        "not-a-uuid",
        "expected a UUID like '123e4567-e89b-12d3-a456-426614174000', got 'not-a-uuid'",
    ),
    (
        "uuid-braces",
        UUID,
        "{" + AN_ID + "}",
        "expected a UUID like '123e4567-e89b-12d3-a456-426614174000', got '{123e4567-e89b-12d3-a456-426614174000}'",
    ),
    ("uuid-int", UUID, 5, "expected a UUID like '123e4567-e89b-12d3-a456-426614174000', got integer"),
    ("decimal-scale", DEC, "1.234", "'1.234' has more than 2 decimal places (Avro decimal(10,2))"),
    (
        "decimal-scale-rounds-up",
        DEC,
        "99999999.999",
        "'99999999.999' has more than 2 decimal places (Avro decimal(10,2))",
    ),
    ("decimal-float-scale", DEC, 0.125, "0.125 has more than 2 decimal places (Avro decimal(10,2))"),
    (
        "decimal-too-many-digits",
        DEC,
        "123456789",
        "'123456789' has too many digits for Avro decimal(10,2) (at most 8 before the point)",
    ),
    (
        "decimal-int-too-many-digits",
        DEC,
        10**8,
        "100000000 has too many digits for Avro decimal(10,2) (at most 8 before the point)",
    ),
    (
        "decimal-garbage",
        DEC,
        "12,34",
        "expected a decimal number as a string or number (Avro decimal(10,2)), got string '12,34'",
    ),
    (
        "decimal-nan",
        DEC,
        "NaN",
        "expected a decimal number as a string or number (Avro decimal(10,2)), got string 'NaN'",
    ),
    ("decimal-bool", DEC, True, "expected a decimal number as a string or number (Avro decimal(10,2)), got boolean"),
    (
        "decimal-fixed-digits",
        FIXED_DEC,
        -(10**8),
        "-100000000 has too many digits for Avro decimal(10,2) (at most 8 before the point)",
    ),
]


@pytest.mark.parametrize(("field_type", "natural", "problem"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_rejects_with_path_and_problem(field_type: Any, natural: Any, problem: str) -> None:
    assert problems_of({"v": natural}, one_field(field_type)) == [("v", problem)]


ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "customer",
            "type": {
                "type": "record",
                "name": "Customer",
                "fields": [
                    {"name": "name", "type": "string"},
                    {
                        "name": "address",
                        "type": {
                            "type": "record",
                            "name": "Address",
                            "fields": [
                                {"name": "city", "type": "string"},
                                {"name": "zip", "type": "string", "default": ""},
                            ],
                        },
                    },
                ],
            },
        },
        {"name": "shipTo", "type": ["null", "Address"], "default": None},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
                },
            },
        },
        {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}, "default": "NEW"},
        {"name": "createdAt", "type": TS_MS},
    ],
}
GOOD_ORDER = {
    "id": "o-1",
    "customer": {"name": "Ada", "address": {"city": "Oslo", "zip": "0150"}},
    "lines": [{"sku": "a", "qty": 1}],
    "createdAt": "2024-05-01T12:00:00Z",
}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


RECORD_CASES = [
    ("root-not-an-object", ["o-1"], [("$", "expected an object (record shop.Order), got array")]),
    (
        "missing-required",
        with_changes(GOOD_ORDER, id=..., createdAt=...),
        [("id", "required field missing"), ("createdAt", "required field missing")],
    ),
    ("unknown-field", with_changes(GOOD_ORDER, extra=1), [("extra", "unknown field")]),
    (
        "typo-suggests",
        with_changes(GOOD_ORDER, createdAt=..., createAt="2024-05-01T12:00:00Z"),
        [("createdAt", "required field missing"), ("createAt", "unknown field; did you mean 'createdAt'?")],
    ),
    ("odd-unknown-key", with_changes(GOOD_ORDER, **{"x-y": 1}), [('["x-y"]', "unknown field")]),
    (
        "nested-record-not-object",
        with_changes(GOOD_ORDER, customer="Ada"),
        [("customer", "expected an object (record shop.Customer), got string")],
    ),
    (
        "nested-missing",
        with_changes(GOOD_ORDER, customer={"name": "Ada", "address": {}}),
        [("customer.address.city", "required field missing")],
    ),
    (
        "array-item-paths",
        with_changes(GOOD_ORDER, lines=[{"sku": "a", "qty": 1}, {"sku": 2, "qty": "3"}, {"sku": "c"}]),
        [
            ("lines[1].sku", "expected a string (Avro string), got integer"),
            ("lines[1].qty", "expected an integer (Avro int), got string"),
            ("lines[2].qty", "required field missing"),
        ],
    ),
    (
        "map-value-paths",
        with_changes(GOOD_ORDER, tags={"lang": 1, "x.y": None}),
        [
            ("tags.lang", "expected a string (Avro string), got integer"),
            ('tags["x.y"]', "expected a string (Avro string), got null"),
        ],
    ),
    (
        "enum",
        with_changes(GOOD_ORDER, status="SHIPPED"),
        [("status", "expected one of 'NEW', 'PAID' (Avro enum shop.Status), got 'SHIPPED'")],
    ),
    (
        "named-type-reused-in-union",
        with_changes(GOOD_ORDER, shipTo={"city": 5}),
        [("shipTo.city", "expected a string (Avro string), got integer")],
    ),
    (
        "explicit-null-is-not-missing",
        with_changes(GOOD_ORDER, tags=None),
        [("tags", "expected an object (Avro map), got null")],
    ),
    (
        "every-problem-at-once",
        {
            "id": 1,
            "customer": {"address": {"city": "Oslo", "zipp": "x"}},
            "lines": [{"sku": "a", "qty": 2**40}],
            "createdAt": "soon",
            "status": "NEW",
            "note": "hi",
        },
        [
            ("id", "expected a string (Avro string), got integer"),
            ("customer.name", "required field missing"),
            ("customer.address.zipp", "unknown field; did you mean 'zip'?"),
            ("lines[0].qty", "integer out of range for Avro int (-2147483648 to 2147483647)"),
            ("createdAt", "expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got 'soon'"),
            ("note", "unknown field"),
        ],
    ),
]


@pytest.mark.parametrize(("natural", "problems"), [c[1:] for c in RECORD_CASES], ids=[c[0] for c in RECORD_CASES])
def test_record_problems(natural: Any, problems: list[tuple[str, str]]) -> None:
    assert problems_of(natural, ORDER) == problems


def test_record_defaults_and_reuse_of_named_types() -> None:
    datum = from_natural_json(with_changes(GOOD_ORDER, shipTo={"city": "Bergen"}), ORDER)
    assert datum == {
        "id": "o-1",
        "customer": {"name": "Ada", "address": {"city": "Oslo", "zip": "0150"}},
        "shipTo": {"city": "Bergen", "zip": ""},
        "lines": [{"sku": "a", "qty": 1}],
        "tags": {},
        "status": "NEW",
        "createdAt": NOON,
    }
    assert list(datum) == [f["name"] for f in ORDER["fields"]]
    assert to_natural_json(write_read(ORDER, datum), ORDER)["shipTo"] == {"city": "Bergen", "zip": ""}


def test_defaults_are_fresh_copies() -> None:
    first = from_natural_json(GOOD_ORDER, ORDER)
    first["tags"]["mutated"] = "yes"
    assert from_natural_json(GOOD_ORDER, ORDER)["tags"] == {}


# (id, field type with default, expected datum when the field is missing)
DEFAULTS = [
    ("bytes-latin1", {"type": "bytes", "default": "\u00ff\u0000"}, b"\xff\x00"),
    ("fixed-latin1", {"type": FIXED2, "default": "ab"}, b"ab"),
    ("decimal-from-bytes", {"type": DEC, "default": "\u0004\u00d2"}, Decimal("12.34")),
    ("timestamp-epoch", {"type": TS_MS, "default": 0}, datetime(1970, 1, 1, tzinfo=UTC)),
    ("date-days", {"type": DATE, "default": 1}, date(1970, 1, 2)),
    ("uuid", {"type": UUID, "default": AN_ID}, uuid.UUID(AN_ID)),
    ("union-null", {"type": ["null", "string"], "default": None}, None),
    ("union-first-branch", {"type": ["string", "null"], "default": "x"}, "x"),
    ("union-ambiguous-branch", {"type": ["int", "long"], "default": 5}, ("int", 5)),
    (
        "record",
        {
            "type": {
                "type": "record",
                "name": "P",
                "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": "z"}],
            },
            "default": {"a": 1},
        },
        {"a": 1, "b": "z"},
    ),
    ("array", {"type": {"type": "array", "items": "long"}, "default": [1, 2]}, [1, 2]),
    ("map", {"type": {"type": "map", "values": "double"}, "default": {"a": 1}}, {"a": 1.0}),
    ("enum", {"type": ENUM, "default": "RED"}, "RED"),
]


@pytest.mark.parametrize(("field", "datum"), [c[1:] for c in DEFAULTS], ids=[c[0] for c in DEFAULTS])
def test_missing_field_takes_its_default(field: dict[str, Any], datum: Any) -> None:
    field = dict(field)
    schema = one_field(field.pop("type"), **field)
    converted = from_natural_json({}, schema)
    assert converted == {"v": datum}
    write_read(schema, converted)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record", "name": "X", "fields": [{"name": "a"}]},
        one_field("nosuchtype"),
        one_field(["null", "string"], default="x"),
        one_field("int", default="x"),
    ],
    ids=["field-without-type", "unknown-type", "union-default-not-first-branch", "bad-default"],
)
def test_invalid_schemas_are_contract_errors(schema: dict[str, Any]) -> None:
    with pytest.raises(ContractError):
        NaturalJson(schema)


R1 = {"type": "record", "name": "R1", "fields": [{"name": "a", "type": "int"}]}
R2 = {
    "type": "record",
    "name": "R2",
    "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}],
}
R3 = {"type": "record", "name": "R3", "fields": [{"name": "b", "type": "string"}]}
E = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
INNER = {"type": "record", "name": "Inner", "fields": [{"name": "u", "type": ["string", E]}]}
NULL_FIELD = {"type": "record", "name": "S", "fields": [{"name": "null", "type": "int"}]}
AMBIGUOUS = 'ambiguous: the value fits {}; wrap it to choose, e.g. {{"{}": ...}}'

# (id, union, natural input, datum or None, problems)
UNIONS = [
    ("optional-null", ["null", "string"], None, None, []),
    ("optional-value", ["null", "string"], "x", "x", []),
    ("optional-wrapped", ["null", "string"], {"string": "x"}, "x", []),
    ("optional-wrapped-null", ["null", "string"], {"null": None}, None, []),
    ("optional-wrong", ["null", "string"], 5, None, [("v", "expected one of null, string; got integer")]),
    ("optional-record-wrong", ["null", R1], "x", None, [("v", "expected one of null, test.R1; got string")]),
    ("no-branch", ["int", "string"], [1], None, [("v", "expected one of int, string; got array")]),
    ("null-not-allowed", ["int", "string"], None, None, [("v", "expected one of int, string; got null")]),
    ("int-long-first-fits", ["int", "long"], 5, ("int", 5), []),
    ("int-long-too-big-for-int", ["int", "long"], 2**40, ("long", 2**40), []),
    ("long-int-first-fits", ["long", "int"], 5, ("long", 5), []),
    ("int-long-wrapped", ["int", "long"], {"long": 5}, ("long", 5), []),
    ("int-double-integer", ["int", "double"], 1, ("int", 1), []),
    ("int-double-fraction", ["int", "double"], 1.5, ("double", 1.5), []),
    ("string-or-number", ["null", "string", "double"], 2, 2.0, []),
    ("string-bytes-ambiguous", ["string", "bytes"], "aGk=", None, [("v", AMBIGUOUS.format("string, bytes", "string"))]),
    ("string-bytes-wrapped", ["string", "bytes"], {"bytes": "aGk="}, b"hi", []),
    ("string-enum-only-string-fits", ["string", E], "zzz", ("string", "zzz"), []),
    ("string-enum-ambiguous", ["string", E], "A", None, [("v", AMBIGUOUS.format("string, test.E", "string"))]),
    ("string-enum-wrapped", ["string", E], {"test.E": "A"}, ("test.E", "A"), []),
    ("string-enum-wrapped-short-name", ["string", E], {"E": "A"}, ("test.E", "A"), []),
    ("records-one-fits", ["null", R1, R3], {"b": "x"}, ("test.R3", {"b": "x"}), []),
    ("records-ambiguous", ["null", R1, R2], {"a": 1}, None, [("v", AMBIGUOUS.format("test.R1, test.R2", "test.R1"))]),
    ("records-wrapped", ["null", R1, R2], {"test.R2": {"a": 1}}, ("test.R2", {"a": 1, "b": 0}), []),
    (
        "records-none-fits",
        ["null", R1, R3],
        {"c": 1},
        None,
        [("v", "expected one of null, test.R1, test.R3; got object")],
    ),
    (
        "record-nested-paths",
        ["null", R1],
        {"a": "1", "z": 0},
        None,
        [("v.a", "expected an integer (Avro int), got string"), ("v.z", "unknown field")],
    ),
    (
        "wrapper-problem-reported",
        ["null", "string", "int"],
        {"string": 5},
        None,
        [("v.string", "expected a string (Avro string), got integer")],
    ),
    ("wrapper-key-that-is-a-map-key", ["null", {"type": "map", "values": "int"}], {"map": 3}, {"map": 3}, []),
    (
        "array-item-paths",
        ["null", "string", {"type": "array", "items": "int"}],
        [1, "x"],
        None,
        [("v[1]", "expected an integer (Avro int), got string")],
    ),
    ("timestamp-optional", ["null", TS_MS], "2024-05-01T12:00:00Z", NOON, []),
    (
        "timestamp-or-string",
        ["null", "string", TS_MS],
        "2024-05-01T12:00:00Z",
        None,
        [("v", AMBIGUOUS.format("string, long (timestamp-millis)", "string"))],
    ),
    ("timestamp-or-string-wrapped", ["null", "string", TS_MS], {"long": "2024-05-01T12:00:00Z"}, NOON, []),
    (
        "nested-tuple-makes-outer-tuple",
        ["null", INNER],
        {"u": {"test.E": "B"}},
        ("test.Inner", {"u": ("test.E", "B")}),
        [],
    ),
    ("nested-tuple-of-string", ["null", INNER], {"u": "free text"}, ("test.Inner", {"u": ("string", "free text")}), []),
]


@pytest.mark.parametrize(("union", "natural", "datum", "problems"), [c[1:] for c in UNIONS], ids=[c[0] for c in UNIONS])
def test_unions(union: list[Any], natural: Any, datum: Any, problems: list[tuple[str, str]]) -> None:
    schema = one_field(union)
    if problems:
        assert problems_of({"v": natural}, schema) == problems
        return
    converted = from_natural_json({"v": natural}, schema)
    assert converted == {"v": datum}
    decoded = write_read(schema, converted, return_named_type=True)
    back = to_natural_json(decoded, schema)
    assert write_read(schema, from_natural_json(back, schema), return_named_type=True) == decoded


def test_nested_tuple_datum_is_written_by_fastavro() -> None:
    schema = one_field(["null", INNER])
    datum = from_natural_json({"v": {"u": {"E": "B"}}}, schema)
    assert write_read(schema, datum, return_named_type=True) == {"v": ("test.Inner", {"u": ("test.E", "B")})}
    assert write_read(schema, datum) == {"v": {"u": "B"}}


# (id, union, datum as fastavro decodes it, natural form)
UNION_OUTPUT = [
    ("null", ["null", "string"], None, None),
    ("plain-value", ["null", "string"], "x", "x"),
    ("int-of-int-long", ["int", "long"], 5, 5),
    ("long-tuple-needs-wrapper", ["int", "long"], ("long", 5), {"long": 5}),
    ("enum-tuple-needs-wrapper", ["string", E], ("test.E", "A"), {"test.E": "A"}),
    ("string-like-a-symbol-needs-wrapper", ["string", E], "A", {"string": "A"}),
    ("string-unlike-symbols", ["string", E], "free", "free"),
    ("record-by-field-names", ["null", R1, R3], {"b": "x"}, {"b": "x"}),
    ("record-ambiguous-shape", ["null", R1, R2], ("test.R2", {"a": 1, "b": 0}), {"a": 1, "b": 0}),
    (
        "record-ambiguous-needs-wrapper",
        ["null", R2, {**R1, "name": "R4"}],
        ("test.R4", {"a": 1}),
        {"test.R4": {"a": 1}},
    ),
    ("bytes", ["null", "bytes"], b"hi", "aGk="),
    ("map-that-looks-like-a-wrapper", ["null", {"type": "map", "values": "int"}], {"map": 3}, {"map": {"map": 3}}),
    ("record-that-looks-like-a-wrapper", ["null", NULL_FIELD], {"null": 1}, {"test.S": {"null": 1}}),
    ("timestamp", ["null", TS_MS], NOON, "2024-05-01T12:00:00.000Z"),
]


@pytest.mark.parametrize(("union", "datum", "natural"), [c[1:] for c in UNION_OUTPUT], ids=[c[0] for c in UNION_OUTPUT])
def test_union_output_is_natural_unless_ambiguous(union: list[Any], datum: Any, natural: Any) -> None:
    schema = one_field(union)
    assert to_natural_json({"v": datum}, schema) == {"v": natural}
    plain = datum[1] if isinstance(datum, tuple) else datum
    read_back = from_natural_json({"v": natural}, schema)["v"]
    assert (read_back[1] if isinstance(read_back, tuple) else read_back) == plain


LINKED = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}],
}


def test_recursive_record() -> None:
    natural = {"value": 1, "next": {"value": 2, "next": {"value": 3}}}
    datum = from_natural_json(natural, LINKED)
    assert datum == {"value": 1, "next": {"value": 2, "next": {"value": 3, "next": None}}}
    assert to_natural_json(write_read(LINKED, datum), LINKED) == {
        "value": 1,
        "next": {"value": 2, "next": {"value": 3, "next": None}},
    }
    bad = {"value": 1, "next": {"value": 2, "next": {"value": "3", "nxt": None}}}
    assert problems_of(bad, LINKED) == [
        ("next.next.value", "expected an integer (Avro int), got string"),
        ("next.next.nxt", "unknown field; did you mean 'next'?"),
    ]


def test_too_deep_input_is_a_validation_error() -> None:
    natural: dict[str, Any] = {"value": 0}
    for _ in range(5000):
        natural = {"value": 0, "next": natural}
    assert problems_of(natural, LINKED) == [("$", "the event is nested too deeply")]


def test_non_record_top_level_schema() -> None:
    assert from_natural_json([1, 2], {"type": "array", "items": "int"}) == [1, 2]
    assert problems_of(["x"], {"type": "array", "items": "int"}) == [
        ("[0]", "expected an integer (Avro int), got string")
    ]


def test_error_names_the_schema() -> None:
    with pytest.raises(EventValidationError) as caught:
        from_natural_json({}, CHAT.schema)
    assert caught.value.schema_name == "hubstream.chat.ChatResponse"
    assert str(caught.value).startswith("event does not match hubstream.chat.ChatResponse: eventId: required field")
    with pytest.raises(EventValidationError) as caught:
        from_natural_json({}, CHAT.schema, schema_name="chat.responses")
    assert caught.value.schema_name == "chat.responses"


def test_converter_is_compiled_once_per_schema() -> None:
    assert NaturalJson.for_schema(CHAT.schema) is NaturalJson.for_schema(json.loads(CHAT.text))
    assert NaturalJson.for_schema(CHAT.schema) is not NaturalJson.for_schema(MINUTES.schema)


def test_to_json_rejects_a_datum_of_another_schema() -> None:
    with pytest.raises(SerdeError):
        to_natural_json({"eventId": "e"}, CHAT.schema)
    with pytest.raises(SerdeError):
        to_natural_json({"v": 5}, one_field(["null", "string"]))


def test_to_json_accepts_underlying_values() -> None:
    schema = {
        "type": "record",
        "name": "U",
        "fields": [
            {"name": "ts", "type": TS_MS},
            {"name": "d", "type": DATE},
            {"name": "t", "type": TIME_MS},
            {"name": "n", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 20}},
        ],
    }
    datum = {"ts": 1714564800000, "d": 1, "t": 1000, "n": Decimal("1E-20")}
    assert to_natural_json(datum, schema) == {
        "ts": "2024-05-01T12:00:00.000Z",
        "d": "1970-01-02",
        "t": "00:00:01.000",
        "n": "0.00000000000000000001",
    }


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ([], "$"),
        (["a"], "a"),
        (["a", "b"], "a.b"),
        (["a", 2, "b"], "a[2].b"),
        (["m", "x-y"], 'm["x-y"]'),
        ([0], "[0]"),
        (["a b"], '["a b"]'),
    ],
)
def test_path_notation(path: list[str | int], text: str) -> None:
    assert format_path(path) == text


# ---- the project's contracts -------------------------------------------------------------------------------

SECTION = {"sectionId": "s", "type": "DECISION", "title": "t", "content": "c", "order": 0}
CHAT_EVENT = {
    "eventId": "e-1",
    "conversationId": "c-1",
    "userId": "u-1",
    "sequence": 3,
    "content": "Hello ✓",
    "final": True,
    "createdAt": "2024-05-01T12:00:00.250Z",
    "metadata": {"model": "gpt", "lang": "en"},
}
MINUTES_EVENT = {
    "eventType": "MINUTES_FINALIZED",
    "eventId": "evt-1",
    "meetingId": "m-1",
    "title": "Weekly sync",
    "minutesId": "min-1",
    "sections": [
        {"sectionId": "s-1", "type": "DISCUSSION", "title": "Roadmap", "content": "...", "order": 0, "verified": True},
        {
            "sectionId": "s-2",
            "type": "ACTION_ITEM",
            "title": "Ship",
            "content": "Ada ships",
            "order": 1,
            "verified": False,
        },
    ],
    "participants": ["user-1", "user-2"],
}


@pytest.mark.parametrize(
    ("contract", "natural"), [(CHAT, CHAT_EVENT), (MINUTES, MINUTES_EVENT)], ids=["chat", "minutes"]
)
def test_contracts_round_trip(contract: Any, natural: dict[str, Any]) -> None:
    datum = from_natural_json(natural, contract.schema)
    decoded = write_read(contract.schema, datum)
    assert decoded == datum
    back = to_natural_json(decoded, contract.schema)
    assert back == natural
    json.dumps(back, allow_nan=False)


@pytest.mark.parametrize(
    ("contract", "natural", "back"),
    [
        (
            CHAT,
            {**CHAT_EVENT, "final": ..., "metadata": ..., "createdAt": 1714564800000},
            {**CHAT_EVENT, "final": False, "metadata": {}, "createdAt": "2024-05-01T12:00:00.000Z"},
        ),
        (MINUTES, {**MINUTES_EVENT, "eventType": ..., "sections": ...}, {**MINUTES_EVENT, "sections": []}),
        (
            MINUTES,
            {**MINUTES_EVENT, "sections": [SECTION]},
            {**MINUTES_EVENT, "sections": [{**SECTION, "verified": False}]},
        ),
    ],
    ids=["chat-defaults-and-epoch", "minutes-defaults", "section-default"],
)
def test_contracts_fill_defaults(contract: Any, natural: dict[str, Any], back: dict[str, Any]) -> None:
    natural = {k: v for k, v in natural.items() if v is not ...}
    assert (
        to_natural_json(write_read(contract.schema, from_natural_json(natural, contract.schema)), contract.schema)
        == back
    )


def test_minutes_problem_paths() -> None:
    sections = [
        *copy.deepcopy(MINUTES_EVENT["sections"]),
        {"sectionId": "s-3", "type": "DECISION", "title": "t", "content": "c", "order": "2", "verifed": True},
    ]
    natural = {**MINUTES_EVENT, "sections": sections, "title": None}
    assert problems_of(natural, MINUTES.schema) == [
        ("title", "expected a string (Avro string), got null"),
        ("sections[2].order", "expected an integer (Avro int), got string"),
        ("sections[2].verifed", "unknown field; did you mean 'verified'?"),
    ]


def test_chat_problem_paths() -> None:
    natural = {**CHAT_EVENT, "sequence": 1.5, "createdAt": "tomorrow", "metadata": {"lang": ["en"]}}
    assert problems_of(natural, CHAT.schema) == [
        ("sequence", "expected an integer (Avro long), got number"),
        ("createdAt", "expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got 'tomorrow'"),
        ("metadata.lang", "expected a string (Avro string), got array"),
    ]


text = st.text(max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "eventId": text,
            "conversationId": text,
            "userId": text,
            "sequence": st.integers(-(2**63), 2**63 - 1),
            "content": text,
            "final": st.booleans(),
            "createdAt": st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
                lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000).isoformat(timespec="milliseconds") + "Z"
            ),
            "metadata": st.dictionaries(text, text, max_size=4),
        }
    )
)
def test_chat_round_trip_property(natural: dict[str, Any]) -> None:
    converter = NaturalJson.for_schema(CHAT.schema)
    decoded = write_read(CHAT.schema, converter.from_json(natural))
    assert converter.to_json(decoded) == natural
