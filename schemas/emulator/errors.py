"""Errors the emulator answers with, shaped like Azure's.

Azure answers an error with JSON, the header ``x-ms-error-code: <code>`` and the body
``{"error": {"code": ..., "message": ...}}``; azure-core reads the code and message from it and maps
401 to ``ClientAuthenticationError``, 404 to ``ResourceNotFoundError``, 409 to ``ResourceExistsError``
and any other failure to ``HttpResponseError``. Each error here carries the HTTP status and that
``code``; ``app.py`` turns them into responses in one handler.

    HubstreamError (hubstream.errors; the server side, apart from the client's RegistryError)
    └── EmulatorError
        ├── InvalidRequestError        400 InvalidRequest      malformed id, empty body, bad name
        ├── InvalidSchemaError         400 InvalidSchema       the schema text does not parse
        ├── IncompatibleSchemaError    400 IncompatibleSchema  breaks the group's compatibility mode
        ├── UnauthorizedError          401 Unauthorized        bearer token missing or wrong
        ├── NotFoundError              404 ItemNotFound        group, schema, version or id unknown
        ├── MethodNotAllowedError      405 MethodNotAllowed
        ├── GroupConflictError         409 Conflict            admin: changing a used group's format
        ├── PayloadTooLargeError       413 RequestEntityTooLarge  a body over 1 MB (code not seen from Azure)
        └── UnsupportedSchemaTypeError 415 InvalidSchemaType   unknown format, or not the group's format
"""

from __future__ import annotations

from typing import ClassVar

from hubstream.errors import HubstreamError


class EmulatorError(HubstreamError):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalServerError"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequestError(EmulatorError):
    status = 400
    code = "InvalidRequest"


class InvalidSchemaError(EmulatorError):
    status = 400
    code = "InvalidSchema"


class IncompatibleSchemaError(EmulatorError):
    """400, not 409: the SDK maps 409 to ``ResourceExistsError``, which callers treat as "already there"."""

    status = 400
    code = "IncompatibleSchema"


class UnauthorizedError(EmulatorError):
    status = 401
    code = "Unauthorized"


class NotFoundError(EmulatorError):
    status = 404
    code = "ItemNotFound"


class MethodNotAllowedError(EmulatorError):
    status = 405
    code = "MethodNotAllowed"


class GroupConflictError(EmulatorError):
    status = 409
    code = "Conflict"


class PayloadTooLargeError(EmulatorError):
    status = 413
    code = "RequestEntityTooLarge"


class UnsupportedSchemaTypeError(EmulatorError):
    status = 415
    code = "InvalidSchemaType"
