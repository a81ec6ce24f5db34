"""A local fake Entra ID: what azure-identity's ``ClientSecretCredential`` needs, over HTTPS with the stack's CA.

One tenant with one application (client id + secret), kept under ``<state-dir>/entra/`` with the RS256 signing
key, so identities and keys survive restarts. It serves, for the client-credentials flow MSAL runs:

    GET  /<tenant>/v2.0/.well-known/openid-configuration   token_endpoint, jwks_uri, issuer
    POST /<tenant>/oauth2/v2.0/token                        grant_type=client_credentials, scope=<resource>/.default
    GET  /<tenant>/discovery/v2.0/keys                      the JWKS (also written to ``entra/jwks.json``)
    GET  /$hubstream/stats                                  tokens issued, per audience (for tests)

Tokens look like Entra v1 app tokens: ``iss`` = ``https://sts.windows.net/<tenant>/``, ``aud`` = the scope without
``/.default``, ``sub``/``oid`` = the service principal, ``appid``, ``tid``, ``iat``/``nbf``/``exp`` and a ``kid``
header. Client credentials come in the form body (MSAL) or as HTTP Basic (Kafka's Java login handler).
A wrong secret, an unknown client or tenant, or a scope without ``/.default`` get AAD's error JSON
(``{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}``), which azure-identity raises as
``ClientAuthenticationError`` with that text.

Clients: ``ClientSecretCredential(tenant_id, client_id, secret, authority=entra.authority,
disable_instance_discovery=True, connection_verify=str(ca_file))`` or the environment from ``FakeEntra.env()``.
The broker validates with ``entra.jwks_url_file`` (``file://``), which exists before the server starts.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import secrets
import ssl
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.processes import ChildProcess, wait_until
from devstack.tls import ensure_tls_files
from hubstream.errors import ConfigurationError

log = logging.getLogger(__name__)

ENTRA_DIR = "entra"
DEFAULT_PORT = 8444
DEFAULT_TOKEN_LIFETIME_S = 3600
HOST = "127.0.0.1"
STATS_PATH = "/$hubstream/stats"
_KEY_FILE = "signing-key.pem"
_JWKS_FILE = "jwks.json"
_IDENTITY_FILE = "identity.json"


@dataclass(frozen=True)
class FakeEntra:
    """Where the fake Entra ID answers, the one application it knows, and how to verify what it issues."""

    authority: str  # https://localhost:PORT, azure-identity's `authority=`
    tenant_id: str
    client_id: str
    client_secret: str
    object_id: str  # the application's service principal: `sub` and `oid` of its tokens
    issuer: str  # https://sts.windows.net/<tenant>/
    jwks_file: Path
    ca_file: Path  # the CA that signed the server's certificate
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S

    @property
    def jwks_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/discovery/v2.0/keys"

    @property
    def jwks_file_url(self) -> str:
        """``file:///...``: what the broker's ``sasl.oauthbearer.jwks.endpoint.url`` takes."""
        return self.jwks_file.resolve().as_uri()

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def openid_configuration_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def port(self) -> int:
        port = urlsplit(self.authority).port
        return 443 if port is None else port

    def env(self) -> dict[str, str]:
        """azure-identity's own variables for this application (EnvironmentCredential reads them)."""
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.client_secret,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "issuer": self.issuer,
            "jwks_file": str(self.jwks_file),
            "jwks_url": self.jwks_url,
            "ca_file": str(self.ca_file),
            "token_lifetime_s": self.token_lifetime_s,
        }

    def mint(self, audience: str, *, lifetime_s: int | None = None, **claims: Any) -> str:
        """A token signed with this tenant's key, as the token endpoint issues it (``claims`` override)."""
        key = _load_key(self.jwks_file.parent / _KEY_FILE)
        return _mint(self, key, audience, lifetime_s or self.token_lifetime_s, claims)


def prepare(
    state_dir: Path, port: int = DEFAULT_PORT, *, token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
) -> FakeEntra:
    """The fake Entra of ``state_dir``: creates the identity, the signing key and ``jwks.json`` if missing.

    Nothing listens yet; the broker can be configured (and started) with ``jwks_file`` before ``serve``.
    """
    if token_lifetime_s < 1:
        raise ConfigurationError(f"token lifetime must be at least 1 s (got {token_lifetime_s})")
    directory = state_dir.resolve() / ENTRA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    tls = ensure_tls_files(state_dir)
    with _locked(directory / ".lock"):
        identity = _ensure_identity(directory / _IDENTITY_FILE)
        key = _ensure_key(directory / _KEY_FILE)
        jwks = json.dumps(_jwks(key), indent=2).encode()
        jwks_file = directory / _JWKS_FILE
        if not jwks_file.exists() or jwks_file.read_bytes() != jwks:
            _write(jwks_file, jwks, mode=0o644)
    tenant = identity["tenant_id"]
    return FakeEntra(
        authority=f"https://localhost:{port}",
        tenant_id=tenant,
        client_id=identity["client_id"],
        client_secret=identity["client_secret"],
        object_id=identity["object_id"],
        issuer=f"https://sts.windows.net/{tenant}/",
        jwks_file=jwks_file,
        ca_file=tls.ca_file,
        token_lifetime_s=token_lifetime_s,
    )


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
        self._http.state = _State(self.entra, _load_key(entra.jwks_file.parent / _KEY_FILE))
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


def start_entra(
    state_dir: Path,
    port: int = DEFAULT_PORT,
    *,
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
    log_file: Path | None = None,
    timeout_s: float = 30,
) -> tuple[FakeEntra, ChildProcess]:
    """``hubstream entra serve`` as a child process that dies with its parent; returns once it answers."""
    entra = prepare(state_dir, port, token_lifetime_s=token_lifetime_s)
    argv = [sys.executable, "-m", "hubstream_cli", "entra", "serve", "--state-dir", str(state_dir.resolve())]
    argv += ["--port", str(port), "--token-lifetime", str(token_lifetime_s)]
    child = ChildProcess("entra", argv, log_file=log_file or state_dir / "logs" / "entra.log")
    try:
        wait_until(lambda: answers(entra), timeout=timeout_s, what="the fake Entra ID", process=child)
    except BaseException:
        child.stop()
        raise
    return entra, child


def answers(entra: FakeEntra) -> bool:
    """Whether the fake Entra at ``entra.authority`` serves its OpenID configuration."""
    response = httpx.get(entra.openid_configuration_url, verify=str(entra.ca_file), timeout=2)
    return response.status_code == 200


def issued_tokens(entra: FakeEntra) -> dict[str, Any]:
    """``/$hubstream/stats`` of a running fake: tokens issued in all and per audience, failed requests."""
    response = httpx.get(f"{entra.authority}{STATS_PATH}", verify=str(entra.ca_file), timeout=5)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


# --- the server --------------------------------------------------------------------------------------------------


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
            return 200, _jwks(state.key)
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
        if not secret or not _same(secret, entra.client_secret):
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
        token = _mint(entra, state.key, resource, lifetime, {})
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


# --- keys, identities and tokens ---------------------------------------------------------------------------------


def _mint(entra: FakeEntra, key: rsa.RSAPrivateKey, audience: str, lifetime_s: int, extra: Mapping[str, Any]) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": entra.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
        "sub": entra.object_id,
        "oid": entra.object_id,
        "appid": entra.client_id,
        "appidacr": "1",
        "idtyp": "app",
        "tid": entra.tenant_id,
        "uti": uuid.uuid4().hex[:22],
        "ver": "1.0",
        **extra,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": _kid(key), "typ": "JWT"})


def _jwks(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    public = key.public_key().public_numbers()
    return {
        "keys": [
            {
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": _kid(key),
                "n": _b64(public.n),
                "e": _b64(public.e),
            }
        ]
    }


def _kid(key: rsa.RSAPrivateKey) -> str:
    # RFC 7638 thumbprint of the public key, so a new key always has a new kid
    public = key.public_key().public_numbers()
    canonical = json.dumps({"e": _b64(public.e), "kty": "RSA", "n": _b64(public.n)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()[:27]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def _ensure_identity(path: Path) -> dict[str, str]:
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    identity = {
        "tenant_id": str(uuid.uuid4()),
        "client_id": str(uuid.uuid4()),
        "client_secret": secrets.token_urlsafe(30),
        "object_id": str(uuid.uuid4()),
    }
    _write(path, json.dumps(identity, indent=2).encode(), mode=0o600)
    return identity


def _ensure_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        return _load_key(path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(path, pem, mode=0o600)
    return key


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"{path} is not the RSA key the fake Entra ID makes; delete {path.parent}")
    return key


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
