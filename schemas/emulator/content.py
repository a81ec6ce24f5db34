"""When two schema texts are the same content, for get-id (``POST .../schemas/{name}:get-id``).

Azure answers get-id for a text that differs from the registered one in whitespace and in the order
of JSON object members: the Azure SDK for Python's recordings of its Avro encoder tests
(``test_basic_sr_avro_encoder_with_auto_register_schemas``, api-version 2021-10) register
``{"namespace":"example.avro","type":"record",...}``, then look it up as Python avro's ``str(schema)``,
``{"type": "record", "name": "User", "namespace": "example.avro", ...}``, and get the same id and
version back. Whether Azure goes further (Avro's Parsing Canonical Form drops ``doc`` and ``default``,
for instance) is not known, so the emulator stops here: Avro and Json texts are the same content when
they are the same JSON value, with object members in any order and any whitespace; arrays keep their
order (the order of fields and of union branches matters), and ``true`` is not ``1``, nor ``1`` ``1.0``.
Custom texts compare exactly.

This is what lets Microsoft's Java ``KafkaAvroSerializer`` find a contract registered from its file:
it looks up ``Schema.toString()``, which puts a field's ``doc`` before its ``default`` whatever the file
says.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from schemas.emulator.admission import TOO_DEEP, parse_json_text
from schemas.emulator.errors import InvalidSchemaError
from schemas.emulator.groups import SchemaFormat


def content_key(fmt: SchemaFormat) -> Callable[[str], str]:
    """The key two texts of this format share exactly when they are the same content."""
    return str if fmt is SchemaFormat.CUSTOM else json_value_key


def json_value_key(text: str) -> str:
    """The JSON value of ``text`` written canonically (members sorted, no whitespace).

    InvalidSchemaError (400, like registration) for a text that is not JSON the emulator can keep, so a
    hostile get-id body is refused rather than a 500."""
    value = parse_json_text(text)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:  # parsed, but too deep for the encoder
        raise InvalidSchemaError(TOO_DEEP) from None
