"""The delivery HTTP API: pull with a cursor, ack, resumable SSE and WebSocket streams, and the ops routes.

Every mailbox route needs a bearer token for the recipient (delivery.auth). Errors are JSON
``{"error": {"code", "message"}}`` with 400 (bad cursor or limit), 401 (no or bad token), 403 (another
recipient's mailbox), 409 (ack ahead of the mailbox) or 503 (the store is unavailable; retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from delivery.auth import AuthError, Principal, TokenVerifier
from delivery.mailbox import Cursor, MailboxError, Message, Page, StoreUnavailableError
from delivery.metrics import DeliveryMetrics
from delivery.stores import MailboxStore
from delivery.streams import Farewell, Follow, Gap, StreamItem
from delivery.traces import stream_send_span
from hubstream.settings import DeliverySettings
from kafka_consumer.health import WorkerStatus

_RETRY_AFTER_S = 2


class MessageOut(BaseModel):
    cursor: str = Field(description="Opaque; pass it back as `after`, `upTo` or Last-Event-ID")
    eventId: str = Field(description="The event's id: the same on every channel and redelivery; dedupe on it")  # noqa: N815 - the JSON field name
    topic: str
    schema_: str = Field(alias="schema", description="Full name of the Avro schema the event was written with")
    schemaId: str  # noqa: N815 - the JSON field name
    conversation: str | None
    arrivedAt: str  # noqa: N815 - the JSON field name
    event: dict[str, Any] = Field(description="The event as natural JSON")


class PageOut(BaseModel):
    messages: list[MessageOut]
    next: str | None = Field(description="The cursor to read after next time")
    gap: bool = Field(description="True when messages right after `after` are gone (retention)")


class StateOut(BaseModel):
    recipient: str
    count: int
    first: str | None
    last: str | None
    acked: str | None


class AckIn(BaseModel):
    upTo: str = Field(description="A cursor this mailbox gave out; everything up to it counts as read")  # noqa: N815 - the JSON field name


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorOut} for status in (400, 401, 403, 503)}


@dataclass
class DeliveryService:
    store: MailboxStore
    verifier: TokenVerifier
    follow: Follow
    metrics: DeliveryMetrics
    settings: DeliverySettings
    worker_status: Callable[[], WorkerStatus | None]  # None: this node serves the API only (--no-consume)
    worker_metrics: Callable[[], bytes]


def create_app(service: DeliveryService) -> FastAPI:
    app = FastAPI(
        title="hubstream delivery",
        version="0.1.0",
        summary="Every event for a recipient, kept until read: pull, ack, and resumable streams.",
    )
    _install_error_handlers(app, service.metrics)
    _mailbox_routes(app, service)
    _stream_routes(app, service)
    _ops_routes(app, service)
    return app


def _mailbox_routes(app: FastAPI, service: DeliveryService) -> None:
    store, settings = service.store, service.settings

    @app.get(
        "/v1/mailboxes/{recipient}/messages",
        response_model=PageOut,
        responses=_ERRORS,
        summary="Messages after a cursor, oldest first",
    )
    async def messages(
        recipient: str,
        request: Request,
        after: Annotated[str | None, Query(description="A cursor; omit to start at the oldest")] = None,
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
        conversation: Annotated[str | None, Query(description="Only this conversation")] = None,
    ) -> Response:
        await _principal(service, request, recipient)
        page = await store.read(recipient, _cursor(after), limit or settings.page_limit, conversation)
        return Response(_page_json(page), media_type="application/json")

    @app.post(
        "/v1/mailboxes/{recipient}/ack",
        response_model=StateOut,
        responses={**_ERRORS, 409: {"model": ErrorOut}},
        summary="Mark everything up to a cursor as read (idempotent, never backwards)",
    )
    async def ack(recipient: str, body: AckIn, request: Request) -> dict[str, Any]:
        await _principal(service, request, recipient)
        return (await store.ack(recipient, Cursor.parse(body.upTo))).as_json()

    @app.get(
        "/v1/mailboxes/{recipient}",
        response_model=StateOut,
        responses=_ERRORS,
        summary="How many messages are kept, and the first, last and acked cursors",
    )
    async def state(recipient: str, request: Request) -> dict[str, Any]:
        await _principal(service, request, recipient)
        return (await store.state(recipient)).as_json()


def _stream_routes(app: FastAPI, service: DeliveryService) -> None:
    settings, metrics = service.settings, service.metrics

    @app.get(
        "/v1/mailboxes/{recipient}/stream",
        responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
        summary="Server-sent events: replay after the cursor, then live",
    )
    async def stream(
        recipient: str,
        request: Request,
        after: Annotated[str | None, Query(description="Where to start; Last-Event-ID wins")] = None,
        conversation: str | None = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        principal = await _principal(service, request, recipient)
        start = _cursor(last_event_id or after)  # a reconnecting browser sends the header; a new one only ?after=
        items = service.follow.items(recipient, start, conversation, principal.expires_at)
        return _EventStream(
            _sse(items, service),
            metrics,
            ping=int(settings.keepalive_s),
            sep="\n",
            send_timeout=settings.send_timeout_s,
            headers={"Cache-Control": "no-store"},
        )

    @app.websocket("/v1/mailboxes/{recipient}/ws")
    async def websocket(
        ws: WebSocket, recipient: str, after: str | None = None, conversation: str | None = None
    ) -> None:
        try:
            principal = await service.verifier.verify(
                _token(ws.headers.get("authorization"), ws.query_params.get("access_token"))
            )
            principal.may_read(recipient)
            start = _cursor(after)
        except (AuthError, MailboxError) as exc:
            await ws.close(
                code=4401
                if isinstance(exc, AuthError) and exc.status == 401
                else 4403
                if isinstance(exc, AuthError)
                else 4400,
                reason=str(exc)[:120],
            )
            return
        await ws.accept()
        metrics.streams.labels("ws").inc()
        try:
            await _websocket(ws, service, recipient, start, conversation, principal)
        finally:
            metrics.streams.labels("ws").dec()


class _EventStream(EventSourceResponse):
    """An SSE response that ends a client who stops taking sends quietly (counted), not with a traceback."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], metrics: DeliveryMetrics, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            self._metrics.stream_ends.labels("sse", "send-timeout").inc()


async def _sse(items: AsyncIterator[StreamItem], service: DeliveryService) -> AsyncIterator[ServerSentEvent]:
    metrics = service.metrics
    metrics.streams.labels("sse").inc()
    reason = "client-gone"
    try:
        yield ServerSentEvent(retry=service.follow.retry_ms(), comment="hubstream")
        async for item in items:
            if isinstance(item, Message):
                metrics.sends.labels("sse").inc()
                with stream_send_span(
                    item.trace, topic=item.topic, recipient=item.recipient, cursor=str(item.cursor), stream="sse"
                ):
                    yield ServerSentEvent(data=item.wire_json(), event=item.schema_name, id=str(item.cursor))
            elif isinstance(item, Gap):
                yield ServerSentEvent(data=_gap_json(item), event="gap", id=str(item.resume) if item.resume else None)
            else:
                reason = item.reason
                yield ServerSentEvent(retry=item.retry_ms, comment=f"reconnect: {item.reason}")
    finally:
        metrics.streams.labels("sse").dec()
        metrics.stream_ends.labels("sse", reason).inc()


async def _websocket(
    ws: WebSocket,
    service: DeliveryService,
    recipient: str,
    start: Cursor | None,
    conversation: str | None,
    principal: Principal,
) -> None:
    """Send stream items; take {"ack": cursor} and {"resume": cursor} from the client meanwhile."""
    resume: asyncio.Queue[Cursor | None] = asyncio.Queue()
    resume.put_nowait(start)
    sender: asyncio.Task[None] | None = None

    async def send_from(cursor: Cursor | None) -> None:
        async for item in service.follow.items(recipient, cursor, conversation, principal.expires_at):
            if isinstance(item, Message):
                with stream_send_span(
                    item.trace, topic=item.topic, recipient=recipient, cursor=str(item.cursor), stream="websocket"
                ):
                    await asyncio.wait_for(ws.send_text(_ws_frame(item)), service.settings.send_timeout_s)
                service.metrics.sends.labels("ws").inc()
                continue
            await asyncio.wait_for(ws.send_text(_ws_frame(item)), service.settings.send_timeout_s)
            if isinstance(item, Farewell):
                await ws.close(code=1012 if item.reason == "shutdown" else 1013, reason=item.reason)
                return

    async def receive() -> None:
        while True:
            frame = await ws.receive_text()
            try:
                request = json.loads(frame)
                if "resume" in request:
                    resume.put_nowait(_cursor(request["resume"]))
                elif "ack" in request:
                    state = await service.store.ack(recipient, Cursor.parse(str(request["ack"])))
                    await ws.send_text(json.dumps({"event": "acked", "data": state.as_json()}))
                else:
                    raise MailboxError('a client frame is {"ack": cursor} or {"resume": cursor}')
            except (ValueError, TypeError, MailboxError) as exc:
                await ws.send_text(json.dumps({"event": "error", "data": {"message": str(exc)}}))

    receiver = asyncio.create_task(receive())
    try:
        while True:
            getting = asyncio.create_task(resume.get())
            waiting = {receiver, getting} | ({sender} if sender else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if getting in done:
                if sender is not None:
                    sender.cancel()
                sender = asyncio.create_task(send_from(getting.result()))
                continue
            getting.cancel()
            return  # the client went away, or the stream ended (sent its farewell)
    except (WebSocketDisconnect, TimeoutError):
        return
    finally:
        for task in (receiver, sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def _ops_routes(app: FastAPI, service: DeliveryService) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(service.worker_metrics() + service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", summary="200 while the node works; 503 with the problems")
    async def healthz() -> JSONResponse:
        body = await _health(service)
        return JSONResponse(body, status_code=200 if body["healthy"] else 503)

    @app.get("/readyz", summary="200 once healthy and (when consuming) in its group")
    async def readyz() -> JSONResponse:
        body = await _health(service)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)


async def _health(service: DeliveryService) -> dict[str, Any]:
    problems: list[str] = []
    try:
        await service.store.ping()
    except StoreUnavailableError as exc:
        problems.append(f"mailbox store: {exc}")
    status = service.worker_status()
    body: dict[str, Any] = {"consuming": status is not None}
    if status is not None:
        body |= status.as_json()
        problems = status.problems + problems
    body |= {
        "problems": problems,
        "healthy": not problems and (status is None or status.healthy),
        "streams": service.follow.wakeups.streams,
    }
    body["ready"] = body["healthy"] and (status is None or status.ready)
    return body


async def _principal(service: DeliveryService, request: Request, recipient: str) -> Principal:
    token = _token(request.headers.get("authorization"), request.query_params.get("access_token"))
    principal = await service.verifier.verify(token)
    principal.may_read(recipient)
    return principal


def _token(authorization: str | None, query: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return query


def _cursor(text: str | None) -> Cursor | None:
    return None if text is None or text == "" else Cursor.parse(text)


def _page_json(page: Page) -> str:
    messages = ",".join(m.wire_json() for m in page.messages)
    return (
        f'{{"messages":[{messages}],"next":{json.dumps(str(page.next) if page.next else None)},'
        f'"gap":{json.dumps(page.gap)}}}'
    )


def _gap_json(gap: Gap) -> str:
    return json.dumps(
        {"after": str(gap.after) if gap.after else None, "resume": str(gap.resume) if gap.resume else None}
    )


def _ws_frame(item: StreamItem) -> str:
    if isinstance(item, Message):
        return f'{{"id":"{item.cursor}","event":{json.dumps(item.schema_name)},"data":{item.wire_json()}}}'
    if isinstance(item, Gap):
        return f'{{"event":"gap","data":{_gap_json(item)}}}'
    return json.dumps({"event": "reconnect", "retry": item.retry_ms, "reason": item.reason})


def _install_error_handlers(app: FastAPI, metrics: DeliveryMetrics) -> None:
    def error(status: int, code: str, message: str) -> JSONResponse:
        headers = {"Retry-After": str(_RETRY_AFTER_S)} if status == 503 else None
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    @app.exception_handler(AuthError)
    async def unauthorized(_: Request, exc: AuthError) -> JSONResponse:
        return error(exc.status, exc.code, str(exc))

    @app.exception_handler(MailboxError)
    async def bad_request(_: Request, exc: MailboxError) -> JSONResponse:
        return error(exc.status, exc.code, str(exc))

    @app.exception_handler(StoreUnavailableError)
    async def unavailable(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        metrics.store_errors.labels("request").inc()
        return error(503, "StoreUnavailable", f"{exc}; retry shortly")
