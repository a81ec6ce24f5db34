"""How Azure's Kafka Avro serializers frame a record value: the content-type header, or the legacy prefix.

Current format (Microsoft's ``KafkaAvroSerializer`` for Java and .NET, and the bytes of
azure-schemaregistry-avroencoder's ``AvroEncoder``): the value is the raw Avro body, and the record
carries the Kafka header ``content-type`` whose value is the ASCII text ``avro/binary+<schema id>``.
Readers split it on ``+`` into exactly two parts; Java compares the MIME type case-insensitively.

Legacy format (the Java serializer until August 2022): no header; the value is 4 zero bytes, the 32
ASCII characters of the schema id, then the Avro body. A reader should look for it only when the
header is absent, since a genuine Avro body may start with four zero bytes.
"""

from __future__ import annotations

CONTENT_TYPE = "content-type"
AVRO_MIME_TYPE = "avro/binary"
LEGACY_PREAMBLE = b"\x00\x00\x00\x00"
LEGACY_ID_SIZE = 32
LEGACY_HEADER_SIZE = len(LEGACY_PREAMBLE) + LEGACY_ID_SIZE


def content_type(schema_id: str) -> bytes:
    """The ``content-type`` header value for a body written with ``schema_id``."""
    return f"{AVRO_MIME_TYPE}+{schema_id}".encode("ascii")


def schema_id_of_content_type(text: str) -> str | None:
    """The schema id in a ``content-type`` value, or None when it is not ``avro/binary+<id>``."""
    parts = text.split("+")
    if len(parts) != 2 or parts[0].lower() != AVRO_MIME_TYPE or not parts[1]:
        return None
    return parts[1]


def legacy_schema_id(value: bytes) -> str | None:
    """The schema id of a value in the legacy format, or None when the value does not start that way."""
    id_bytes = value[len(LEGACY_PREAMBLE) : LEGACY_HEADER_SIZE]
    if (
        value[: len(LEGACY_PREAMBLE)] == LEGACY_PREAMBLE
        and len(id_bytes) == LEGACY_ID_SIZE
        and id_bytes.isascii()
        and id_bytes.isalnum()
    ):
        return id_bytes.decode("ascii")
    return None


def legacy_body(value: bytes) -> bytes:
    """The Avro body of a value in the legacy format."""
    return value[LEGACY_HEADER_SIZE:]
