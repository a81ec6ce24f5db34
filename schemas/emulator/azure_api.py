"""The six data-plane operations azure-schemaregistry 1.3.0 calls, on one catch-all route.

    register                PUT  /$schemaGroups/{group}/schemas/{name}
    get properties by text  POST /$schemaGroups/{group}/schemas/{name}:get-id  (same JSON value, see content.py)
    get by id               GET  /$schemaGroups/$schemas/{id}
    get a version           GET  /$schemaGroups/{group}/schemas/{name}/versions/{version}
    list versions           GET  /$schemaGroups/{group}/schemas/{name}/versions
    list groups             GET  /$schemaGroups

The ``api-version`` query parameter is required (the SDK sends 2022-10); any value is accepted.

Status codes follow what the SDK accepts: 204 with headers for PUT and POST, 200 with the exact
schema text and a format Content-Type for GETs, ``{"Value": [...]}`` for lists.
"""

from __future__ import annotations

import re
from typing import assert_never
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from schemas.emulator.admission import admission, check_format, read_body
from schemas.emulator.content import content_key
from schemas.emulator.errors import InvalidRequestError, UnsupportedSchemaTypeError
from schemas.emulator.groups import SchemaFormat
from schemas.emulator.routes import AzureRoute, Operation, resolve
from schemas.emulator.store import SchemaStore, SchemaVersion

CONTENT_TYPES = {
    SchemaFormat.AVRO: "application/json; serialization=Avro",
    SchemaFormat.JSON: "application/json; serialization=Json",
    SchemaFormat.CUSTOM: "text/plain; charset=utf-8",
}
# the REST spec's pattern (2022-10) for schema names, kept to printable ASCII so names fit in headers;
# 100 characters is the quota doc's limit (the spec says 50, too short for many Avro full names)
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9](?:(?![\\/$:])[!-~]){0,99}$")
_EMPTY_BODY = "Error when consuming request body: The body of the message cannot be read because it is empty."


class AzureApi:
    def __init__(self, store: SchemaStore) -> None:
        self._store = store

    async def handle(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        route = resolve(request.method, raw_path.decode("latin-1"))
        api_version = request.query_params.get("api-version")
        if not api_version:
            raise InvalidRequestError("The api-version query parameter (?api-version=) is required for all requests.")
        body = await read_body(request)  # bounded: a schema is at most 1 MB
        call = _Call(request, route, api_version, body)
        return await run_in_threadpool(self._dispatch, call)

    def _dispatch(self, call: _Call) -> Response:
        route = call.route
        match route.operation:
            case Operation.LIST_GROUPS:
                return JSONResponse({"Value": [usage.group.name for usage in self._store.list_groups()]})
            case Operation.LIST_VERSIONS:
                return JSONResponse({"Value": self._store.version_numbers(route.group, route.name)})
            case Operation.GET_BY_ID:
                return call.schema(self._store.by_id(route.schema_id))
            case Operation.GET_VERSION:
                return call.schema(self._store.by_version(route.group, route.name, route.version))
            case Operation.REGISTER:
                return self._register(call)
            case Operation.GET_ID:
                return self._get_id(call)
            case _:
                assert_never(route.operation)

    def _register(self, call: _Call) -> Response:
        fmt, definition = call.format("PUT"), call.text()
        name = call.route.name
        if not _SCHEMA_NAME.match(name):
            raise InvalidRequestError(
                f"Invalid schema name '{name}': up to 100 printable ASCII characters, starting with a letter or "
                "digit, without '\\', '/', '$' or ':'."
            )
        version = self._store.register(call.route.group, name, fmt, definition, admission(fmt, definition))
        return call.properties(version)

    def _get_id(self, call: _Call) -> Response:
        fmt, definition = call.format("POST"), call.text()
        check_format(self._store.get_group(call.route.group), fmt, "POST")
        # the same content, not the same bytes: whitespace and JSON member order do not matter (see content.py)
        found = self._store.find(call.route.group, call.route.name, definition, same=content_key(fmt))
        return call.properties(found)


class _Call:
    """One request's route and inputs, and the responses it can produce."""

    def __init__(self, request: Request, route: AzureRoute, api_version: str, body: bytes) -> None:
        self.route = route
        self._request = request
        self._api_version = api_version
        self._body = body

    def format(self, method: str) -> SchemaFormat:
        return request_format(self._request.headers.get("content-type"), method)

    def text(self) -> str:
        if not self._body:
            raise InvalidRequestError(_EMPTY_BODY)
        try:
            return self._body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError("The request body is not valid UTF-8.") from None

    def properties(self, version: SchemaVersion) -> Response:
        return Response(status_code=204, headers=self._headers(version))

    def schema(self, version: SchemaVersion) -> Response:
        # exact text as registered: clients compare it byte for byte
        return Response(
            content=version.definition.encode("utf-8"),
            media_type=CONTENT_TYPES[version.format],
            headers=self._headers(version),
        )

    def _headers(self, version: SchemaVersion) -> dict[str, str]:
        base = str(self._request.base_url).rstrip("/")
        query = f"?api-version={quote(self._api_version, safe='')}"
        schema = f"{base}/$schemagroups/{quote(version.group, safe='')}/schemas/{quote(version.name, safe='')}"
        return {
            "Schema-Id": version.id,
            "Schema-Group-Name": version.group,
            "Schema-Name": version.name,
            "Schema-Version": str(version.version),
            "Location": f"{schema}/versions/{version.version}{query}",
            "Schema-Id-Location": f"{base}/$schemagroups/$schemas/{version.id}{query}",
            "Schema-Versions-Location": f"{schema}/versions{query}",
        }


def request_format(content_type: str | None, method: str) -> SchemaFormat:
    """The schema format a PUT or POST declares: ``application/json; serialization=X`` or ``text/plain``."""
    media, _, rest = (content_type or "").partition(";")
    media = media.strip().lower()
    params = {}
    for param in rest.split(";"):
        key, _, value = param.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    if media == "text/plain":
        return SchemaFormat.CUSTOM
    serialization = params.get("serialization", "")
    if media == "application/json" and serialization.lower() in ("avro", "json"):
        return SchemaFormat.parse(serialization)
    unsupported = serialization or content_type or ""
    raise UnsupportedSchemaTypeError(f"Invalid schema type for {method} request. '{unsupported}' is not supported.")
