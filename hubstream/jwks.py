"""Verifying RS256 bearer JWTs against the keys of a JWKS URL (an Entra ID tenant, or any OpenID provider).

Shared by the producer API and the delivery node. The JWKS is fetched over HTTP only when a token names a key
id it has not seen (PyJWKClient caches the set and each key, and refetches at most once per cooldown), and
always in a worker thread: the event loop never waits on the identity provider. The algorithm is fixed here,
never taken from the token.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPublicKeys


class JwksKeys:
    """The signing keys of one JWKS URL, cached (``lifespan_s``) and fetched off the event loop."""

    def __init__(
        self, url: str, *, ca_file: Path | None = None, lifespan_s: float = 300, timeout_s: float = 10
    ) -> None:
        context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        self.url = url
        self._client = jwt.PyJWKClient(
            url, cache_keys=True, lifespan=lifespan_s, timeout=timeout_s, ssl_context=context
        )

    async def key_for(self, token: str) -> AllowedPublicKeys:
        """The key that signed ``token`` (by its ``kid``); jwt.PyJWKClientError when the JWKS has none."""
        signing_key = await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        key: AllowedPublicKeys = signing_key.key
        return key


async def verify_rs256(
    token: str,
    keys: JwksKeys,
    *,
    audience: str | list[str] | None,
    issuer: str | None,
    leeway_s: float,
    require: list[str],
) -> dict[str, Any]:
    """The claims of an RS256 ``token`` signed by one of ``keys``, with this audience and issuer.

    Raises jwt.InvalidTokenError (ExpiredSignatureError among them) or jwt.PyJWKClientError.
    """
    if jwt.get_unverified_header(token).get("alg") != "RS256":
        raise jwt.InvalidAlgorithmError("only RS256 tokens signed by the configured JWKS are accepted")
    key = await keys.key_for(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        leeway=leeway_s,
        options={"require": require},
    )
    return claims
