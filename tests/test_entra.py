"""The local fake Entra ID, through the official azure-identity client over real HTTPS."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from azure.schemaregistry import SchemaRegistryClient

from devstack.entra import FakeEntra, issued_tokens, prepare, start_entra
from devstack.entra_server import EntraServer, serving
from hubstream import kafka_config
from hubstream.credentials import EntraCredential, OAuthBearerTokens, StaticTokenCredential, registry_credential
from hubstream.errors import EntraTokenError
from hubstream.ports import free_port
from hubstream.settings import load_settings
from schemas.registry import SchemaRegistry
from tests.fixtures.registry import RegistryEmulator, running_emulator

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


# --- the Schema Registry emulator behind Entra ID ----------------------------------------------------------------

pytestmark = pytest.mark.broker  # a fake Entra ID and an emulator run for real

SCHEMA = '{"type":"record","name":"Ping","namespace":"t.entra","fields":[{"name":"n","type":"int"}]}'


@pytest.fixture(scope="module")
def entra_emulator(entra_server: EntraServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryEmulator]:
    entra = entra_server.entra
    args = ["--entra-jwks", str(entra.jwks_file), "--entra-issuer", entra.issuer]
    with running_emulator(tmp_path_factory.mktemp("entra-registry"), extra_args=args) as emulator:
        yield emulator


def registry_client(emulator: RegistryEmulator, credential: object) -> SchemaRegistryClient:
    return SchemaRegistryClient(emulator.namespace, credential, connection_verify=str(emulator.ca_file))  # type: ignore[arg-type]


def test_the_emulator_takes_an_entra_token_from_client_secret_credential(
    entra_server: EntraServer, entra_emulator: RegistryEmulator
) -> None:
    before = entra_server.stats["by_audience"].get("https://eventhubs.azure.net", 0)
    with registry_client(entra_emulator, credential(entra_server.entra)) as client:
        registered = client.register_schema(entra_emulator.group, "t.entra.Ping", SCHEMA, "Avro")
        assert client.get_schema(registered.id).definition == SCHEMA
    assert entra_server.stats["by_audience"]["https://eventhubs.azure.net"] > before


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda entra: entra.mint("https://hubstream-test.servicebus.windows.net"), "InvalidAudience"),
        (
            lambda entra: entra.mint("https://eventhubs.azure.net", iss="https://sts.windows.net/other/"),
            "InvalidIssuer",
        ),
        (lambda entra: entra.mint("https://eventhubs.azure.net", exp=int(time.time()) - 120), "ExpiredToken"),
        (lambda entra: "hubstream-local", "not a JWT"),
    ],
    ids=["audience", "issuer", "expired", "static"],
)
def test_the_emulator_refuses_other_tokens_with_azures_401(
    entra_server: EntraServer, entra_emulator: RegistryEmulator, token: Callable[[FakeEntra], str], message: str
) -> None:
    client = registry_client(entra_emulator, StaticTokenCredential(token(entra_server.entra)))
    with client, pytest.raises(ClientAuthenticationError, match=message) as raised:
        client.register_schema(entra_emulator.group, "t.entra.Ping", SCHEMA, "Avro")
    assert raised.value.status_code == 401 and raised.value.error is not None
    assert raised.value.error.code == "Unauthorized"


def test_the_emulator_refuses_a_token_signed_by_another_key(
    entra_server: EntraServer, entra_emulator: RegistryEmulator, tmp_path: Path
) -> None:
    stranger = prepare(tmp_path)  # another tenant's key, same claims
    forged = replace(stranger, tenant_id=entra_server.entra.tenant_id, issuer=entra_server.entra.issuer)
    client = registry_client(entra_emulator, StaticTokenCredential(forged.mint("https://eventhubs.azure.net")))
    with client, pytest.raises(ClientAuthenticationError, match="signing key"):
        client.get_schema("0" * 32)


def test_one_credential_serves_kafka_and_the_registry_from_env_settings(
    entra_server: EntraServer, entra_emulator: RegistryEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    entra = entra_server.entra
    for name, value in entra.env().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(
        _env_file=None,
        profile="eventhubs",
        eventhubs={
            "auth": "entra",
            "namespace": "hubstream-test.servicebus.windows.net",
            "authority": entra.authority,
            "ca_file": str(entra.ca_file),
            "check_login": False,
        },
        registry={
            "namespace": entra_emulator.namespace,
            "ca_file": str(entra_emulator.ca_file),
            "credential": "azure",
            "group": entra_emulator.group,
        },
    )
    oauth_cb = kafka_config.producer_config(settings)["oauth_cb"]
    assert kafka_config.consumer_config(settings, "g")["oauth_cb"] is oauth_cb
    assert kafka_config.admin_config(settings)["oauth_cb"] is oauth_cb
    assert registry_credential(settings) is oauth_cb.credential  # the one credential object
    started = time.perf_counter()
    token, expiry = oauth_cb("")
    latency = time.perf_counter() - started
    assert latency < 5 and expiry > time.time() + 60
    claims = verify(entra, token, "https://hubstream-test.servicebus.windows.net")
    assert claims["appid"] == entra.client_id
    registry = SchemaRegistry.from_settings(settings)
    try:
        contract_id = registry.client.register_schema(entra_emulator.group, "t.entra.Ping", SCHEMA, "Avro").id
        assert registry.client.get_schema(contract_id).definition == SCHEMA
    finally:
        registry.close()


def test_a_credential_that_cannot_get_a_token_names_itself_and_the_scope(
    entra_server: EntraServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    entra = entra_server.entra
    monkeypatch.setenv("AZURE_TENANT_ID", entra.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", entra.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong")
    settings = load_settings(
        _env_file=None,
        profile="eventhubs",
        # its own timeout, so this test gets its own credential (one is cached per authority, trust and timeout)
        eventhubs={
            "auth": "entra",
            "namespace": "wrong-secret.servicebus.windows.net",
            "authority": entra.authority,
            "ca_file": str(entra.ca_file),
            "token_timeout_s": 7,
            "check_login": False,
        },
    )
    oauth_cb = kafka_config.producer_config(settings)["oauth_cb"]
    started = time.monotonic()
    with pytest.raises(EntraTokenError) as raised:
        oauth_cb("")
    assert time.monotonic() - started < 7
    message = str(raised.value)
    assert "DefaultAzureCredential" in message and "https://wrong-secret.servicebus.windows.net/.default" in message
    assert "AADSTS7000215" in message


def test_a_credential_that_hangs_fails_within_the_timeout() -> None:
    class Hanging:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            time.sleep(30)
            raise AssertionError("unreachable")

    tokens = OAuthBearerTokens(EntraCredential(Hanging(), timeout_s=0.5), "https://ns/.default")  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(EntraTokenError, match=r"Hanging could not get .* https://ns/.default: no answer within 0.5 s"):
        tokens("")
    assert time.monotonic() - started < 2 and tokens.failures == 1
