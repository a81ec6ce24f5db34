"""The producer API's OpenAPI document: each topic's event schema with an example, and every answer it can give.

The topic is a path parameter, so one operation cannot tie a body schema to it: an OpenAPI discriminator picks a
schema by a property of the body, not by the path. Next to the generic ``/v1/topics/{topic}/events`` (and
``:batch``), the document therefore has one path per topic of the catalog, ``/v1/topics/chat.responses/events``,
whose body is that topic's event schema (``schemas.json_schema``, natural JSON as the API reads it) with an
example. Schemathesis then sends each topic bodies that fit it and so reaches encoding and the broker, where a
oneOf would send most bodies to a topic they do not fit and test only the 422; Swagger UI shows one form and one
example per topic instead of a union to pick from. The server routes them all through the generic route.

Errors have one shape, ``{"error": {"code", "message"}}``; a 422 adds ``problems`` (path and problem, the first
``api.max_problems``) and ``problemCount``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from schemas.contracts import Catalog, Contract
from schemas.json_schema import EventSchema, JsonSchema, event_schema, example_event

EVENTS_PATH = "/v1/topics/{topic}/events"
BATCH_PATH = EVENTS_PATH + ":batch"
COMPONENTS = "#/components/schemas/"
ERROR = {"$ref": COMPONENTS + "Error"}

_ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "what went wrong, e.g. InvalidEvent, BrokerUnavailable"},
                "message": {"type": "string", "description": "what happened and what to do next"},
                "problems": {
                    "type": "array",
                    "description": "422 only: the event's problems by field path (the first ones)",
                    "items": {
                        "type": "object",
                        "required": ["path", "problem"],
                        "properties": {"path": {"type": "string"}, "problem": {"type": "string"}},
                    },
                },
                "problemCount": {"type": "integer", "description": "422 only: how many problems there were"},
            },
        }
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
_CHALLENGE = {"WWW-Authenticate": {"description": 'Bearer realm="hubstream"', "schema": {"type": "string"}}}

# status -> (error codes it carries, when); the handlers in api.py and the checks before them answer these
_STATUSES: dict[int, tuple[str, str]] = {
    400: ("InvalidJson, HostNotAllowed", "not UTF-8 JSON the API can read, or a Host that is not a loopback name"),
    401: ("Unauthorized", "no credential, or one that is not valid here (with api.auth, the default but in local)"),
    403: ("Forbidden", "an API key not allowed on this topic (with api.auth)"),
    404: ("UnknownTopic", "no such topic in the catalog"),
    413: ("PayloadTooLarge, TooManyEvents, RecordTooLarge", "body, batch or encoded event too large"),
    415: ("UnsupportedMediaType", "not Content-Type: application/json"),
    422: ("InvalidEvent", "the event does not match the topic's contract; problems lists where"),
    502: ("BrokerRejected", "the broker rejected the record"),
    503: (
        "BrokerUnavailable, SchemaRegistryUnavailable",
        "broker or registry unavailable, or the producer queue is full: retry after Retry-After (an event may "
        "still be delivered later; consumers dedupe on eventId). Over the server's connection limit the answer "
        "is text/plain",
    ),
}


def publish_responses(*, batch: bool) -> dict[int | str, dict[str, Any]]:
    """The error answers of a publish route (401 and 403 come only while the API checks credentials)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status, (codes, when) in _STATUSES.items():
        if batch and status == 413:
            when += " (a batch takes at most api.max_batch_events events)"
        content: dict[str, Any] = {"application/json": {"schema": ERROR}}
        if status == 503:
            content["text/plain"] = {"schema": {"type": "string"}}
        response: dict[str, Any] = {"description": f"{when} ({codes})", "content": content}
        if status in (401, 503):
            response["headers"] = _CHALLENGE if status == 401 else _RETRY_AFTER
        responses[status] = response
    return responses


def install_openapi(app: FastAPI, catalog: Callable[[], Catalog], *, auth: bool, max_batch_events: int) -> None:
    """Make ``app.openapi()`` (``/openapi.json``, ``/docs``) describe every topic of ``catalog()``, built once."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_topics(generate(), catalog(), auth=auth, max_batch_events=max_batch_events)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign] # FastAPI's documented way to extend its document


def with_topics(document: dict[str, Any], catalog: Catalog, *, auth: bool, max_batch_events: int) -> dict[str, Any]:
    """``document`` (FastAPI's) with the error schema, the credentials, and one path per topic for each route."""
    document = copy.deepcopy(document)
    components = document.setdefault("components", {})
    schemas: dict[str, JsonSchema] = components.setdefault("schemas", {})
    schemas["Error"] = _ERROR_SCHEMA
    paths: dict[str, Any] = document["paths"]
    single, batch = paths[EVENTS_PATH]["post"], paths[BATCH_PATH]["post"]
    if auth:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key (hsk_...) or an Entra ID token"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        single["security"] = batch["security"] = [{"bearer": []}, {"apiKey": []}]
    _describe_generic(single, batch, catalog, max_batch_events)
    for topic, binding in catalog.topics.items():
        contract = catalog.contracts[binding.schema]
        event = _component_schema(contract, schemas)
        example = example_event(contract.schema)
        paths[EVENTS_PATH.replace("{topic}", topic)] = {
            "post": _for_topic(single, topic, contract, _body(event.ref, example))
        }
        events = {"type": "array", "items": event.ref, "maxItems": max_batch_events}
        batch_schema = {"type": "object", "required": ["events"], "properties": {"events": events}}
        paths[BATCH_PATH.replace("{topic}", topic)] = {
            "post": _for_topic(batch, topic, contract, _body(batch_schema, {"events": [example]}))
        }
    return document


def _component_schema(contract: Contract, schemas: dict[str, JsonSchema]) -> EventSchema:
    """The contract's records as components; named after the contract as well when another contract's record of
    the same name differs."""
    event = event_schema(contract.schema, ref_prefix=COMPONENTS)
    if any(schemas.get(name, schema) != schema for name, schema in event.definitions.items()):
        event = event_schema(contract.schema, ref_prefix=f"{COMPONENTS}{contract.name}--")
        schemas.update({f"{contract.name}--{name}": schema for name, schema in event.definitions.items()})
    else:
        schemas.update(event.definitions)
    return event


def _describe_generic(single: dict[str, Any], batch: dict[str, Any], catalog: Catalog, max_batch_events: int) -> None:
    topics = ", ".join(catalog.topics) or "none"
    any_event = {"type": "object", "description": f"an event of the topic's contract; topics: {topics}"}
    single["requestBody"] = _body(any_event, None)
    events = {"type": "array", "items": any_event, "maxItems": max_batch_events}
    batch["requestBody"] = _body({"type": "object", "required": ["events"], "properties": {"events": events}}, None)
    for operation in (single, batch):
        operation["tags"] = ["any topic"]
        operation["description"] = (
            "The topic's events are described under its own path (e.g. "
            f"{EVENTS_PATH.replace('{topic}', next(iter(catalog.topics), 'TOPIC'))})."
        )


def _body(schema: JsonSchema, example: Any) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["examples"] = {"event": {"summary": "an event that fits the contract", "value": example}}
    return {"required": True, "content": {"application/json": media}}


def _for_topic(template: dict[str, Any], topic: str, contract: Contract, body: dict[str, Any]) -> dict[str, Any]:
    operation = copy.deepcopy(template)
    operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("name") != "topic"]
    if not operation["parameters"]:
        del operation["parameters"]
    operation["operationId"] = f"{template['operationId']}_{re.sub(r'[^A-Za-z0-9]', '_', topic)}"
    operation["summary"] = f"{template.get('summary', 'Publish')} to {topic}"
    operation["description"] = f"Events of {topic} follow the contract {contract.name}, in natural JSON."
    operation["tags"] = [topic]
    operation["requestBody"] = body
    operation["responses"].pop("404", None)  # the topic is in the catalog
    return operation
