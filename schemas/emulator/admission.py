"""What a schema group accepts as a new version: its own format, a schema that parses, and its compatibility mode.

Compatibility is checked for Avro groups only, as Azure does; Json and Custom groups keep their mode
but nothing enforces it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from hubstream.errors import ContractError
from schemas.compatibility import Mode, check_compatibility
from schemas.emulator.errors import IncompatibleSchemaError, InvalidSchemaError, UnsupportedSchemaTypeError
from schemas.emulator.groups import SchemaFormat, SchemaGroup
from schemas.emulator.store import Admission, SchemaVersion


def admission(fmt: SchemaFormat, definition: str) -> Admission:
    """The check ``SchemaStore.register`` runs, inside its transaction, before adding a version."""

    def admit(group: SchemaGroup, previous: Sequence[SchemaVersion]) -> None:
        check_format(group, fmt, "PUT")
        check_parses(fmt, definition)
        check_compatible(group, definition, previous)

    return admit


def check_format(group: SchemaGroup, fmt: SchemaFormat, method: str) -> None:
    if fmt is not group.format:
        raise UnsupportedSchemaTypeError(
            f"Invalid schema type for {method} request. '{fmt.value}' does not match the type of "
            f"schema group {group.name}, '{group.format.value}'."
        )


def check_parses(fmt: SchemaFormat, definition: str) -> None:
    if fmt is SchemaFormat.CUSTOM:
        return
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        raise InvalidSchemaError(f"Schema validation failed: the schema is not valid JSON: {exc}") from exc
    if fmt is SchemaFormat.AVRO:
        try:
            fastavro.parse_schema(parsed, _write_hint=False)
        except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidSchemaError(f"Schema validation failed: not a valid Avro schema: {exc}") from exc


def check_compatible(group: SchemaGroup, definition: str, previous: Sequence[SchemaVersion]) -> None:
    if not previous or group.format is not SchemaFormat.AVRO or group.compatibility is Mode.NONE:
        return
    mode = group.compatibility
    try:
        findings = check_compatibility(definition, [v.definition for v in previous], mode)
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
