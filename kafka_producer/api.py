"""The producer HTTP API: POST events as natural JSON; answered once the broker has acknowledged them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from hubstream import kafka_config, tracing
from hubstream.errors import (
    BrokerError,
    BrokerUnavailableError,
    EventValidationError,
    RegistryError,
    UnknownTopicError,
)
from hubstream.settings import Settings
from kafka_producer.access import Access, PublishAuthError, host_allowed, is_json, is_loopback
from kafka_producer.body import RejectedRequestError, parse_json, safe_text
from kafka_producer.metrics import ProducerMetrics, RequestMetrics
from kafka_producer.openapi import install_openapi, publish_responses
from kafka_producer.producer import AsyncProducer, RecordTooLargeError
from kafka_producer.publisher import EventPublisher, Prepared, Published
from kafka_producer.readiness import ContractIds
from kafka_producer.request_spans import RequestSpans
from schemas.contracts import Catalog
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)
T = TypeVar("T")

# Clients should back off this long when the broker is unreachable.
RETRY_AFTER_S = 5


class PublishedEvent(BaseModel):
    topic: str
    partition: int
    offset: int
    schemaId: str  # noqa: N815 - the JSON field name


class BatchItem(BaseModel):
    index: int
    ok: bool
    partition: int | None = None
    offset: int | None = None
    schemaId: str | None = None  # noqa: N815 - the JSON field name
    error: str | None = None


class BatchResult(BaseModel):
    topic: str
    failed: int = 0  # events not acknowledged (the answer is then 207); retry those, dedupe on eventId
    results: list[BatchItem]


@dataclass
class ProducerService:
    publisher: EventPublisher
    producer: AsyncProducer
    registry: SchemaRegistry
    catalog: Catalog


def build_service(settings: Settings) -> ProducerService:
    catalog = Catalog.from_settings(settings)
    registry = SchemaRegistry.from_settings(settings)
    # a full local queue answers 503 at once: a request never waits on the loop for room
    producer = AsyncProducer(kafka_config.producer_config(settings), wait_when_full=False)
    publisher = EventPublisher(
        catalog,
        AvroSerde(registry),
        producer,
        delivery_timeout_s=settings.producer.delivery_timeout_ms / 1000,
    )
    return ProducerService(publisher, producer, registry, catalog)


def create_app(settings: Settings, service_factory: Callable[[Settings], ProducerService] = build_service) -> FastAPI:
    max_body = settings.api.max_body_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory(settings)
        app.state.service = service
        app.state.ids = ids = ContractIds(service.catalog, service.registry, retry_s=settings.api.registry_retry_s)
        ids.start()
        try:
            yield
        finally:
            ids.stop()
            await service.producer.close()
            service.registry.close()

    app = FastAPI(
        title="hubstream producer",
        summary="Publish events as natural JSON; each is validated against its topic's Avro contract.",
        version="0.1.0",
        lifespan=lifespan,
    )
    metrics = ProducerMetrics()
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)
    if tracing.enabled():  # configure_tracing ran first (hubstream produce-api does at start-up)
        app.add_middleware(RequestSpans)
    _install_error_handlers(app, settings.api.max_problems, metrics)
    access = Access(settings)
    if is_loopback(settings.api.host):
        app.add_middleware(LoopbackHostOnly)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise _too_large(max_body)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body:
                raise _too_large(max_body)
        return bytes(body)

    async def admit(request: Request, topic: str, pub: EventPublisher) -> str:
        """The topic's schema name, once the caller may publish there and sends JSON."""
        await access.authorize(request, topic)
        schema = pub.binding(topic).schema
        request.app.state.ids.require(schema)  # 503 at once while the registry has not answered
        if not is_json(request.headers.get("content-type")):
            raise RejectedRequestError(415, "UnsupportedMediaType", "send the event as Content-Type: application/json")
        return schema

    def publisher(request: Request) -> EventPublisher:
        service: ProducerService = request.app.state.service
        return service.publisher

    @app.post(
        "/v1/topics/{topic}/events",
        response_model=PublishedEvent,
        responses=publish_responses(batch=False),
        summary="Publish one event",
        operation_id="publishEvent",
    )
    async def publish_event(topic: str, request: Request) -> Response:
        pub = publisher(request)
        schema = await admit(request, topic, pub)  # 401, 403, 404 and 415 before reading a body we cannot use
        body = await read_body(request)

        def prepare() -> Prepared:
            return pub.prepare(topic, _event_json(body, schema), max_problems=settings.api.max_problems)

        prepared = await _off_the_loop_if_large(body, prepare)
        started = time.monotonic()
        try:
            published = await pub.send_prepared(topic, prepared)
        except BrokerError:
            metrics.published(topic, started, ok=0, failed=1)
            raise
        metrics.published(topic, started, ok=1, failed=0)
        return _json(published.as_json())  # PublishedEvent's fields; orjson, not a model validated per answer

    @app.post(
        "/v1/topics/{topic}/events:batch",
        response_model=BatchResult,
        responses={
            207: {"model": BatchResult, "description": "some events were not acknowledged"},
            **publish_responses(batch=True),
        },
        summary="Publish several events with one round of acknowledgements",
        operation_id="publishBatch",
    )
    async def publish_batch(topic: str, request: Request) -> Response:
        pub = publisher(request)
        schema = await admit(request, topic, pub)
        body = await read_body(request)

        def prepare() -> list[Prepared]:
            events = _batch_json(body, schema, settings.api.max_batch_events)
            return pub.prepare_batch(topic, events, max_problems=settings.api.max_problems)

        prepared = await _off_the_loop_if_large(body, prepare)
        started = time.monotonic()
        outcomes = await pub.send_batch(topic, prepared)
        failed_sends = sum(isinstance(o, BrokerError) for o in outcomes)
        metrics.published(topic, started, ok=len(outcomes) - failed_sends, failed=failed_sends)
        unavailable = [o for o in outcomes if isinstance(o, BrokerUnavailableError)]
        if unavailable and len(unavailable) == len(outcomes):
            raise unavailable[0]
        results = [_batch_item(i, o) for i, o in enumerate(outcomes)]  # BatchResult's fields, as for one event
        failed = sum(not item["ok"] for item in results)
        # 207: a client that checks only the status cannot take a partly failed batch for a success
        return _json({"topic": topic, "failed": failed, "results": results}, status=207 if failed else 200)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="The broker and the schema registry are reachable",
        responses={503: {"description": "not ready: the same body, with the checks that failed"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        service: ProducerService = request.app.state.service
        ids: ContractIds = request.app.state.ids
        checks = {"broker": await _in_thread(service.producer.broker_reachable), "registry": ids.ready}
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if ids.last_error:
            body["registryError"] = safe_text(ids.last_error)
        return SafeJSONResponse(body, status_code=200 if ready else 503)

    def catalog() -> Catalog:  # the running service's, so the document shows what requests are checked against
        service: ProducerService | None = getattr(app.state, "service", None)
        return service.catalog if service is not None else Catalog.from_settings(settings)

    install_openapi(app, catalog, auth=access.enabled, max_batch_events=settings.api.max_batch_events)
    return app


# bodies larger than this are validated and encoded in a worker thread, so the event loop keeps serving
_OFF_LOOP_BYTES = 64 * 1024


async def _off_the_loop_if_large(body: bytes, work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work) if len(body) > _OFF_LOOP_BYTES else work()


def _event_json(body: bytes, schema: str) -> Any:
    parsed = parse_json(body)
    if parsed.problems:
        raise EventValidationError(schema, parsed.problems)
    return parsed.value


def _batch_json(body: bytes, schema: str, max_events: int) -> list[Any]:
    parsed = parse_json(body)
    events = parsed.value.get("events") if isinstance(parsed.value, dict) else None
    if not isinstance(events, list):
        raise EventValidationError(schema, [("events", "expected a JSON array of events")])
    if len(events) > max_events:
        raise RejectedRequestError(
            413,
            "TooManyEvents",
            f"a batch takes at most {max_events} events, this one has {len(events)}; split it into smaller batches",
        )
    if parsed.problems:
        raise EventValidationError(schema, parsed.problems)
    return events


def _batch_item(index: int, outcome: Published | BrokerError) -> dict[str, Any]:
    if isinstance(outcome, Published):
        return {
            "index": index,
            "ok": True,
            "partition": outcome.partition,
            "offset": outcome.offset,
            "schemaId": outcome.schema_id,
            "error": None,
        }
    return {"index": index, "ok": False, "partition": None, "offset": None, "schemaId": None, "error": str(outcome)}


def _json(content: Any, status: int = 200) -> Response:
    """A success answer. orjson refuses a lone surrogate (json.dumps would write it and fail encoding it): such a
    body is written as SafeJSONResponse writes one."""
    try:
        body = orjson.dumps(content)
    except TypeError:
        return SafeJSONResponse(content, status_code=status)
    return Response(body, status_code=status, media_type="application/json")


async def _in_thread(fn: Callable[[], bool]) -> bool:
    return await asyncio.to_thread(fn)


def _too_large(limit: int) -> RejectedRequestError:
    return RejectedRequestError(
        413, "PayloadTooLarge", f"request body is larger than {limit} bytes; split it into smaller batches"
    )


class SafeJSONResponse(JSONResponse):
    """JSON that always renders: a lone surrogate (from a client's own key or value, echoed in a path or a
    message) is written as its escape instead of failing the UTF-8 encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8", "backslashreplace"
        )


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    body = {"error": {"code": code, "message": safe_text(message), **extra}}
    return SafeJSONResponse(body, status_code=status, headers=headers)


class LoopbackHostOnly:
    """Bound to loopback: only loopback names in Host, so a DNS-rebound page cannot reach the API. A plain ASGI
    wrapper: as a ``BaseHTTPMiddleware`` (``@app.middleware``) it took about a quarter of the profile per event."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not host_allowed(_first_header(scope, b"host")):
            response = _error(
                400,
                "HostNotAllowed",
                "this API listens on a loopback address and answers only Host: localhost, 127.0.0.1 or [::1]; "
                "to serve other names, bind it to another interface (--host)",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _first_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _install_error_handlers(app: FastAPI, max_problems: int, metrics: ProducerMetrics) -> None:
    """Map domain errors to HTTP in one place."""

    @app.exception_handler(RejectedRequestError)
    async def rejected_request(_: Request, exc: RejectedRequestError) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(PublishAuthError)
    async def unauthorized(_: Request, exc: PublishAuthError) -> JSONResponse:
        response = _error(exc.status, exc.code, str(exc))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="hubstream"'
        return response

    @app.exception_handler(EventValidationError)
    async def invalid_event(request: Request, exc: EventValidationError) -> JSONResponse:
        metrics.validation_failures.labels(str(request.path_params.get("topic", ""))).inc()
        problems = [{"path": path, "problem": problem} for path, problem in exc.problems[:max_problems]]
        return _error(422, "InvalidEvent", str(exc), problems=problems, problemCount=exc.total)

    @app.exception_handler(UnknownTopicError)
    async def unknown_topic(_: Request, exc: UnknownTopicError) -> JSONResponse:
        return _error(404, "UnknownTopic", str(exc))

    @app.exception_handler(BrokerUnavailableError)
    async def broker_unavailable(_: Request, exc: BrokerUnavailableError) -> JSONResponse:
        return _error(503, "BrokerUnavailable", str(exc))

    @app.exception_handler(RegistryError)
    async def registry_unavailable(_: Request, exc: RegistryError) -> JSONResponse:
        return _error(503, "SchemaRegistryUnavailable", str(exc))

    @app.exception_handler(RecordTooLargeError)
    async def record_too_large(_: Request, exc: RecordTooLargeError) -> JSONResponse:
        return _error(413, "RecordTooLarge", str(exc))

    @app.exception_handler(BrokerError)
    async def broker_error(_: Request, exc: BrokerError) -> JSONResponse:
        return _error(502, "BrokerRejected", str(exc))
