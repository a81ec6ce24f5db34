"""The webhook admin API on the delivery node (admin token required): endpoints, secrets, recover, test, attempts."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from delivery.auth import ForbiddenError, TokenVerifier
from delivery.webhooks.dispatcher import Dispatcher
from delivery.webhooks.model import Endpoint, SigningSecret, WebhookNotFoundError, WebhookStore
from delivery.webhooks.signing import new_secret
from delivery.webhooks.urls import EndpointUrlError, check_url


class EndpointIn(BaseModel):
    url: str
    recipients: list[str] | Literal["*"] = Field(description='Recipient ids, or "*" for every recipient')
    topics: list[str] | None = Field(default=None, description="Only these topics (default: every topic)")
    ordered: bool = Field(default=False, description="Each recipient's messages in mailbox order, one at a time")
    description: str = ""


class EndpointPatch(BaseModel):
    url: str | None = None
    recipients: list[str] | Literal["*"] | None = None
    topics: list[str] | None = None
    ordered: bool | None = None
    description: str | None = None
    status: Literal["enabled", "disabled"] | None = None


class RotateIn(BaseModel):
    overlap_s: float = Field(default=86400, ge=0, description="How long the old secret keeps signing too")


class RecoverIn(BaseModel):
    since: datetime = Field(description="Re-send the deliveries that failed since this time (ISO-8601)")


@dataclass
class WebhookService:
    store: WebhookStore
    dispatcher: Dispatcher
    verifier: TokenVerifier
    allow_loopback: bool
    allow_private: bool


def webhook_routes(app: FastAPI, service: WebhookService) -> None:
    store = service.store

    @app.post("/v1/webhooks", status_code=201, summary="Add an endpoint; the answer holds its secret, shown once")
    async def add(body: EndpointIn, request: Request) -> dict[str, Any]:
        await _admin(service, request)
        await _check(service, body.url)
        endpoint = Endpoint(
            id=f"ep_{secrets.token_hex(8)}",
            url=body.url,
            recipients=_recipients(body.recipients),
            topics=None if body.topics is None else tuple(body.topics),
            ordered=body.ordered,
            description=body.description,
            secrets=(SigningSecret(new_secret()),),
        )
        await store.add_endpoint(endpoint)
        return {**endpoint.as_json(), "secret": endpoint.secrets[0].secret}

    @app.get("/v1/webhooks", summary="Every endpoint")
    async def listing(request: Request) -> list[dict[str, Any]]:
        await _admin(service, request)
        return [e.as_json() for e in await store.endpoints()]

    @app.get("/v1/webhooks/{endpoint_id}", summary="One endpoint, with its backlog")
    async def show(endpoint_id: str, request: Request) -> dict[str, Any]:
        await _admin(service, request)
        endpoint = await store.endpoint(endpoint_id)
        return {**endpoint.as_json(), "backlog": (await store.backlog()).get(endpoint_id, 0)}

    @app.patch("/v1/webhooks/{endpoint_id}", summary="Change an endpoint (status enabled/disabled enables/disables)")
    async def change(endpoint_id: str, body: EndpointPatch, request: Request) -> dict[str, Any]:
        await _admin(service, request)
        endpoint = await store.endpoint(endpoint_id)
        if body.url is not None:
            await _check(service, body.url)
        changes: dict[str, Any] = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        if "recipients" in changes:
            changes["recipients"] = _recipients(changes["recipients"])
        if "topics" in changes:
            changes["topics"] = tuple(changes["topics"])
        if changes.get("status") == "enabled":
            changes |= {"disabled_reason": None, "failing_since": None}
        elif changes.get("status") == "disabled":
            changes["disabled_reason"] = "manual"
        updated = replace(endpoint, **changes)
        await store.save_endpoint(updated)
        return updated.as_json()

    @app.delete("/v1/webhooks/{endpoint_id}", status_code=204, summary="Remove an endpoint and its deliveries")
    async def remove(endpoint_id: str, request: Request) -> Response:
        await _admin(service, request)
        await store.delete_endpoint(endpoint_id)
        return Response(status_code=204)

    @app.post("/v1/webhooks/{endpoint_id}/rotate-secret", summary="A new secret; the old one signs for the overlap")
    async def rotate(endpoint_id: str, body: RotateIn, request: Request) -> dict[str, Any]:
        await _admin(service, request)
        endpoint = await store.endpoint(endpoint_id)
        until = time.time() + body.overlap_s
        old = tuple(
            replace(s, expires_at=min(s.expires_at or until, until))
            for s in endpoint.secrets
            if s.expires_at is None or s.expires_at > time.time()
        )
        fresh = SigningSecret(new_secret())
        await store.save_endpoint(replace(endpoint, secrets=(fresh, *old)))
        return {"id": endpoint_id, "secret": fresh.secret, "previousSecretsExpireAt": until}

    @app.post("/v1/webhooks/{endpoint_id}/recover", summary="Send again what failed since a time")
    async def recover(endpoint_id: str, body: RecoverIn, request: Request) -> dict[str, Any]:
        await _admin(service, request)
        count = await store.recover(endpoint_id, body.since.timestamp())
        service.dispatcher.wake()
        return {"id": endpoint_id, "recovered": count}

    @app.post("/v1/webhooks/{endpoint_id}/test", summary="POST a test message to the endpoint now")
    async def test(endpoint_id: str, request: Request) -> dict[str, Any]:
        await _admin(service, request)
        return (await service.dispatcher.send_test(await store.endpoint(endpoint_id))).as_json()

    @app.get("/v1/webhooks/{endpoint_id}/attempts", summary="The newest attempts first")
    async def attempts(
        endpoint_id: str, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        await _admin(service, request)
        await store.endpoint(endpoint_id)
        return [a.as_json() for a in await store.attempts(endpoint_id, limit)]

    @app.exception_handler(WebhookNotFoundError)
    async def not_found(_: Request, exc: WebhookNotFoundError) -> JSONResponse:
        return JSONResponse({"error": {"code": "WebhookNotFound", "message": str(exc)}}, status_code=404)

    @app.exception_handler(EndpointUrlError)
    async def bad_url(_: Request, exc: EndpointUrlError) -> JSONResponse:
        return JSONResponse({"error": {"code": "InvalidEndpointUrl", "message": str(exc)}}, status_code=422)


async def _admin(service: WebhookService, request: Request) -> None:
    authorization = request.headers.get("authorization") or ""
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    principal = await service.verifier.verify(token)
    if not principal.admin:
        raise ForbiddenError("the webhook API needs a token with the admin scope (hubstream clients token X --admin)")


async def _check(service: WebhookService, url: str) -> None:
    await asyncio.to_thread(check_url, url, allow_loopback=service.allow_loopback, allow_private=service.allow_private)


def _recipients(value: list[str] | str) -> tuple[str, ...] | None:
    return None if value == "*" else tuple(value)
