"""The local fake Entra ID, through the official azure-identity client over real HTTPS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from devstack.entra import EntraServer, FakeEntra, issued_tokens, prepare, serving, start_entra
from hubstream.ports import free_port

EVENTHUBS_SCOPE = "https://hubstream-test.servicebus.windows.net/.default"


@pytest.fixture(scope="module")
def entra_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraServer]:
    with serving(tmp_path_factory.mktemp("entra"), token_lifetime_s=120) as server:
        yield server


def credential(entra: FakeEntra, *, client_id: str | None = None, secret: str | None = None) -> ClientSecretCredential:
    return ClientSecretCredential(
        entra.tenant_id,
        client_id or entra.client_id,
        secret or entra.client_secret,
        authority=entra.authority,
        disable_instance_discovery=True,
        connection_verify=str(entra.ca_file),
    )


def verify(entra: FakeEntra, token: str, audience: str) -> dict[str, object]:
    keys = jwt.PyJWKSet.from_json(entra.jwks_file.read_text())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims: dict[str, object] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=entra.issuer)
    return claims


def test_client_secret_credential_gets_an_rs256_token_the_jwks_file_verifies(entra_server: EntraServer) -> None:
    entra = entra_server.entra
    started = time.perf_counter()
    token = credential(entra).get_token(EVENTHUBS_SCOPE)
    assert time.perf_counter() - started < 5
    claims = verify(entra, token.token, "https://hubstream-test.servicebus.windows.net")
    assert claims["iss"] == f"https://sts.windows.net/{entra.tenant_id}/"
    assert claims["tid"] == entra.tenant_id and claims["appid"] == entra.client_id
    assert claims["sub"] == claims["oid"] == entra.object_id
    assert int(claims["exp"]) - int(claims["iat"]) == 120 and claims["nbf"] == claims["iat"]  # type: ignore[call-overload]
    assert abs(token.expires_on - (time.time() + 120)) < 5
    assert jwt.get_unverified_header(token.token)["alg"] == "RS256"


def test_the_audience_is_the_scope_without_default(entra_server: EntraServer) -> None:
    token = credential(entra_server.entra).get_token("https://eventhubs.azure.net/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == "https://eventhubs.azure.net"


def test_a_wrong_secret_is_aads_invalid_client(entra_server: EntraServer) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215: Invalid client secret"):
        credential(entra_server.entra, secret="not-the-secret").get_token(EVENTHUBS_SCOPE)


def test_an_unknown_client_is_named(entra_server: EntraServer) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016: Application with identifier 'someone-else'"):
        credential(entra_server.entra, client_id="someone-else").get_token(EVENTHUBS_SCOPE)


def test_an_unknown_tenant_fails_at_discovery(entra_server: EntraServer) -> None:
    entra = entra_server.entra
    other = ClientSecretCredential(
        "00000000-0000-0000-0000-000000000000",
        entra.client_id,
        entra.client_secret,
        authority=entra.authority,
        disable_instance_discovery=True,
        connection_verify=str(entra.ca_file),
    )
    with pytest.raises((ClientAuthenticationError, ValueError)):
        other.get_token(EVENTHUBS_SCOPE)


def test_token_endpoint_takes_basic_auth_and_refuses_a_scope_without_default(entra_server: EntraServer) -> None:
    entra = entra_server.entra
    with httpx.Client(verify=str(entra.ca_file), timeout=5) as http:
        ok = http.post(
            entra.token_endpoint,
            data={"grant_type": "client_credentials", "scope": EVENTHUBS_SCOPE},
            auth=(entra.client_id, entra.client_secret),
        )
        bad = http.post(
            entra.token_endpoint,
            data={
                "grant_type": "client_credentials",
                "scope": "https://x",
                "client_id": entra.client_id,
                "client_secret": entra.client_secret,
            },
        )
        jwks = http.get(entra.jwks_url)
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 120
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_scope"
    assert "AADSTS1002012" in bad.json()["error_description"]
    assert jwks.json() == __import__("json").loads(entra.jwks_file.read_text())


def test_fail_next_answers_503_then_recovers(entra_server: EntraServer) -> None:
    entra = entra_server.entra
    entra_server.fail_next(1)
    body = {"grant_type": "client_credentials", "scope": EVENTHUBS_SCOPE}
    with httpx.Client(verify=str(entra.ca_file), timeout=5) as http:
        first = http.post(entra.token_endpoint, data=body, auth=(entra.client_id, entra.client_secret))
        second = http.post(entra.token_endpoint, data=body, auth=(entra.client_id, entra.client_secret))
    assert first.status_code == 503 and first.json()["error"] == "temporarily_unavailable"
    assert second.status_code == 200


def test_identity_and_key_survive_a_restart_and_the_jwks_exists_before_serving(tmp_path: Path) -> None:
    before = prepare(tmp_path, 1)
    assert before.jwks_file.exists() and before.jwks_file_url.startswith("file:///")
    again = prepare(tmp_path, 2)
    assert (again.tenant_id, again.client_secret) == (before.tenant_id, before.client_secret)
    assert again.jwks_file.read_text() == before.jwks_file.read_text()
    assert (tmp_path / "entra" / "identity.json").stat().st_mode & 0o077 == 0  # the secret is the owner's only


def test_start_entra_runs_the_cli_as_a_child_process(tmp_path: Path) -> None:
    entra, child = start_entra(tmp_path, free_port(), token_lifetime_s=90)
    try:
        token = credential(entra).get_token(EVENTHUBS_SCOPE)
        assert abs(token.expires_on - (time.time() + 90)) < 5
        verify(entra, token.token, "https://hubstream-test.servicebus.windows.net")
        assert issued_tokens(entra)["by_audience"] == {"https://hubstream-test.servicebus.windows.net": 1}
        minted = entra.mint("https://elsewhere", lifetime_s=30)
        assert (
            verify(entra, minted, "https://elsewhere")["exp"] == verify(entra, minted, "https://elsewhere")["iat"] + 30
        )  # type: ignore[operator]
    finally:
        assert child.stop() == 0
