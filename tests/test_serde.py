"""AvroSerde against the real registry emulator and Microsoft's AvroEncoder: wire format, interop, errors.

"As Microsoft's Java/.NET serializers write it" = raw Avro body + a lower-case ``content-type`` header
whose value is the bytes ``avro/binary+<id>``; "as kcat would" = the same, with the header value a str.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from azure.schemaregistry.encoder.avroencoder import AvroEncoder, InvalidContentError

from hubstream.errors import EventValidationError, SerdeError, UndecodableRecordError, UnknownSchemaIdError
from hubstream.settings import PACKAGE_SCHEMAS_DIR
from schemas.contracts import Contract, load_contracts
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde, DecodedValue, EncodedValue
from tests.fixtures.registry import RegistryEmulator

UTC = dt.UTC
CONTRACTS = load_contracts(PACKAGE_SCHEMAS_DIR / "avro")
CHAT = CONTRACTS["hubstream.chat.ChatResponse"]
MINUTES = CONTRACTS["hubstream.meetings.MinutesFinalized"]


def chat(i: int = 1, **changes: Any) -> dict[str, Any]:
    record = {
        "eventId": f"evt-{i}",
        "conversationId": "conv-1",
        "userId": "user-1",
        "sequence": i,
        "content": "Bonjour, ça va? 你好 👋",
        "final": False,
        "createdAt": dt.datetime(2026, 3, 1, 9, 30, 15, 123_000, tzinfo=UTC),
        "metadata": {"model": "gpt-4o", "région": "westeurope"},
    }
    record.update(changes)
    return record


def as_read(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it decodes: timestamp-millis keeps whole milliseconds (rounded down), in UTC."""
    epoch, ms = dt.datetime(1970, 1, 1, tzinfo=UTC), dt.timedelta(milliseconds=1)
    if isinstance(record.get("createdAt"), dt.datetime):
        return {**record, "createdAt": epoch + (record["createdAt"] - epoch) // ms * ms}
    return record


def minutes(**changes: Any) -> dict[str, Any]:
    record = {
        "eventType": "MINUTES_FINALIZED",
        "eventId": "evt-m-1",
        "meetingId": "m-1",
        "title": "Weekly sync",
        "minutesId": "min-1",
        "sections": [
            {
                "sectionId": "s1",
                "type": "DISCUSSION",
                "title": "Roadmap",
                "content": "x" * 300,
                "order": 1,
                "verified": True,
            },
            {
                "sectionId": "s2",
                "type": "ACTION_ITEM",
                "title": "Follow up",
                "content": "",
                "order": 2,
                "verified": False,
            },
        ],
        "participants": ["user-1", "user-2"],
    }
    record.update(changes)
    return record


def chat_records() -> list[dict[str, Any]]:
    return [
        chat(),
        chat(2, metadata={}, final=True),
        chat(3, content="", sequence=0),
        chat(4, content="long " * 5_000, sequence=2**40),
        chat(5, sequence=-7, createdAt=dt.datetime(1969, 7, 20, 20, 17, 40, 999_999, tzinfo=UTC)),
        chat(6, createdAt=dt.datetime(2026, 3, 1, 11, 0, 0, 500, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
        chat(7, metadata={f"k{i}": "v" * i for i in range(70)}),
    ]


def minutes_records() -> list[dict[str, Any]]:
    return [minutes(), minutes(sections=[]), minutes(sections=[minutes()["sections"][0]] * 80)]


@pytest.fixture
def registry(registry_emulator: RegistryEmulator, registry_group: str) -> Iterator[SchemaRegistry]:
    with SchemaRegistry(registry_emulator.client(), registry_group) as registry:
        yield registry


@pytest.fixture
def serde(registry: SchemaRegistry) -> AvroSerde:
    registry.register(CHAT)
    registry.register(MINUTES)
    return AvroSerde(registry)


@pytest.fixture
def encoder(registry_emulator: RegistryEmulator, registry: SchemaRegistry) -> Iterator[AvroEncoder]:
    with AvroEncoder(client=registry_emulator.client(), group_name=registry.group) as encoder:
        yield encoder


def content_type(schema_id: str) -> bytes:
    return f"avro/binary+{schema_id}".encode()


# ---- the wire format --------------------------------------------------------------------------------


def test_value_is_the_raw_avro_body_and_the_schema_id_travels_in_a_content_type_header(
    serde: AvroSerde, registry: SchemaRegistry
) -> None:
    encoded = serde.encode(chat(), CHAT)

    schema_id = registry.schema_id(CHAT)
    assert isinstance(encoded, EncodedValue)
    assert encoded.schema_id == schema_id
    assert encoded.headers == [("content-type", content_type(schema_id))]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(CHAT.schema), chat())
    assert encoded.value == body.getvalue()  # no magic byte, no id prefix
    assert serde.decode(encoded.value, encoded.headers) == DecodedValue(
        chat(), schema_id, CHAT.name, "header", encoded.value
    )


@pytest.mark.parametrize(("contract", "records"), [(CHAT, chat_records()), (MINUTES, minutes_records())])
def test_bytes_equal_avroencoders_and_each_decodes_the_other(
    serde: AvroSerde, encoder: AvroEncoder, contract: Contract, records: list[dict[str, Any]]
) -> None:
    for record in records:
        theirs = encoder.encode(record, schema=contract.text)
        ours = serde.encode(record, contract)

        assert ours.value == theirs["content"]
        assert ours.headers == [("content-type", theirs["content_type"].encode())]
        assert encoder.decode({"content": ours.value, "content_type": ours.headers[0][1].decode()}) == as_read(record)
        decoded = serde.decode(theirs["content"], [("content-type", theirs["content_type"].encode())])
        assert decoded.record == as_read(record)
        assert decoded.writer_schema_name == contract.name


def test_defaults_fill_fields_the_record_leaves_out(serde: AvroSerde, encoder: AvroEncoder) -> None:
    partial = {k: v for k, v in chat().items() if k not in ("final", "metadata")}
    full = chat(final=False, metadata={})
    assert serde.encode(partial, CHAT).value == encoder.encode(full, schema=CHAT.text)["content"]


def test_decodes_records_as_java_and_dotnet_write_them_and_as_kcat_would(
    serde: AvroSerde, registry: SchemaRegistry
) -> None:
    schema_id = registry.schema_id(CHAT)
    body = serde.encode(chat(), CHAT).value
    as_java = [("content-type", content_type(schema_id))]
    as_kcat = [("content-type", f"avro/binary+{schema_id}")]
    with_others = [("traceparent", b"00-abc-01"), ("content-type", content_type(schema_id)), ("x-empty", None)]
    for headers in (as_java, as_kcat, with_others, tuple(as_java), dict(as_kcat)):
        assert serde.decode(body, headers).record == chat()


def test_the_mime_type_is_matched_case_insensitively_as_java_does(
    serde: AvroSerde, registry: SchemaRegistry, encoder: AvroEncoder
) -> None:
    schema_id = registry.schema_id(CHAT)
    body = serde.encode(chat(), CHAT).value
    for mime in ("AVRO/BINARY", "Avro/Binary"):
        assert serde.decode(body, [("content-type", f"{mime}+{schema_id}".encode())]).record == chat()
    with pytest.raises(InvalidContentError):  # where we are more lenient than AvroEncoder
        encoder.decode({"content": body, "content_type": f"AVRO/BINARY+{schema_id}"})


def test_the_last_content_type_header_wins_so_a_java_key_serializers_header_is_ignored(
    serde: AvroSerde, registry: SchemaRegistry
) -> None:
    key_contract = Contract.from_text(
        '{"type":"record","name":"ConversationKey","namespace":"hubstream.test",'
        '"fields":[{"name":"conversationId","type":"string"}]}'
    )
    key_id = registry.register(key_contract)
    value_id = registry.schema_id(CHAT)
    body = serde.encode(chat(), CHAT).value

    # KafkaProducer serializes the key first: the key's header, then the value's
    decoded = serde.decode(body, [("content-type", content_type(key_id)), ("content-type", content_type(value_id))])
    assert decoded.record == chat()
    assert decoded.schema_id == value_id

    # had the key's come last, the value would be read with the key's schema, and that fails loudly
    with pytest.raises(UndecodableRecordError, match=r"hubstream\.test\.ConversationKey"):
        serde.decode(body, [("content-type", content_type(value_id)), ("content-type", content_type(key_id))])


# ---- the legacy format ------------------------------------------------------------------------------


def legacy(schema_id: str, body: bytes) -> bytes:
    return b"\x00\x00\x00\x00" + schema_id.encode("ascii") + body


def test_decodes_the_legacy_format_when_there_is_no_content_type_header(
    serde: AvroSerde, registry: SchemaRegistry
) -> None:
    schema_id = registry.schema_id(MINUTES)
    body = serde.encode(minutes(), MINUTES).value
    value = legacy(schema_id, body)
    for headers in (None, [], [("traceparent", b"00-abc-01")]):
        decoded = serde.decode(value, headers)
        assert decoded == DecodedValue(minutes(), schema_id, MINUTES.name, "legacy", body)


def test_the_header_is_preferred_when_the_body_also_looks_like_the_legacy_format(
    serde: AvroSerde, registry: SchemaRegistry
) -> None:
    # empty strings and a zero long encode as 0x00 bytes; a 50-character content's length byte is "d"
    record = chat(eventId="", conversationId="", userId="", sequence=0, content="Q" * 50)
    encoded = serde.encode(record, CHAT)
    assert encoded.value[:4] == b"\x00\x00\x00\x00" and encoded.value[4:36].isalnum()

    assert serde.decode(encoded.value, encoded.headers).record == record
    with pytest.raises(UnknownSchemaIdError):  # without the header it would be read as legacy, id "dQQQ..."
        serde.decode(encoded.value, None)


# ---- reader schemas: evolution ----------------------------------------------------------------------

CHAT_V2 = Contract.from_text(
    json.dumps(
        {
            **CHAT.schema,
            "fields": [
                *CHAT.schema["fields"],
                {"name": "language", "type": "string", "default": "en"},
                {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
                {
                    "name": "editedAt",
                    "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
                    "default": None,
                },
                {"name": "expiresAt", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 0},
            ],
        }
    )
)


def chat_v2(**changes: Any) -> dict[str, Any]:
    return chat(
        language="fr",
        tags=["greeting"],
        editedAt=dt.datetime(2026, 3, 2, tzinfo=UTC),
        expiresAt=dt.datetime(2026, 4, 1, tzinfo=UTC),
        **changes,
    )


def test_v1_records_read_with_the_v2_reader_get_the_defaults(serde: AvroSerde, registry: SchemaRegistry) -> None:
    registry.register(CHAT_V2)
    written = serde.encode(chat(), CHAT)

    first = serde.decode(written.value, written.headers, reader=CHAT_V2)
    assert first.schema_id == registry.schema_id(CHAT)
    assert first.writer_schema_name == CHAT.name
    assert first.record == {
        **chat(),
        "language": "en",
        "tags": [],
        "editedAt": None,
        "expiresAt": dt.datetime(1970, 1, 1, tzinfo=UTC),  # a logical-type default is decoded like a value
    }
    first.record["tags"].append("mutated")
    second = serde.decode(written.value, written.headers, reader=CHAT_V2)
    assert second.record["tags"] == []  # every record gets its own default list
    assert serde.decode(written.value, written.headers, reader=copy.deepcopy(CHAT_V2.schema)).record == second.record


def test_v2_records_read_with_the_v1_reader_drop_the_new_fields(serde: AvroSerde, registry: SchemaRegistry) -> None:
    registry.register(CHAT_V2)
    written = serde.encode(chat_v2(), CHAT_V2)

    assert serde.decode(written.value, written.headers, reader=CHAT).record == chat()
    assert serde.decode(written.value, written.headers).record == chat_v2()  # no reader: the writer's shape
    assert serde.decode(written.value, written.headers, reader=CHAT_V2).record == chat_v2()


def test_a_reader_of_another_record_type_cannot_read_it(serde: AvroSerde) -> None:
    written = serde.encode(chat(), CHAT)
    with pytest.raises(UndecodableRecordError, match=r"read as hubstream\.meetings\.MinutesFinalized") as caught:
        serde.decode(written.value, written.headers, reader=MINUTES)
    assert caught.value.value == written.value


# ---- errors carry what a dead-letter queue needs ----------------------------------------------------


def test_an_unknown_schema_id_raises_unknown_schema_id_error_with_the_raw_record(serde: AvroSerde) -> None:
    body = serde.encode(chat(), CHAT).value
    for unknown in (uuid.uuid4().hex, "not-a-schema-id"):
        headers = [("content-type", content_type(unknown))]
        with pytest.raises(UnknownSchemaIdError) as caught:
            serde.decode(body, headers)
        assert (caught.value.schema_id, caught.value.value, caught.value.headers) == (unknown, body, headers)


@pytest.mark.parametrize(
    ("value", "headers", "says"),
    [
        (b"\xff\xff\xff\xff", "ok", "does not decode as hubstream.chat.ChatResponse"),
        ("trailing", "ok", "left over"),
        ("truncated", "ok", "does not decode"),
        (
            b"\x02a",
            [("content-type", b"application/json")],
            "expected the header content-type: avro/binary+<schema id>",
        ),
        (b"\x02a", [("content-type", b"avro/binary")], "not an Azure Schema Registry Avro content type"),
        (b"\x02a", [("content-type", b"avro/binary+")], "not an Azure Schema Registry Avro content type"),
        (b"\x02a", [("content-type", b"avro/binary+a+b")], "not an Azure Schema Registry Avro content type"),
        (b"\x02a", [("content-type", "avro/binary+\u00e9".encode())], "not ASCII"),
        (b"\x02a", [("content-type", None)], "has no value"),
        (b"\x02a", None, "no content-type header"),
        (b"\x02a", [("Content-Type", b"avro/binary+x")], "header keys are case-sensitive"),
        (None, "ok", "tombstone"),
    ],
)
def test_bad_records_raise_undecodable_record_error_carrying_the_raw_record(
    serde: AvroSerde, registry: SchemaRegistry, value: Any, headers: Any, says: str
) -> None:
    good = serde.encode(chat(), CHAT)
    if headers == "ok":
        headers = [("content-type", content_type(registry.schema_id(CHAT)))]
    value = {"trailing": good.value + b"\x00", "truncated": good.value[:-5]}.get(value, value)

    with pytest.raises(UndecodableRecordError, match=says.replace("+", r"\+").replace("(", r"\(")) as caught:
        serde.decode(value, headers)
    assert caught.value.value is value
    assert caught.value.headers is headers


def test_records_that_do_not_fit_the_contract_raise_event_validation_error_with_paths(serde: AvroSerde) -> None:
    with pytest.raises(EventValidationError) as caught:
        serde.encode(chat(createdAt="yesterday", sequence="7", extra=1), CHAT)
    assert caught.value.schema_name == CHAT.name
    problems = dict(caught.value.problems)
    assert problems["createdAt"].startswith("expected long")
    assert problems["sequence"] == "expected long, got str"
    assert problems["extra"] == "hubstream.chat.ChatResponse has no such field"

    record = minutes()
    record["sections"][1]["order"] = 2**31
    with pytest.raises(EventValidationError) as caught:
        serde.encode(record, MINUTES)
    assert caught.value.problems == [("sections[1].order", f"{2**31} is out of range for an Avro int")]
    assert isinstance(caught.value, SerdeError)


def test_concurrent_use_from_threads(serde: AvroSerde) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def round_trip(i: int) -> bool:
        encoded = serde.encode(chat(i), CHAT)
        return serde.decode(encoded.value, encoded.headers, reader=CHAT_V2).record["language"] == "en"

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(round_trip, range(400)))


def test_decodes_offline_only_for_schema_ids_it_has_seen(serde: AvroSerde, registry: SchemaRegistry) -> None:
    encoded = serde.encode(chat(), CHAT)  # encoding teaches the serde its own schema id
    assert serde.decodes_offline(encoded.headers) is True
    assert serde.decodes_offline([("content-type", b"avro/binary+" + b"f" * 32)]) is False
    assert serde.decodes_offline([]) is False  # the legacy format: a lookup may be needed
    assert serde.decodes_offline(None) is False
    fresh = AvroSerde(registry)
    assert fresh.decodes_offline(encoded.headers) is False
    fresh.decode(encoded.value, encoded.headers)
    assert fresh.decodes_offline(encoded.headers) is True
