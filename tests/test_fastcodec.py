"""The compiled codec against fastavro (same bytes, same values) and Apache avro (same bytes)."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import compile_schema, problems

INNER = {
    "type": "record",
    "name": "Inner",
    "fields": [{"name": "x", "type": "int"}, {"name": "tags", "type": {"type": "array", "items": "string"}}],
}
EVERYTHING: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.codec",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "by", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "a", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "opt_last", "type": ["long", "null"]},
        {"name": "u", "type": ["null", "int", "string"]},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsu", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "inner", "type": INNER},
        {"name": "inners", "type": {"type": "array", "items": "test.codec.Inner"}},
        {"name": "color", "type": "Color"},
        {"name": "maybe_inner", "type": ["null", "Inner"]},
        {"name": "deep", "type": {"type": "map", "values": {"type": "array", "items": "Inner"}}},
        {
            "name": "node",
            "type": {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
            },
        },
    ],
}

ints = st.integers(-(2**31), 2**31 - 1)
longs = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=80)
inner = st.fixed_dictionaries({"x": ints, "tags": st.lists(texts, max_size=3)})
aware = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
    ),
)
nodes = st.recursive(
    st.fixed_dictionaries({"v": ints, "next": st.none()}),
    lambda children: st.fixed_dictionaries({"v": ints, "next": children}),
    max_leaves=4,
)
records = st.fixed_dictionaries(
    {
        "n": st.none(),
        "b": st.booleans(),
        "i": ints,
        "l": longs,
        "f": st.floats(width=32, allow_nan=False),
        "d": st.floats(allow_nan=False),
        "by": st.binary(max_size=100),
        "s": st.text(max_size=300),
        "fx": st.binary(min_size=4, max_size=4),
        "e": st.sampled_from(["RED", "GREEN", "BLUE"]),
        "a": st.lists(longs, max_size=70),
        "m": st.dictionaries(texts, texts, max_size=5),
        "opt": st.none() | texts,
        "opt_last": st.none() | longs,
        "u": st.none() | ints | texts,
        "ts": aware,
        "tsu": aware,
        "day": st.dates(),
        "id": st.uuids(),
        "price": st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
        "inner": inner,
        "inners": st.lists(inner, max_size=3),
        "color": st.sampled_from(["RED", "GREEN", "BLUE"]),
        "maybe_inner": st.none() | inner,
        "deep": st.dictionaries(texts, st.lists(inner, max_size=2), max_size=2),
        "node": nodes,
    }
)

EVERYTHING_CODEC = compile_schema(EVERYTHING)
PARSED = fastavro.parse_schema(EVERYTHING)


def fastavro_bytes(record: Any, schema: Any = PARSED) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_same_bytes_and_values_as_fastavro(record: dict[str, Any]) -> None:
    body = EVERYTHING_CODEC.encode(record)
    assert body == fastavro_bytes(record)
    assert EVERYTHING_CODEC.decode(body) == fastavro.schemaless_reader(io.BytesIO(body), PARSED)


CHAT_LIKE: dict[str, Any] = {
    "type": "record",
    "name": "ChatLike",
    "namespace": "test.codec",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "l", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "b", "type": "boolean"},
        {"name": "d", "type": "double"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "inners", "type": {"type": "array", "items": INNER}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
    ],
}
CHAT_LIKE_CODEC = compile_schema(CHAT_LIKE)
APACHE_WRITER = avro.io.DatumWriter(avro.schema.parse(json.dumps(CHAT_LIKE)))


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "s": st.text(max_size=300),
            "l": longs,
            "i": ints,
            "b": st.booleans(),
            "d": st.floats(allow_nan=False),
            "ts": aware,
            "m": st.dictionaries(texts, texts, max_size=5),
            "opt": st.none() | texts,
            "inners": st.lists(inner, max_size=3),
            "e": st.sampled_from(["RED", "GREEN", "BLUE"]),
        }
    )
)
def test_same_bytes_as_apache_avro(record: dict[str, Any]) -> None:
    out = io.BytesIO()
    APACHE_WRITER.write(record, avro.io.BinaryEncoder(out))
    assert CHAT_LIKE_CODEC.encode(record) == out.getvalue()


def test_long_varints_and_lengths_at_every_boundary() -> None:
    codec = compile_schema(
        {"type": "record", "name": "R", "fields": [{"name": "l", "type": "long"}, {"name": "s", "type": "string"}]}
    )
    edges = [0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**20, 2**35, 2**41, -(2**41), 2**62, 2**63 - 1, -(2**63)]
    for value in edges:
        for length in (0, 63, 64, 4095, 4096, 8192, 70_000):
            record = {"l": value, "s": "x" * length}
            body = codec.encode(record)
            assert body == fastavro_bytes(record, fastavro.parse_schema(codec.parsed)), (value, length)
            assert codec.decode(body) == record
    # the cached 6-byte tails give the same answer the second time round
    record = {"l": 1_767_225_600_123, "s": ""}
    assert codec.decode(codec.encode(record)) == codec.decode(codec.encode(record)) == record


def test_naive_datetimes_and_epoch_ints_are_written_as_fastavro_writes_them() -> None:
    codec = compile_schema(
        {
            "type": "record",
            "name": "T",
            "fields": [{"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
        }
    )
    parsed = fastavro.parse_schema(codec.parsed)
    for value in (
        dt.datetime(2026, 3, 1, 9, 30, 0, 999_999),
        1_767_225_600_123,
        dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
    ):
        assert codec.encode({"ts": value}) == fastavro_bytes({"ts": value}, parsed)


def test_missing_fields_take_defaults_and_nullable_fields_take_null() -> None:
    schema = {
        "type": "record",
        "name": "D",
        "fields": [
            {"name": "a", "type": "string"},
            {"name": "b", "type": "int", "default": 7},
            {"name": "c", "type": ["null", "string"]},
            {"name": "d", "type": {"type": "map", "values": "long"}, "default": {}},
            {"name": "e", "type": "bytes", "default": "\u00ff"},
        ],
    }
    codec = compile_schema(schema)
    assert codec.decode(codec.encode({"a": "x"})) == {"a": "x", "b": 7, "c": None, "d": {}, "e": b"\xff"}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"s": 1, "l": 0, "i": 0, "b": True}, [("s", "expected string, got int")]),
        ({"s": "", "l": 2**63, "i": 0, "b": True}, [("l", f"{2**63} is out of range for an Avro long")]),
        ({"s": "", "l": 0, "i": 2**31, "b": True}, [("i", f"{2**31} is out of range for an Avro int")]),
        ({"s": "", "l": 0, "i": 0, "b": 1}, [("b", "expected boolean, got int")]),
        ({"s": "", "l": 0, "i": 0, "b": True, "zz": 1}, [("zz", "test.codec.Small has no such field")]),
        ({"l": 0, "i": 0, "b": True}, [("s", "missing, and the field has no default")]),
    ],
)
def test_what_the_encoder_refuses_and_why(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    schema = {
        "type": "record",
        "name": "Small",
        "namespace": "test.codec",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "l", "type": "long"},
            {"name": "i", "type": "int"},
            {"name": "b", "type": "boolean"},
        ],
    }
    codec = compile_schema(schema)
    with pytest.raises((TypeError, ValueError, KeyError, AttributeError)):  # AvroSerde: EventValidationError
        codec.encode(record)
    assert problems(record, codec.schema.root) == expected


@pytest.mark.parametrize(
    "body",
    [b"", b"\x02", b"\x04ab\x00\x00", b"\x7f", b"\x01", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"],
)
def test_garbage_raises_instead_of_returning_a_record(body: bytes) -> None:
    codec = compile_schema(
        {"type": "record", "name": "G", "fields": [{"name": "s", "type": "string"}, {"name": "l", "type": "long"}]}
    )
    with pytest.raises((ValueError, IndexError, EOFError, UnicodeDecodeError)):
        codec.decode(body)


def test_an_absurd_block_count_is_refused_before_looping() -> None:
    codec = compile_schema(
        {"type": "record", "name": "A", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]}
    )
    huge = bytearray()
    z = (2**40) << 1
    while z > 0x7F:
        huge.append((z & 0x7F) | 0x80)
        z >>= 7
    huge.append(z)
    with pytest.raises(ValueError, match="larger than"):
        codec.decode(bytes(huge))


def test_names_reach_the_generated_source_only_as_literals() -> None:
    odd = "x'] + __import__('os').getcwd() + r['"
    codec = compile_schema({"type": "record", "name": "Odd", "fields": [{"name": odd, "type": "string"}]})
    assert codec.decode(codec.encode({odd: "ok"})) == {odd: "ok"}
    assert repr(odd) in codec.source


def test_uuid_round_trip_gives_uuid_objects_as_fastavro_does() -> None:
    codec = compile_schema(
        {"type": "record", "name": "U", "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]}
    )
    value = uuid.uuid4()
    assert codec.decode(codec.encode({"id": value})) == {"id": value}
    assert codec.decode(codec.encode({"id": str(value)})) == {"id": value}
