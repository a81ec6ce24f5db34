"""Azure's Kafka framing of an Avro value: the content-type header and the legacy id prefix."""

from __future__ import annotations

import pytest

from schemas import wire

SCHEMA_ID = "0123456789abcdef0123456789abcdef"


def test_the_header_value_is_the_mime_type_plus_the_schema_id() -> None:
    assert wire.CONTENT_TYPE == "content-type"
    assert wire.content_type(SCHEMA_ID) == f"avro/binary+{SCHEMA_ID}".encode("ascii")
    assert wire.schema_id_of_content_type(wire.content_type(SCHEMA_ID).decode()) == SCHEMA_ID


@pytest.mark.parametrize(
    ("text", "schema_id"),
    [
        ("avro/binary+abc", "abc"),
        ("AVRO/BINARY+abc", "abc"),  # Java compares the MIME type case-insensitively
        ("avro/binary+", None),
        ("avro/binary", None),
        ("avro/binary+a+b", None),
        ("application/json+abc", None),
        ("", None),
    ],
)
def test_content_type_values(text: str, schema_id: str | None) -> None:
    assert wire.schema_id_of_content_type(text) == schema_id


def test_the_legacy_prefix_is_four_zero_bytes_and_a_32_character_id() -> None:
    value = b"\x00\x00\x00\x00" + SCHEMA_ID.encode() + b"\x02body"
    assert wire.LEGACY_HEADER_SIZE == 36
    assert wire.legacy_schema_id(value) == SCHEMA_ID
    assert wire.legacy_body(value) == b"\x02body"


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\x00\x00\x00" + b"a" * 31,  # id too short
        b"\x00\x00\x00\x01" + b"a" * 32,  # not the preamble
        b"\x00\x00\x00\x00" + b"a" * 31 + b"-",  # not alphanumeric
        b"\x00\x00\x00\x00" + "é".encode() * 16,  # not ASCII
    ],
)
def test_values_not_in_the_legacy_format(value: bytes) -> None:
    assert wire.legacy_schema_id(value) is None
