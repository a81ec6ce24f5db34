"""The fake Entra ID's HTTPS server (see devstack/entra.py): OpenID configuration, token endpoint, JWKS, stats."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.entra import (
    DEFAULT_TOKEN_LIFETIME_S,
    HOST,
    STATS_PATH,
    FakeEntra,
    jwks_of,
    mint_token,
    prepare,
)
from devstack.tls import ensure_tls_files

log = logging.getLogger(__name__)


class EntraServer:
    """The HTTPS server, bound on construction; ``serve_forever`` (CLI) or ``start``/``stop`` on a thread (tests).

    ``fail_next(n)`` makes the next ``n`` token requests fail with AAD's ``temporarily_unavailable`` (HTTP 503).
    """

    def __init__(self, entra: FakeEntra, *, host: str = HOST) -> None:
        tls = ensure_tls_files(entra.ca_file.parent.parent)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        self._http = _Server((host, entra.port), _Handler)
        # the handshake happens in the request's thread, so a stalled client never blocks accept()
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True, do_handshake_on_connect=False)
        self.entra = replace(entra, authority=f"https://localhost:{self._http.server_address[1]}")
        self._http.state = _State(self.entra, entra.signing_key())
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> dict[str, Any]:
        return self._http.state.stats()

    def fail_next(self, count: int = 1) -> None:
        self._http.state.fail_next = count

    def set_token_lifetime(self, seconds: int) -> None:
        self._http.state.lifetime_s = seconds

    def serve_forever(self) -> None:
        self._http.serve_forever(poll_interval=0.2)

    def start(self) -> FakeEntra:
        self._thread = threading.Thread(target=self.serve_forever, name="fake-entra", daemon=True)
        self._thread.start()
        return self.entra

    def stop(self) -> None:
        """Stop a server started with ``start`` (from another thread)."""
        self._http.shutdown()
        self.stop_listening()
        if self._thread is not None:
            self._thread.join(5)

    def stop_listening(self) -> None:
        self._http.server_close()


@contextmanager
def serving(
    state_dir: Path, port: int = 0, *, token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
) -> Iterator[EntraServer]:
    """A fake Entra on a thread of this process (``port=0``: a free one), stopped on exit."""
    server = EntraServer(prepare(state_dir, port, token_lifetime_s=token_lifetime_s))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _State:
    def __init__(self, entra: FakeEntra, key: rsa.RSAPrivateKey) -> None:
        self.entra = entra
        self.key = key
        self.lifetime_s = entra.token_lifetime_s
        self.fail_next = 0
        self._lock = threading.Lock()
        self._issued: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()

    def count(self, audience: str | None, refused: str | None = None) -> None:
        with self._lock:
            if refused:
                self._refused[refused] += 1
            elif audience:
                self._issued[audience] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tokens_issued": sum(self._issued.values()),
                "by_audience": dict(self._issued),
                "refused": dict(self._refused),
            }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class _AadError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route: Any) -> None:
        try:
            status, body = route(urlsplit(self.path).path.rstrip("/").split("/")[1:])
        except _AadError as exc:
            self.server.state.count(None, refused=exc.error)
            status, body = exc.status, _error_body(exc)
        except (ssl.SSLError, ConnectionError):
            return
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def _get(self, parts: list[str]) -> tuple[int, Any]:
        state = self.server.state
        if "/" + "/".join(parts) == STATS_PATH:
            return 200, state.stats()
        tenant, rest = (parts[0], parts[1:]) if parts else ("", [])
        if rest in (["v2.0", ".well-known", "openid-configuration"], [".well-known", "openid-configuration"]):
            self._check_tenant(tenant)
            return 200, _openid_configuration(state.entra)
        if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
            self._check_tenant(tenant)
            return 200, jwks_of(state.key)
        raise _AadError(404, "not_found", 90000, f"No such endpoint: GET {self.path}")

    def _post(self, parts: list[str]) -> tuple[int, Any]:
        form = self._form()
        tenant, rest = (parts[0], parts[1:]) if parts else ("", [])
        if rest not in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            raise _AadError(404, "not_found", 90000, f"No such endpoint: POST {self.path}")
        self._check_tenant(tenant)
        return 200, self._token(form)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        form = {key: values[-1] for key, values in parse_qs(raw).items()}
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":  # Kafka's Java OAuthBearerLoginCallbackHandler sends these
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
            form.setdefault("client_id", client_id)
            form.setdefault("client_secret", secret)
        return form

    def _check_tenant(self, tenant: str) -> None:
        entra = self.server.state.entra
        if tenant not in (entra.tenant_id, "organizations", "common"):
            raise _AadError(
                400,
                "invalid_tenant",
                90002,
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                f"and are signing into the correct cloud (this fake knows tenant {entra.tenant_id}).",
            )

    def _token(self, form: Mapping[str, str]) -> dict[str, Any]:
        state = self.server.state
        entra = state.entra
        if form.get("grant_type") != "client_credentials":
            raise _AadError(
                400,
                "unsupported_grant_type",
                70003,
                f"AADSTS70003: The app requested an unsupported grant type '{form.get('grant_type')}'; "
                "this fake supports client_credentials only.",
            )
        client_id = form.get("client_id", "")
        if client_id != entra.client_id:
            raise _AadError(
                400,
                "unauthorized_client",
                700016,
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
                f"'{entra.tenant_id}'. Check AZURE_CLIENT_ID.",
            )
        secret = form.get("client_secret", "")
        if not secret or not secrets.compare_digest(secret.encode(), entra.client_secret.encode()):
            raise _AadError(
                401,
                "invalid_client",
                7000215,
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app '{entra.client_id}'.",
            )
        scopes = form.get("scope", "").split()
        resource = next((s.removesuffix("/.default") for s in scopes if s.endswith("/.default")), None)
        if not resource:
            raise _AadError(
                400,
                "invalid_scope",
                1002012,
                f"AADSTS1002012: The provided value for scope {form.get('scope', '')!r} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the resource identifier.",
            )
        if state.fail_next > 0:
            state.fail_next -= 1
            raise _AadError(503, "temporarily_unavailable", 50196, "AADSTS50196: The service is temporarily busy.")
        lifetime = state.lifetime_s
        token = mint_token(entra, state.key, resource, lifetime, {})
        state.count(resource)
        log.info("issued a token for %s to %s, valid %d s", resource, client_id, lifetime)
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}


def _openid_configuration(entra: FakeEntra) -> dict[str, Any]:
    base = f"{entra.authority}/{entra.tenant_id}"
    return {
        "issuer": f"https://login.microsoftonline.com/{entra.tenant_id}/v2.0",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "jwks_uri": entra.jwks_url,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "local",
    }


def _error_body(exc: _AadError) -> dict[str, Any]:
    trace = str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return {
        "error": exc.error,
        "error_description": f"{exc.description} Trace ID: {trace} Timestamp: {stamp}",
        "error_codes": [exc.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
    }
