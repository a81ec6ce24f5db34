"""The emulator behind Entra ID: only bearer tokens an Entra tenant issued for the Schema Registry are accepted.

What Azure checks on the data plane, as far as a client can see it: an RS256 JWT signed by a key of the tenant's
JWKS, from the tenant's issuer (``https://sts.windows.net/<tenant>/``), for the audience
``https://eventhubs.azure.net`` (what a token for scope ``https://eventhubs.azure.net/.default`` carries), not
expired. Anything else is a 401 in Azure's error shape, without ``WWW-Authenticate`` (azure-core would take that
for a claims challenge). The message says what is wrong with the token, so a client sees why in its
``ClientAuthenticationError``.

The JWKS is a file (``devstack.entra`` writes it) or an https URL; a file is read again when it changes, so a
fake Entra that makes a new key does not need an emulator restart. Role assignments are not emulated: any
application of the tenant may read and write.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from fastapi import Request

from hubstream.errors import ConfigurationError
from schemas.emulator.errors import UnauthorizedError

SCHEMA_REGISTRY_AUDIENCE = "https://eventhubs.azure.net"
SCHEMA_REGISTRY_SCOPE = SCHEMA_REGISTRY_AUDIENCE + "/.default"
_LEEWAY_S = 60  # clock skew Entra's own validators allow (5 min) is more than two local processes need


@dataclass(frozen=True)
class EntraAuth:
    """Which tokens the emulator takes: from ``issuer``, signed by a key in ``jwks`` (a file path or https URL)."""

    jwks: str
    issuer: str
    audience: str = SCHEMA_REGISTRY_AUDIENCE

    def __post_init__(self) -> None:
        if not self.issuer.startswith("https://"):
            raise ConfigurationError(
                f"the Entra issuer must be an https URL, e.g. https://sts.windows.net/<tenant>/ (got {self.issuer!r})"
            )
        if not self.jwks.startswith("https://") and not _path(self.jwks).exists():
            raise ConfigurationError(
                f"the Entra JWKS {self.jwks} does not exist; pass the fake Entra's jwks.json "
                "(<state-dir>/entra/jwks.json) or an https JWKS URL"
            )


class EntraTokenCheck:
    """A FastAPI dependency: raises ``UnauthorizedError`` unless the request carries a valid Entra token."""

    def __init__(self, auth: EntraAuth) -> None:
        self.auth = auth
        self._keys = _Keys(auth.jwks)

    def __call__(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError(
                "This registry requires Entra ID: send 'Authorization: Bearer <token>' with a token for scope "
                f"{SCHEMA_REGISTRY_SCOPE} (HUBSTREAM_REGISTRY__CREDENTIAL=azure)."
            )
        self.claims(token.strip())

    def claims(self, token: str) -> dict[str, Any]:
        """The token's verified claims, or ``UnauthorizedError`` saying what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise UnauthorizedError("The bearer token is not a JWT; this registry takes Entra ID tokens.") from None
        if header.get("alg") != "RS256":
            raise UnauthorizedError(f"InvalidSignature: tokens must be RS256-signed, not {header.get('alg')!r}.")
        key = self._keys.get(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.auth.audience,
                issuer=self.auth.issuer,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthorizedError("ExpiredToken: the bearer token has expired; get a new one.") from None
        except jwt.InvalidAudienceError:
            raise UnauthorizedError(
                f"InvalidAudience: the token is for {_unverified(token, 'aud')!r}, not {self.auth.audience}; "
                f"request it for scope {SCHEMA_REGISTRY_SCOPE}."
            ) from None
        except jwt.InvalidIssuerError:
            raise UnauthorizedError(
                f"InvalidIssuer: the token was issued by {_unverified(token, 'iss')!r}, not {self.auth.issuer} "
                "(another tenant?)."
            ) from None
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError(f"InvalidToken: the bearer token is not valid here: {exc}.") from None
        return claims


class _Keys:
    """The JWKS by key id; a file is re-read when it changed, a URL fetched (and cached) by PyJWKClient."""

    def __init__(self, source: str) -> None:
        self._client = jwt.PyJWKClient(source, cache_keys=True, lifespan=300) if source.startswith("https://") else None
        self._path = None if self._client else _path(source)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._by_kid: dict[str, Any] = {}

    def get(self, kid: str) -> Any:
        if self._client is not None:
            try:
                return self._client.get_signing_key(kid).key
            except jwt.PyJWKClientError as exc:
                raise UnauthorizedError(f"InvalidSignature: no key {kid!r} in the tenant's JWKS ({exc}).") from None
        with self._lock:
            self._reload()
            key = self._by_kid.get(kid)
        if key is None:
            raise UnauthorizedError(f"InvalidSignature: the token's signing key {kid!r} is not one of the tenant's.")
        return key

    def _reload(self) -> None:
        assert self._path is not None
        stat = self._path.stat()
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return
        keys = jwt.PyJWKSet.from_dict(json.loads(self._path.read_text()))
        self._by_kid = {k.key_id: k.key for k in keys.keys if k.key_id}
        self._stamp = stamp


def _path(source: str) -> Path:
    return Path(source.removeprefix("file://"))


def _unverified(token: str, claim: str) -> object:
    return jwt.decode(token, options={"verify_signature": False}).get(claim)
