"""What a schema group accepts as a new version: its own format, a schema that parses, and its compatibility mode.

Compatibility is checked for Avro groups only, as Azure does; Json and Custom groups keep their mode
but nothing enforces it.

Bounds: a schema body is at most 1 MB (Azure's quota page, "Size in bytes per schema": 1 MB), and a schema
has at most 1,000 versions (the quota page names no such limit; this bound is the emulator's own, so one
script cannot grow a schema without end). Hostile JSON is refused as InvalidSchema, never a 500: nesting
that exhausts the recursion limit, integers over Python's 4,300-digit conversion limit, and lone UTF-16
surrogates (``"\\ud800"``), which cannot be stored or echoed as UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import fastavro
from fastapi import Request
from fastavro.schema import SchemaParseException, UnknownType

from hubstream.errors import ContractError
from schemas.compatibility import Mode, check_compatibility
from schemas.emulator.errors import (
    IncompatibleSchemaError,
    InvalidRequestError,
    InvalidSchemaError,
    PayloadTooLargeError,
    UnsupportedSchemaTypeError,
)
from schemas.emulator.groups import SchemaFormat, SchemaGroup
from schemas.emulator.store import Admission, SchemaVersion

MAX_BODY_BYTES = 1_000_000
MAX_VERSIONS = 1_000
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) as soon as it is larger than ``limit`` (declared or sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than {limit} bytes, the size limit of a schema.")


def admission(fmt: SchemaFormat, definition: str) -> Admission:
    """The check ``SchemaStore.register`` runs, inside its transaction, before adding a version."""

    def admit(group: SchemaGroup, previous: Sequence[SchemaVersion]) -> None:
        check_format(group, fmt, "PUT")
        if len(previous) >= MAX_VERSIONS:
            raise InvalidRequestError(
                f"Schema {group.name}/{previous[-1].name} already has {len(previous)} versions, the most the "
                "emulator keeps; register the schema under a new name."
            )
        check_parses(fmt, definition)
        check_compatible(group, definition, previous)

    return admit


TOO_DEEP = "Schema validation failed: the schema is nested too deeply."


def parse_json_text(text: str) -> Any:
    """The JSON value of a schema text; InvalidSchemaError for anything that is not JSON the emulator can keep."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidSchemaError(TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, and integers over Python's digit limit
        raise InvalidSchemaError(f"Schema validation failed: the schema is not valid JSON: {exc}") from None
    if "\\u" in text and _has_lone_surrogate(value):
        raise InvalidSchemaError(
            "Schema validation failed: the schema holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), "
            "which is not a character; remove it."
        )
    return value


def _has_lone_surrogate(root: Any) -> bool:
    stack = [root]
    while stack:  # iterative: the value may be nested as deep as the parser allowed
        value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def check_format(group: SchemaGroup, fmt: SchemaFormat, method: str) -> None:
    if fmt is not group.format:
        raise UnsupportedSchemaTypeError(
            f"Invalid schema type for {method} request. '{fmt.value}' does not match the type of "
            f"schema group {group.name}, '{group.format.value}'."
        )


def check_parses(fmt: SchemaFormat, definition: str) -> None:
    if fmt is SchemaFormat.CUSTOM:
        return
    parsed = parse_json_text(definition)
    if fmt is SchemaFormat.AVRO:
        try:
            fastavro.parse_schema(parsed, _write_hint=False)
        except RecursionError:
            raise InvalidSchemaError("Schema validation failed: the Avro schema is nested too deeply.") from None
        except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidSchemaError(f"Schema validation failed: not a valid Avro schema: {exc}") from exc


def check_compatible(group: SchemaGroup, definition: str, previous: Sequence[SchemaVersion]) -> None:
    if not previous or group.format is not SchemaFormat.AVRO or group.compatibility is Mode.NONE:
        return
    mode = group.compatibility
    try:
        findings = check_compatibility(definition, [v.definition for v in previous], mode)
    except RecursionError:
        raise InvalidSchemaError("Schema validation failed: the Avro schema is nested too deeply.") from None
    except ContractError as exc:
        raise InvalidSchemaError(f"Schema validation failed: {exc}") from exc
    if findings:
        latest = previous[-1]
        # transitive findings already say which versions they break against
        against = "" if mode.transitive else f" against version {latest.version}"
        raise IncompatibleSchemaError(
            f"Schema {group.name}/{latest.name} breaks the group's {mode.azure_name} compatibility"
            f"{against}: " + "; ".join(finding.message for finding in findings)
        )
