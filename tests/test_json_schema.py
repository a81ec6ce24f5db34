"""The JSON Schema of natural JSON (schemas/json_schema.py) against the natural-JSON rules themselves.

Every case of tests/test_natural_json.py is put to both: what the API accepts the schema must accept, and what the
API refuses the schema refuses too, apart from the few things JSON Schema cannot say (listed below). The schemas are
checked with jsonschema-rs, the validator schemathesis itself uses (neither jsonschema nor fastjsonschema is a
dependency of the project).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from hubstream.errors import EventValidationError
from schemas.contracts import load_contracts
from schemas.json_schema import DEFS, event_schema, example_event
from schemas.natural import NaturalJson
from tests.test_natural_json import (
    ACCEPTED,
    DATE,
    DEC,
    DEFAULTS,
    GOOD_ORDER,
    LINKED,
    ORDER,
    RECORD_CASES,
    REJECTED,
    TIME_MS,
    TS_MS,
    TS_US,
    UNIONS,
    UUID,
    E,
    one_field,
)

CONTRACTS = load_contracts(Path(schemas.__file__).parent / "avro")

# refused by the API, taken by the schema: what JSON Schema cannot express (see the module docstring there)
LOOSER = {
    "int-gets-float",  # 1.0 is an integer to JSON Schema
    "date-float",
    "string-lone-surrogate",
    "ts-before-year-1",  # a valid date-time whose UTC conversion leaves year 1
    "date-invalid-day",  # 2024-02-30 matches the pattern
    "decimal-scale",  # digits of a decimal
    "decimal-scale-rounds-up",
    "decimal-float-scale",
    "decimal-too-many-digits",
    "decimal-int-too-many-digits",
    "decimal-fixed-digits",
    "string-bytes-ambiguous",  # a plain value that fits branches of different kinds needs the wrapper
    "string-enum-ambiguous",
    "records-ambiguous",
    "timestamp-or-string",
}


def validator(schema: Any) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(event_schema(schema).standalone())


def api_accepts(schema: Any, value: Any) -> bool:
    try:
        NaturalJson(schema).from_json(value)
    except EventValidationError:
        return False
    return True


CASES = [
    *((f"value-{c[0]}", one_field(c[1]), {"v": c[2]}) for c in ACCEPTED + REJECTED),
    *((f"union-{c[0]}", one_field(c[1]), {"v": c[2]}) for c in UNIONS),
    *((f"record-{c[0]}", ORDER, c[1]) for c in RECORD_CASES),
    ("record-good", ORDER, GOOD_ORDER),
]


@pytest.mark.parametrize(("case", "schema", "value"), CASES, ids=[c[0] for c in CASES])
def test_the_schema_takes_what_the_api_takes_and_refuses_what_it_refuses(case: str, schema: Any, value: Any) -> None:
    case = case.partition("-")[2]
    accepted = api_accepts(schema, value)
    valid = validator(schema).is_valid(value)
    if accepted:
        assert valid, "the schema refuses what the API takes"
    elif case in LOOSER:
        assert valid, f"{case} is listed as a looseness of the schema, but the schema refuses it now"
    else:
        assert not valid, "the schema takes what the API refuses"


@pytest.mark.parametrize(("field", "datum"), [c[1:] for c in DEFAULTS], ids=[c[0] for c in DEFAULTS])
def test_defaults_are_written_in_natural_json_and_fit_the_field(field: dict[str, Any], datum: Any) -> None:
    field = dict(field)
    schema = one_field(field.pop("type"), **field)
    prop = event_schema(schema).definitions["test.T"]["properties"]["v"]
    assert NaturalJson(schema).from_json({"v": prop["default"]}) == {"v": datum}
    assert validator(schema).is_valid({"v": prop["default"]})
    assert "required" not in event_schema(schema).definitions["test.T"]


def test_records_are_definitions_so_recursion_is_a_reference() -> None:
    event = event_schema(LINKED)
    assert event.ref == {"$ref": DEFS + "Node"}
    branches = event.definitions["Node"]["properties"]["next"]["anyOf"]
    assert {"$ref": DEFS + "Node"} in branches
    chain = {"value": 1, "next": {"value": 2, "next": {"Node": {"value": 3}}}}
    assert validator(LINKED).is_valid(chain) and api_accepts(LINKED, chain)
    assert example_event(LINKED) == {"value": 1, "next": None}


def test_another_prefix_points_into_an_openapi_document() -> None:
    event = event_schema(ORDER, ref_prefix="#/components/schemas/")
    assert event.ref == {"$ref": "#/components/schemas/shop.Order"}
    assert event.definitions["shop.Order"]["properties"]["customer"] == {"$ref": "#/components/schemas/shop.Customer"}
    with pytest.raises(ValueError, match="standalone"):
        event.standalone()
    document = {**event.ref, "components": {"schemas": event.definitions}}
    assert jsonschema_rs.validator_for(document).is_valid(GOOD_ORDER)


def test_docs_titles_required_fields_and_closed_records() -> None:
    chat = event_schema(CONTRACTS["hubstream.chat.ChatResponse"].schema).definitions["hubstream.chat.ChatResponse"]
    assert chat["description"] == "One chunk of an LLM agent's streamed response to a user."
    assert chat["properties"]["eventId"]["description"] == "Unique id of this event; consumers dedupe on it."
    assert chat["required"] == ["eventId", "conversationId", "userId", "sequence", "content", "createdAt"]
    assert chat["properties"]["final"]["default"] is False
    assert chat["properties"]["metadata"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
    }
    assert chat["additionalProperties"] is False
    enum = event_schema(one_field(E)).definitions["test.T"]["properties"]["v"]
    assert enum == {"type": "string", "title": "test.E", "enum": ["A", "B"]}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_each_contract_example_fits_its_schema_and_the_api(contract: str) -> None:
    schema = CONTRACTS[contract].schema
    example = example_event(schema)
    assert validator(schema).is_valid(example)
    assert api_accepts(schema, example)
    assert example == example_event(schema)  # the same on every call, so documents do not change


EVERY_TYPE = {
    "type": "record",
    "name": "Everything",
    "namespace": "test",
    "fields": [
        {"name": name, "type": kind}
        for name, kind in [
            ("n", "null"),
            ("b", "boolean"),
            ("i", "int"),
            ("l", "long"),
            ("f", "float"),
            ("d", "double"),
            ("s", "string"),
            ("raw", "bytes"),
            ("fx", {"type": "fixed", "name": "Four", "size": 4}),
            ("e", E),
            ("ts", TS_MS),
            ("tsu", TS_US),
            ("local", {"type": "long", "logicalType": "local-timestamp-millis"}),
            ("day", DATE),
            ("clock", TIME_MS),
            ("id", UUID),
            ("money", DEC),
            ("fixed_money", {"type": "fixed", "name": "M", "size": 8, "logicalType": "decimal", "precision": 9}),
            ("maybe", ["null", "string"]),
            ("choice", ["string", "bytes", "E"]),
            ("nested", {"type": "array", "items": {"type": "map", "values": ["null", "Four"]}}),
        ]
    ],
}


def test_an_example_of_every_type_fits_its_schema_and_the_api() -> None:
    example = example_event(EVERY_TYPE)
    assert validator(EVERY_TYPE).is_valid(example)
    assert api_accepts(EVERY_TYPE, example)
    assert example["choice"] == {"string": "choice-1"}  # plain, "choice-1" would be ambiguous: it is base64 too
    assert example["maybe"] == "maybe-1" and example["ts"] == "2026-01-01T12:00:00.000Z"


BASE64_TEXT = st.text(alphabet="AB+/-_=", max_size=11)


def _decodes(text: str, size: int | None) -> bool:
    return api_accepts(one_field({"type": "fixed", "name": "F", "size": size} if size else "bytes"), {"v": text})


@settings(max_examples=400, deadline=None)
@given(BASE64_TEXT, st.sampled_from([None, 1, 2, 3, 4, 5]))
def test_base64_patterns_are_exactly_what_the_api_decodes(text: str, size: int | None) -> None:
    schema = one_field({"type": "fixed", "name": "F", "size": size} if size else "bytes")
    assert validator(schema).is_valid({"v": text}) == _decodes(text, size)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**64), 2**64), st.sampled_from([TS_MS, TS_US, DATE, TIME_MS, "int", "long"]))
def test_integer_ranges_are_exactly_what_the_api_takes(number: int, kind: Any) -> None:
    schema = one_field(kind)
    assert validator(schema).is_valid({"v": number}) == api_accepts(schema, {"v": number})


# the shape of the API's date-time rule, with digits anywhere: most are no date at all, some are
DATE_TIME_LIKE = re.compile(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,7})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?\Z"
)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(DATE_TIME_LIKE))
def test_date_time_strings_the_api_takes_fit_the_pattern(text: str) -> None:
    schema = one_field(TS_MS)
    if api_accepts(schema, {"v": text}):
        assert validator(schema).is_valid({"v": text})
