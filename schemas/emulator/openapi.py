"""An OpenAPI document of the emulator, for fuzzing it (``make fuzz``) and for reading.

The emulator serves none: like Azure, it answers only the Schema Registry's own paths, and those go through one
catch-all route (``azure_api.py``), so FastAPI cannot describe them. This document is written by hand from the six
operations there and the admin API (``admin_api.py``, whose bodies are its pydantic models). Its paths are
checked against the emulator's router in the tests, so a path that does not route fails there.

Names are path parameters, which the clients percent-encode; ``api-version`` is required and any value is taken.
Links let a stateful run create a group, register a schema in it, then read the schema back by id and version.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.emulator.admin_api import PREFIX, GroupList, GroupSpec, GroupView
from schemas.emulator.azure_api import CONTENT_TYPES
from schemas.emulator.groups import GROUP_NAME, SchemaFormat
from schemas.model import PRIMITIVES

COMPONENTS = "#/components/schemas/"
EXAMPLE_GROUP = "hubstream"
EXAMPLE_SCHEMA = "hubstream.fuzz.Event"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
# a record of primitive fields: what a fuzzer can vary and the emulator parse, check and store
_AVRO_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,30}$"}
_AVRO_NAMESPACE = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,20}(?:\.[A-Za-z_][A-Za-z0-9_]{0,20}){0,3}$"}
_AVRO_RECORD = {
    "type": "object",
    "required": ["type", "name", "fields"],
    "properties": {
        "type": {"const": "record"},
        "name": _AVRO_NAME,
        "namespace": _AVRO_NAMESPACE,
        "fields": {
            "type": "array",
            "maxItems": 20,
            "items": {
                "type": "object",
                "required": ["name", "type"],
                "properties": {"name": _AVRO_NAME, "type": {"enum": sorted(PRIMITIVES)}, "default": {}},
            },
        },
    },
}
_EXAMPLE_RECORD = {
    "type": "record",
    "name": "Event",
    "namespace": "hubstream.fuzz",
    "fields": [{"name": "id", "type": "string"}, {"name": "count", "type": "long", "default": 0}],
}
_GROUP = {"type": "string", "pattern": GROUP_NAME.pattern}
# the name rule of azure_api.py without its lookahead: printable ASCII but the characters \ / $ :
_SCHEMA_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][!-#%-.0-9;-\[\]-~]{0,99}$"}
_SCHEMA_HEADERS = {
    name: {"schema": {"type": "integer" if name == "Schema-Version" else "string"}}
    for name in ("Schema-Id", "Schema-Group-Name", "Schema-Name", "Schema-Version", "Location", "Schema-Id-Location")
}


def openapi_document() -> dict[str, Any]:
    """The emulator's OpenAPI 3.1 document; the server URL is the fuzzer's (or reader's) to supply."""
    admin_models, definitions = models_json_schema(
        [(GroupSpec, "validation"), (GroupView, "serialization"), (GroupList, "serialization")],
        ref_template=COMPONENTS + "{model}",
    )
    schemas = {**definitions.get("$defs", {}), "Error": _ERROR, "AvroRecord": _AVRO_RECORD}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hubstream Schema Registry emulator",
            "version": "2022-10",
            "description": "Azure Schema Registry's data plane (api-version 2022-10), and the emulator's admin API.",
        },
        "paths": {**_azure_paths(), **_admin_paths({key[0].__name__: v for key, v in admin_models.items()})},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "--auth-token"}},
        },
        "security": [{"bearer": []}],
    }


def _azure_paths() -> dict[str, Any]:
    groups = "/$schemaGroups"
    schema = groups + "/{groupName}/schemas/{schemaName}"
    names = [_path_param("groupName", EXAMPLE_GROUP, _GROUP), _path_param("schemaName", EXAMPLE_SCHEMA, _SCHEMA_NAME)]
    version = _path_param("schemaVersion", 1, {"type": "integer", "minimum": 1, "maximum": 999_999_999})
    schema_id = _path_param("id", "0" * 32, {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"})
    return {
        groups: {"get": _operation("listGroups", "List schema groups", _names_list("string"), 400)},
        groups + "/$schemas/{id}": {
            "get": _operation("getSchemaById", "A schema's text by id", _schema_text(), 400, 404, params=[schema_id])
        },
        schema: {
            "put": _operation(
                "registerSchema",
                "Register a schema version (the same text as the latest gives the latest)",
                _properties("registered", links=True),
                400,
                404,
                413,
                415,
                params=names,
                body=_schema_body(),
            )
        },
        schema + ":get-id": {
            "post": _operation(
                "getSchemaProperties",
                "The id of the newest version with the same content",
                _properties("found"),
                400,
                404,
                413,
                415,
                params=names,
                body=_schema_body(),
            )
        },
        schema + "/versions": {
            "get": _operation("listSchemaVersions", "Version numbers", _names_list("integer"), 400, 404, params=names)
        },
        schema + "/versions/{schemaVersion}": {
            "get": _operation(
                "getSchemaVersion", "A schema version's text", _schema_text(), 400, 404, params=[*names, version]
            )
        },
    }


def _admin_paths(models: dict[str, Any]) -> dict[str, Any]:
    group = _path_param("name", EXAMPLE_GROUP, _GROUP)
    view = {
        "description": "the group",
        "content": {"application/json": {"schema": models["GroupView"]}},
        "links": {
            "RegisterSchema": {"operationId": "registerSchema", "parameters": {"groupName": "$response.body#/name"}}
        },
    }
    spec = {"required": True, "content": {"application/json": {"schema": models["GroupSpec"]}}}
    health = {"description": "up", "content": {"application/json": {"schema": {"type": "object"}}}}
    listing = {"description": "every group", "content": {"application/json": {"schema": models["GroupList"]}}}
    return {
        f"{PREFIX}/health": {"get": {"operationId": "health", "security": [], "responses": {"200": health}}},
        f"{PREFIX}/groups": {"get": {"operationId": "listGroupViews", "responses": {"200": listing, **_errors(401)}}},
        f"{PREFIX}/groups/{{name}}": {
            "get": {"operationId": "getGroup", "parameters": [group], "responses": {"200": view, **_errors(401, 404)}},
            "put": {
                "operationId": "putGroup",
                "summary": "Create a group, or change its mode (and its format while it holds no schemas)",
                "parameters": [group],
                "requestBody": spec,
                "responses": {"200": view, **_errors(400, 401, 409)},
            },
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    api_version = {
        "name": "api-version",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
        "example": "2022-10",
    }
    status = "204" if ok.get("headers") and "content" not in ok else "200"
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [*(params or []), api_version],
        "responses": {status: ok, **_errors(*errors, 401)},
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


def _path_param(name: str, example: str | int, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": example}


def _errors(*statuses: int) -> dict[str, Any]:
    error = {
        "description": "Azure's error shape",
        "content": {"application/json": {"schema": {"$ref": COMPONENTS + "Error"}}},
    }
    return {str(status): error for status in sorted(set(statuses))}


def _names_list(kind: str) -> dict[str, Any]:
    listing = {"type": "object", "properties": {"Value": {"type": "array", "items": {"type": kind}}}}
    return {"description": "the list", "content": {"application/json": {"schema": listing}}}


def _schema_text() -> dict[str, Any]:
    return {
        "description": "the schema text exactly as registered, typed by its format",
        "headers": _SCHEMA_HEADERS,
        "content": {media: {"schema": {}} for media in CONTENT_TYPES.values()},
    }


def _properties(what: str, *, links: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{what}: the version's properties in headers",
        "headers": _SCHEMA_HEADERS,
    }
    if links:
        response["links"] = {
            "GetSchemaById": {"operationId": "getSchemaById", "parameters": {"id": "$response.header.Schema-Id"}},
            "GetSchemaVersion": {
                "operationId": "getSchemaVersion",
                "parameters": {
                    "groupName": "$request.path.groupName",
                    "schemaName": "$request.path.schemaName",
                    "schemaVersion": "$response.header.Schema-Version",
                },
            },
        }
    return response


def _schema_body() -> dict[str, Any]:
    avro = {"schema": {"$ref": COMPONENTS + "AvroRecord"}, "example": _EXAMPLE_RECORD}
    return {
        "required": True,
        "content": {
            CONTENT_TYPES[SchemaFormat.AVRO]: avro,
            CONTENT_TYPES[SchemaFormat.JSON]: {"schema": {"type": "object"}, "example": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}, "example": "any text"},
        },
    }
