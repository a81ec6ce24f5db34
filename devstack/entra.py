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
import hashlib
import json
import logging
import secrets
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.processes import ChildProcess, wait_until
from devstack.tls import ensure_tls_files
from hubstream.errors import ConfigurationError
from hubstream.files import locked, write_atomically

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
        return mint_token(self, self.signing_key(), audience, lifetime_s or self.token_lifetime_s, claims)

    def signing_key(self) -> rsa.RSAPrivateKey:
        """The tenant's RS256 key, from the state dir."""
        return _load_key(self.jwks_file.parent / _KEY_FILE)


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
    with locked(directory / ".lock"):
        identity = _ensure_identity(directory / _IDENTITY_FILE)
        key = _ensure_key(directory / _KEY_FILE)
        jwks = json.dumps(jwks_of(key), indent=2).encode()
        jwks_file = directory / _JWKS_FILE
        if not jwks_file.exists() or jwks_file.read_bytes() != jwks:
            write_atomically(jwks_file, jwks, mode=0o644)
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


# --- keys, identities and tokens ---------------------------------------------------------------------------------


def mint_token(
    entra: FakeEntra, key: rsa.RSAPrivateKey, audience: str, lifetime_s: int, extra: Mapping[str, Any]
) -> str:
    """A token as the token endpoint issues it, signed with ``key``; ``extra`` claims override the usual ones."""
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


def jwks_of(key: rsa.RSAPrivateKey) -> dict[str, Any]:
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
    write_atomically(path, json.dumps(identity, indent=2).encode(), mode=0o600)
    return identity


def _ensure_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        return _load_key(path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomically(path, pem, mode=0o600)
    return key


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"{path} is not the RSA key the fake Entra ID makes; delete {path.parent}")
    return key
