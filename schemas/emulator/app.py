"""FastAPI factory for the emulator: Azure's data-plane paths, the ``/$hubstream`` admin API, one error shape."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from schemas.emulator.admin_api import PREFIX, admin_router
from schemas.emulator.azure_api import AzureApi
from schemas.emulator.entra_auth import EntraAuth, EntraTokenCheck
from schemas.emulator.errors import EmulatorError, InvalidRequestError, UnauthorizedError
from schemas.emulator.store import SchemaStore

_HTTP_CODES = {400: "InvalidRequest", 401: "Unauthorized", 404: "ItemNotFound", 405: "MethodNotAllowed"}


def create_app(store: SchemaStore, *, auth_token: str | None = None, entra: EntraAuth | None = None) -> FastAPI:
    """The emulator app. With ``auth_token``, every request but the health check needs ``Bearer <token>``.

    With ``entra``, Azure's data-plane paths take only Entra ID tokens for the Schema Registry (entra_auth.py);
    the ``/$hubstream`` admin API, which stands in for the portal, keeps ``auth_token`` (or none).
    """
    app = FastAPI(title="hubstream Schema Registry emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(EmulatorError, _emulator_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)

    auth = [Depends(bearer_check(auth_token))] if auth_token else []
    data_plane_auth = [Depends(EntraTokenCheck(entra))] if entra else auth
    app.add_api_route(f"{PREFIX}/health", _health, methods=["GET"])
    app.include_router(admin_router(store), dependencies=auth)
    # last: everything that is not the admin API is an Azure path (or a 404 in Azure's shape)
    app.add_api_route(
        "/{path:path}",
        AzureApi(store).handle,
        methods=["GET", "PUT", "POST", "PATCH", "DELETE"],
        dependencies=data_plane_auth,
        include_in_schema=False,
    )
    return app


def bearer_check(token: str) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise UnauthorizedError("This registry requires an Authorization header with a bearer token.")
        if not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise UnauthorizedError("The bearer token is not valid for this registry.")

    return check


def _health() -> dict[str, str]:
    return {"status": "ok"}


def _error(status: int, code: str, message: str) -> JSONResponse:
    # no WWW-Authenticate on 401: azure-core's bearer policy would take it for a claims challenge
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers={"x-ms-error-code": code}
    )


async def _emulator_error(request: Request, exc: EmulatorError) -> JSONResponse:
    return _error(exc.status, exc.code, exc.message)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
    return _error(InvalidRequestError.status, InvalidRequestError.code, f"Invalid request: {problems}")


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "InvalidRequest"), str(exc.detail))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this, so uvicorn still logs the traceback
    return _error(500, "InternalServerError", f"The emulator failed: {type(exc).__name__}: {exc}")
