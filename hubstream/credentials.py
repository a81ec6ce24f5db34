"""Credentials: a static token for the local emulator; Entra ID through azure-identity for Azure.

One Entra credential per process (per authority and trust), shared by every Kafka client's ``oauth_cb`` and the
Schema Registry client, so azure-identity's token cache serves them all and a refresh is one request:

    EntraCredential            wraps DefaultAzureCredential (or any TokenCredential): every get_token is bounded
                               by ``eventhubs.token_timeout_s``, one request per scope at a time, and a failure is an
                               EntraTokenError naming the credential and the scope
    OAuthBearerTokens          librdkafka's ``oauth_cb`` for one scope: ``(token, expiry epoch s)``; librdkafka calls
                               it again at 80 % of the token's life (on its background thread from
                               confluent-kafka 2.13), so open connections re-authenticate without reconnecting
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, TokenCredential

from hubstream.errors import EntraTokenError
from hubstream.settings import Settings

log = logging.getLogger(__name__)

# Tokens from StaticTokenCredential never need refreshing within a process's life.
_STATIC_TOKEN_LIFETIME_S = 24 * 3600
PUBLIC_CLOUD_AUTHORITY = "login.microsoftonline.com"
# azure-identity's AzureAuthorityHosts: these take instance discovery; any other authority goes without it
_MICROSOFT_AUTHORITIES = {
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
}


class StaticTokenCredential:
    """A TokenCredential that always returns the same bearer token (the emulator's optional check)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + _STATIC_TOKEN_LIFETIME_S)


class EntraCredential:
    """A TokenCredential over an azure-identity credential whose every call is bounded and explained."""

    def __init__(self, inner: TokenCredential, *, timeout_s: float, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or type(inner).__name__
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[str, ...], Future[AccessToken]] = {}
        self._tokens: dict[tuple[str, ...], tuple[AccessToken, float]] = {}  # scopes -> (token, lifetime s)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A token for ``scopes`` within ``timeout_s``, or EntraTokenError; concurrent callers share one request.

        A token is handed out again while more than half its life is left, so clients that start together share
        it; librdkafka asks again at 80 % of a token's life, past that half, and so always gets a new one.
        """
        key = tuple(scopes)
        cached = self._tokens.get(key)
        if cached is not None and not kwargs and cached[0].expires_on - time.time() > cached[1] / 2:
            return cached[0]
        token = self._request(key, kwargs)
        self._tokens[key] = (token, max(token.expires_on - time.time(), 0.0))
        return token

    def _request(self, key: tuple[str, ...], kwargs: dict[str, Any]) -> AccessToken:
        scopes = key
        with self._lock:
            future = self._in_flight.get(key)
            if future is None:
                future = self._in_flight[key] = Future()
                threading.Thread(
                    target=self._fetch, args=(key, future, kwargs), name="entra-token", daemon=True
                ).start()
        try:
            token = future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise EntraTokenError(self.name, " ".join(scopes), f"no answer within {self.timeout_s:g} s") from None
        except EntraTokenError:
            raise
        except Exception as exc:  # azure-identity raises several kinds; each is explained the same way
            raise EntraTokenError(self.name, " ".join(scopes), _condensed(exc)) from exc
        if token.expires_on <= time.time() + 1:
            raise EntraTokenError(self.name, " ".join(scopes), "it returned a token that has already expired")
        return token

    def _fetch(self, key: tuple[str, ...], future: Future[AccessToken], kwargs: dict[str, Any]) -> None:
        # a hung request keeps only this thread; the caller gave up at timeout_s and the next call starts afresh
        try:
            future.set_result(self.inner.get_token(*key, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)
        finally:
            with self._lock:
                if self._in_flight.get(key) is future:
                    del self._in_flight[key]

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class OAuthBearerTokens:
    """librdkafka's ``oauth_cb`` for one scope. Logs each new token; ``refreshes`` counts them after the first."""

    def __init__(self, credential: EntraCredential, scope: str) -> None:
        self.credential = credential
        self.scope = scope
        self.tokens = 0
        self.failures = 0
        self.last_fetch_s: float | None = None
        self._last: str | None = None
        self._lock = threading.Lock()

    @property
    def refreshes(self) -> int:
        return max(self.tokens - 1, 0)

    def __call__(self, _oauthbearer_config: str) -> tuple[str, float]:
        started = time.monotonic()
        try:
            token = self.credential.get_token(self.scope)
        except EntraTokenError as exc:
            self.failures += 1
            # librdkafka turns the raised error into an authentication error for the client's error_cb and
            # retries in 10 s; logged here too, with the scope and the credential
            log.error("%s", exc, extra={"event": "entra_token_failed", "scope": self.scope})
            raise
        with self._lock:
            self.last_fetch_s = time.monotonic() - started
            if token.token != self._last:
                self._last = token.token
                self.tokens += 1
                kind = "refreshed" if self.tokens > 1 else "acquired"
                log.info(
                    "Entra ID token %s for %s by %s: valid %d s more (token %d, %.0f ms)",
                    kind,
                    self.scope,
                    self.credential.name,
                    token.expires_on - time.time(),
                    self.tokens,
                    self.last_fetch_s * 1000,
                    extra={"event": "entra_token", "scope": self.scope, "tokens": self.tokens},
                )
        return token.token, float(token.expires_on)


_shared_lock = threading.Lock()
_credentials: dict[tuple[str | None, str | None, float], EntraCredential] = {}
_oauth: dict[tuple[int, str], OAuthBearerTokens] = {}


def azure_credential(settings: Settings) -> EntraCredential:
    """The process's one Entra credential for these settings (authority, trust, timeout), made on first use."""
    eh = settings.eventhubs
    trust = eh.ca_file or settings.registry.ca_file
    key = (eh.authority, str(trust) if trust else None, eh.token_timeout_s)
    with _shared_lock:
        credential = _credentials.get(key)
        if credential is None:
            from azure.identity import DefaultAzureCredential

            kwargs = credential_options(eh.authority, trust)
            credential = EntraCredential(DefaultAzureCredential(**kwargs), timeout_s=eh.token_timeout_s)
            _credentials[key] = credential
        return credential


def credential_options(authority: str | None, trust: object | None = None) -> dict[str, Any]:
    """azure-identity keyword arguments for an authority: the public cloud by default; any authority that is not
    Microsoft's (the local fake Entra ID) without instance discovery and trusting ``trust`` (a CA file)."""
    if not authority:
        return {}
    url = authority if "://" in authority else f"https://{authority}"
    host = (urlsplit(url).hostname or "").lower()
    if host in _MICROSOFT_AUTHORITIES:
        return {"authority": url}
    options: dict[str, Any] = {"authority": url, "disable_instance_discovery": True}
    if trust is not None:
        options["connection_verify"] = str(trust)
    return options


def oauth_tokens(settings: Settings, scope: str) -> OAuthBearerTokens:
    """The shared ``oauth_cb`` for ``scope``: producer, consumer and admin clients of a process use one."""
    credential = azure_credential(settings)
    with _shared_lock:
        key = (id(credential), scope)
        tokens = _oauth.get(key)
        if tokens is None:
            tokens = _oauth[key] = OAuthBearerTokens(credential, scope)
        return tokens


def registry_credential(settings: Settings) -> TokenCredential:
    """The credential the registry client uses: ``static`` locally, ``azure`` (Entra ID) for Event Hubs."""
    kind = settings.registry.credential or ("azure" if settings.profile == "eventhubs" else "static")
    if kind == "static":
        return StaticTokenCredential(settings.registry.token.get_secret_value())
    return azure_credential(settings)


def _condensed(exc: BaseException, limit: int = 800) -> str:
    """azure-identity's message on one line (DefaultAzureCredential lists each credential it tried on its own)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("To mitigate this issue")]
    text = " ".join(lines).rstrip(".") or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
