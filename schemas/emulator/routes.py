"""Azure Schema Registry's data-plane paths, resolved from the raw (still percent-encoded) request path.

The SDK sends ``/$schemaGroups`` while the service writes ``/$schemagroups``, so literal segments match
case-insensitively. Names are percent-encoded with no safe characters and ``:get-id`` is appended
after the encoded name (``a b/c`` is sent as ``a%20b%2Fc``), so the path is split on ``/`` first and
each segment decoded after; routing on the already-decoded path would split ``a%2Fb`` in two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from schemas.emulator.errors import InvalidRequestError, MethodNotAllowedError, NotFoundError

_PREFIX = "$schemagroups"
# a GUID, with or without dashes; Azure's ids are the 32-hex form
_SCHEMA_ID = re.compile(r"^[0-9a-f]{32}$|^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", re.IGNORECASE)


class Operation(Enum):
    LIST_GROUPS = "list groups"
    GET_BY_ID = "get schema by id"
    REGISTER = "register schema"
    GET_ID = "get schema properties by content"
    LIST_VERSIONS = "list schema versions"
    GET_VERSION = "get schema version"


@dataclass(frozen=True)
class AzureRoute:
    operation: Operation
    group: str = ""
    name: str = ""
    schema_id: str = ""
    version: int = 0


def resolve(method: str, raw_path: str) -> AzureRoute:
    raw = raw_path.strip("/").split("/")
    if _decode(raw[0]).lower() != _PREFIX or any(not segment for segment in raw):
        raise NotFoundError(f"The requested resource {_decode(raw_path)} does not exist.")
    route, allowed = _match(raw[1:])
    if method.upper() != allowed:
        raise MethodNotAllowedError(f"{method} is not allowed here; {route.operation.value} uses {allowed}.")
    return route


def _match(raw: list[str]) -> tuple[AzureRoute, str]:
    decoded = [_decode(segment) for segment in raw]
    literal = [segment.lower() for segment in decoded]
    if not raw:
        return AzureRoute(Operation.LIST_GROUPS), "GET"
    if len(raw) == 2 and literal[0] == "$schemas":
        return AzureRoute(Operation.GET_BY_ID, schema_id=_schema_id(decoded[1])), "GET"
    if len(raw) >= 3 and literal[1] == "schemas":
        group = decoded[0]
        if len(raw) == 3:
            encoded_name, colon, action = raw[2].rpartition(":")
            if colon and action.lower() == "get-id":
                return AzureRoute(Operation.GET_ID, group=group, name=_decode(encoded_name)), "POST"
            return AzureRoute(Operation.REGISTER, group=group, name=decoded[2]), "PUT"
        if len(raw) == 4 and literal[3] == "versions":
            return AzureRoute(Operation.LIST_VERSIONS, group=group, name=decoded[2]), "GET"
        if len(raw) == 5 and literal[3] == "versions":
            version = _version(decoded[4])
            return AzureRoute(Operation.GET_VERSION, group=group, name=decoded[2], version=version), "GET"
    raise NotFoundError(f"The requested resource /{'/'.join(decoded)} does not exist.")


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"Path segment {segment!r} is not valid percent-encoded UTF-8.") from None


def _schema_id(value: str) -> str:
    if not _SCHEMA_ID.match(value):
        raise InvalidRequestError(f"Invalid schema id '{value}': a schema id is 32 hexadecimal characters.")
    return value.replace("-", "").lower()


def _version(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value) or int(value) < 1:
        raise InvalidRequestError(f"Invalid schema version '{value}': versions are whole numbers from 1.")
    return int(value)
