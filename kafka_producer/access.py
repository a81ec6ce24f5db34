"""Who may publish, and which requests the producer API takes at all.

Auth is off only in the ``local`` profile by default (``api.auth`` overrides it either way). When on, every
publish needs ``Authorization: Bearer <credential>`` (or ``X-API-Key: <key>``), where the credential is

- an API key (``hsk_...``, see api_keys.py), optionally limited to some topics: another topic is a 403;
- or an Entra ID (any OpenID provider's) RS256 JWT, signed by a key of ``api.jwks_url`` with ``api.issuer``
  and ``api.audience``, and not expired. A valid token may publish to every topic.

Without a credential, or with one that is not valid, the answer is 401 with ``WWW-Authenticate: Bearer``.

Two checks stop a web page in a developer's browser from publishing to a local API: a publish must be
``Content-Type: application/json`` (415 otherwise), because a "simple" cross-site request can only send
``text/plain``, form or multipart bodies; and when the API is bound to a loopback address, the ``Host``
header must be ``localhost``, ``127.0.0.1`` or ``[::1]`` (any port), which a DNS-rebound name is not.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import jwt
from fastapi import Request

from hubstream.errors import ConfigurationError, HubstreamError
from hubstream.jwks import JwksKeys, verify_rs256
from hubstream.settings import Settings
from kafka_producer.api_keys import PREFIX, ApiKeyStore, key_store_path

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]"}


class PublishAuthError(HubstreamError):
    """401: no credential, or one that is not valid here."""

    status = 401
    code = "Unauthorized"


class TopicForbiddenError(PublishAuthError):
    """403: a valid API key that is not allowed to publish to this topic."""

    status = 403
    code = "Forbidden"


@dataclass(frozen=True)
class Publisher:
    """Who a request publishes as: ``key:<id>``, ``token:<sub>``, or ``anonymous`` with auth off."""

    identity: str


class Access:
    def __init__(self, settings: Settings) -> None:
        api = settings.api
        self.enabled = api.auth if api.auth is not None else settings.profile != "local"
        self.keys = ApiKeyStore(key_store_path(settings.state_dir, api.api_keys_file))
        self._settings = api
        token_settings = (api.jwks_url, api.issuer, api.audience)
        if any(token_settings) and not all(token_settings):
            raise ConfigurationError(
                "Entra ID tokens for the producer API need all of HUBSTREAM_API__JWKS_URL, HUBSTREAM_API__ISSUER "
                "and HUBSTREAM_API__AUDIENCE"
            )
        self._jwks = JwksKeys(api.jwks_url, ca_file=api.jwks_ca_file) if api.jwks_url else None

    async def authorize(self, request: Request, topic: str) -> Publisher:
        if not self.enabled:
            return Publisher("anonymous")
        credential = _credential(request)
        if credential is None:
            raise PublishAuthError(
                "this API needs a credential: send Authorization: Bearer <API key or Entra ID token> "
                "(create a key with `hubstream api-keys create`)"
            )
        if credential.startswith(PREFIX):
            key = self.keys.verify(credential)
            if key is None:
                raise PublishAuthError("the API key is not valid (unknown, revoked or mistyped); use an active key")
            if not key.may_publish(topic):
                raise TopicForbiddenError(
                    f"API key {key.id} may publish only to {', '.join(key.topics or ())}, not to {topic!r}; "
                    "use a key for this topic"
                )
            return Publisher(f"key:{key.id}")
        return Publisher(f"token:{await self._token_subject(credential)}")

    async def _token_subject(self, token: str) -> str:
        if self._jwks is None:
            raise PublishAuthError(
                "this API takes API keys only (no HUBSTREAM_API__JWKS_URL is set); send a key (hsk_...)"
            )
        try:
            claims = await verify_rs256(
                token,
                self._jwks,
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway_s=self._settings.leeway_s,
                require=["exp", "iss", "aud"],
            )
        except jwt.ExpiredSignatureError:
            raise PublishAuthError("the token has expired; get a new one from Entra ID") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise PublishAuthError(f"the token is not valid here: {exc}") from None
        return str(claims.get("oid") or claims.get("sub") or claims.get("appid") or "unknown")


def _credential(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None) -> bool:
    """Whether a Host header names this machine by a loopback name (with any port, or none)."""
    if not header:
        return False
    host = header.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        host, port = name + "]", rest.removeprefix(":")
    else:
        host, _, port = host.partition(":")
    return host in _LOOPBACK_NAMES and (port == "" or port.isdigit())


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json"
