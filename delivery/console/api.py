"""The operators' web console on the delivery node: one static page and the admin-only JSON it polls.

The page itself (``GET /console``) is static and holds no data, so it is served to anyone; it asks for an admin
token once, keeps it in the tab's ``sessionStorage`` and sends it as ``Authorization: Bearer`` on every fetch of
``/console/api/...``. Those answer 401 without a valid token and 403 for a token without the admin scope. The live
view of a recipient's stream is the ordinary ``/v1/mailboxes/{r}/stream`` with ``?access_token=`` (EventSource
cannot send headers), which an admin token may read for any recipient: nothing new is minted or exposed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from delivery.auth import ForbiddenError, TokenVerifier
from delivery.console.data import ConsoleData
from hubstream.errors import HubstreamError

STATIC = Path(__file__).parent / "static"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class ConsoleService:
    data: ConsoleData
    verifier: TokenVerifier


def console_routes(app: FastAPI, service: ConsoleService) -> None:
    data = service.data

    @app.get("/console", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "console.html", media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/console/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Any:
        if name not in _ASSETS:
            return JSONResponse({"error": {"code": "NotFound", "message": f"no asset {name!r}"}}, status_code=404)
        return FileResponse(STATIC / name, media_type=_ASSETS[name], headers=_PAGE_HEADERS)

    @app.get("/console/api/node", summary="Console: this node's group, topics and the stream event names")
    async def node(request: Request) -> dict[str, Any]:
        await _admin(service, request)
        return {"group": data.group, "topics": data.watched_topics(), "schemas": data.schemas()}

    @app.get("/console/api/topics", summary="Console: partitions of the watched topics and their dead letters")
    async def topics(request: Request) -> JSONResponse:
        await _admin(service, request)
        return await _answer(data.topics_view())

    @app.get("/console/api/groups", summary="Console: every consumer group with state, members and lag")
    async def groups(request: Request) -> JSONResponse:
        await _admin(service, request)
        return await _answer(data.groups_view())

    @app.get("/console/api/groups/{group:path}", summary="Console: a group's members, who owns what, and lag")
    async def group(group: str, request: Request) -> JSONResponse:
        await _admin(service, request)
        return await _answer(data.group_view(group))


_ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}


async def _admin(service: ConsoleService, request: Request) -> None:
    authorization = request.headers.get("authorization") or ""
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    principal = await service.verifier.verify(token)  # AuthError: 401, answered by the app's handler
    if not principal.admin:
        raise ForbiddenError("the console needs a token with the admin scope (hubstream clients token X --admin)")


async def _answer(view: Awaitable[dict[str, Any]]) -> JSONResponse:
    try:
        return JSONResponse(await view, headers={"Cache-Control": "no-store"})
    except HubstreamError as exc:  # the broker is down or slow: the page says so and keeps polling
        body = {"error": {"code": type(exc).__name__, "message": str(exc)}}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
