"""Who may read a mailbox: a bearer JWT whose ``sub`` is the recipient, or one with the admin scope.

Tokens are verified with a shared secret (HS256, what ``hubstream clients token`` mints) or with the keys of a
JWKS URL (RS256, so an application's own identity provider can mint them). ``exp`` and ``sub`` are required and
``aud`` must be the configured audience; the algorithm list is fixed by configuration, never taken from the token.
A token comes in ``Authorization: Bearer ...`` or, for browsers' EventSource (which cannot set headers), in
``?access_token=``. No database is touched, so a reconnect storm costs only signature checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from hubstream.errors import ConfigurationError, HubstreamError
from hubstream.jwks import JwksKeys
from hubstream.settings import DeliveryAuthSettings

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPublicKeys


class AuthError(HubstreamError):
    status = 401
    code = "Unauthorized"


class ForbiddenError(AuthError):
    status = 403
    code = "Forbidden"


@dataclass(frozen=True)
class Principal:
    subject: str
    admin: bool
    expires_at: float

    def may_read(self, recipient: str) -> None:
        if not self.admin and self.subject != recipient:
            raise ForbiddenError(f"this token is for {self.subject!r}; it cannot read {recipient!r}'s mailbox")


class TokenVerifier:
    def __init__(self, settings: DeliveryAuthSettings) -> None:
        if settings.secret is None and settings.jwks_url is None:
            raise ConfigurationError(
                "delivery needs a way to check client tokens: set HUBSTREAM_DELIVERY__AUTH__SECRET "
                "(HS256) or HUBSTREAM_DELIVERY__AUTH__JWKS_URL (RS256)"
            )
        self._settings = settings
        self._jwks = JwksKeys(settings.jwks_url) if settings.jwks_url else None

    async def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("no token: send Authorization: Bearer <token> (or ?access_token= on the stream route)")
        try:
            key, algorithm = await self._key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired: get a new one and reconnect with your last cursor") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise AuthError(f"the token is not valid here: {exc}") from None
        scopes = str(claims.get("scope", "")).split()
        return Principal(str(claims["sub"]), self._settings.admin_scope in scopes, float(claims["exp"]))

    async def _key(self, token: str) -> tuple[AllowedPublicKeys | str, str]:
        if self._jwks is not None and jwt.get_unverified_header(token).get("alg") == "RS256":
            return await self._jwks.key_for(token), "RS256"  # fetched off the event loop when the key id is new
        if self._settings.secret is None:
            raise jwt.InvalidTokenError("only RS256 tokens signed by the configured JWKS are accepted")
        return self._settings.secret.get_secret_value(), "HS256"


def mint_token(
    secret: str,
    subject: str,
    *,
    ttl_s: float,
    admin: bool = False,
    audience: str = "hubstream-delivery",
    issuer: str | None = None,
    admin_scope: str = "hubstream.admin",
) -> str:
    """An HS256 client token for ``subject`` (what ``hubstream clients token`` prints)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "aud": audience, "iat": now, "exp": now + int(ttl_s)}
    if issuer:
        claims["iss"] = issuer
    if admin:
        claims["scope"] = admin_scope
    return jwt.encode(claims, secret, algorithm="HS256")
