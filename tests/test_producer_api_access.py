"""Who may publish (API keys, Entra ID tokens from the fake Entra ID) and which requests the API takes at all."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.entra_server import EntraServer, serving
from devstack.provisioning import provision
from hubstream.settings import load_settings
from kafka_producer.access import Access, host_allowed
from kafka_producer.api_keys import ApiKeyStore
from tests.fixtures.broker import LocalKafka
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, MINUTES, make_settings, producer_api, write_catalog

AUDIENCE = "api://hubstream-producer"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    url: str
    chat: str
    minutes: str
    keys: ApiKeyStore
    entra: EntraServer
    state_dir: Path

    def publish(self, headers: dict[str, str], topic: str | None = None, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("json", chat_event())
        return httpx.post(f"{self.url}/v1/topics/{topic or self.chat}/events", headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def stack(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("api-access")
    chat, minutes = kafka_broker.create_topic("chat-access"), kafka_broker.create_topic("minutes-access")
    catalog = write_catalog(directory, {chat: CHAT, minutes: MINUTES})
    with serving(directory / "entra") as entra:
        api = {
            "auth": True,
            "jwks_url": entra.entra.jwks_url,
            "jwks_ca_file": entra.entra.ca_file,
            "issuer": entra.entra.issuer,
            "audience": AUDIENCE,
        }
        settings = make_settings(kafka_broker, registry_emulator, catalog, api=api, state_dir=directory / "state")
        provision(settings)
        keys = ApiKeyStore(directory / "state" / "api-keys.json")
        with producer_api(settings) as url:
            yield Stack(url, chat, minutes, keys, entra, directory / "state")


def bearer(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def test_no_credential_is_401_with_a_bearer_challenge(stack: Stack) -> None:
    response = stack.publish({})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "api-keys create" in response.json()["error"]["message"]


def test_an_api_key_publishes_and_a_wrong_one_is_401(stack: Stack) -> None:
    _, key = stack.keys.create("svc")
    assert stack.publish(bearer(key)).status_code == 200
    assert stack.publish({"x-api-key": key}).status_code == 200
    assert stack.publish(bearer(key[:-2] + "AA")).status_code == 401
    assert stack.publish(bearer("hsk_nonsense")).status_code == 401


def test_a_topic_scoped_key_is_403_elsewhere(stack: Stack) -> None:
    record, key = stack.keys.create("chat-only", [stack.chat])
    assert stack.publish(bearer(key)).status_code == 200
    response = stack.publish(bearer(key), topic=stack.minutes, json={})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Forbidden" and record.id in response.json()["error"]["message"]


def test_keys_rotate_and_a_revoked_key_is_refused_without_a_restart(stack: Stack) -> None:
    old, old_key = stack.keys.create("rotating")
    _, new_key = stack.keys.create("rotating")
    assert stack.publish(bearer(old_key)).status_code == 200
    assert stack.publish(bearer(new_key)).status_code == 200  # both at once
    ApiKeyStore(stack.keys.path).revoke(old.id)  # as another process would
    deadline = time.monotonic() + 5
    while stack.publish(bearer(old_key)).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key was still accepted after 5 s"
        time.sleep(0.2)
    assert stack.publish(bearer(new_key)).status_code == 200


def test_the_key_file_keeps_only_hashes_and_is_private(stack: Stack) -> None:
    _, key = stack.keys.create("hashed")
    text = stack.keys.path.read_text()
    assert key.split("_")[2] not in text and key not in text
    assert stack.keys.path.stat().st_mode & 0o777 == 0o600


def test_an_entra_token_publishes(stack: Stack) -> None:
    token = stack.entra.entra.mint(AUDIENCE)
    response = stack.publish(bearer(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("problem", ["audience", "expired", "issuer", "foreign-key", "hs256"])
def test_an_entra_token_that_does_not_fit_is_401(stack: Stack, problem: str) -> None:
    entra = stack.entra.entra
    if problem == "audience":
        token = entra.mint("api://someone-else")
    elif problem == "expired":
        token = entra.mint(AUDIENCE, exp=int(time.time()) - 3600)
    elif problem == "issuer":
        token = entra.mint(AUDIENCE, iss="https://sts.windows.net/another-tenant/")
    else:
        good = entra.mint(AUDIENCE)
        claims = jwt.decode(good, options={"verify_signature": False})
        kid = jwt.get_unverified_header(good)["kid"]
        if problem == "foreign-key":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
        else:
            token = jwt.encode(claims, "guessed-secret-of-at-least-32-bytes!", algorithm="HS256", headers={"kid": kid})
    response = stack.publish(bearer(token))
    assert response.status_code == 401, response.text
    assert "token" in response.json()["error"]["message"]


def test_only_json_bodies_are_taken(stack: Stack) -> None:
    _, key = stack.keys.create("json")
    body = json.dumps(chat_event())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        headers = {**bearer(key), "content-type": content_type}
        response = stack.publish(headers, json=None, content=body)
        assert response.status_code == 415, (content_type, response.text)
        assert response.json()["error"]["code"] == "UnsupportedMediaType"
    headers = {**bearer(key), "content-type": "application/json; charset=utf-8"}
    assert stack.publish(headers, json=None, content=body).status_code == 200


def test_a_simple_cross_site_request_cannot_publish_without_auth(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("chat-csrf")
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    provision(settings)
    with producer_api(settings) as url:  # the local profile: auth off
        form = httpx.post(
            f"{url}/v1/topics/{topic}/events",
            content=json.dumps(chat_event()),
            headers={"content-type": "text/plain", "origin": "https://evil.example"},
        )
        assert form.status_code == 415


def test_the_host_header_must_be_a_loopback_name(stack: Stack) -> None:
    port = stack.url.rsplit(":", 1)[1]
    _, key = stack.keys.create("hosts")
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "10.0.0.1"):
        response = stack.publish({**bearer(key), "host": host})
        assert response.status_code == 400, host
        assert response.json()["error"]["code"] == "HostNotAllowed"
        assert httpx.get(f"{stack.url}/healthz", headers={"host": host}).status_code == 400
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "[::1]"):
        assert stack.publish({**bearer(key), "host": host}).status_code == 200, host


def test_host_names_allowed() -> None:
    assert host_allowed("LOCALHOST:8080") and host_allowed("[::1]") and host_allowed("127.0.0.1")
    assert not host_allowed(None) and not host_allowed("") and not host_allowed("[::1]x")
    assert not host_allowed("localhost:80x") and not host_allowed("localhost.evil.example")


@pytest.mark.parametrize(("profile", "on"), [("local", False), ("kafka", True), ("eventhubs", True)])
def test_auth_is_off_only_for_the_local_profile_by_default(tmp_path: Path, profile: str, on: bool) -> None:
    settings = load_settings(profile=profile, state_dir=tmp_path)
    assert Access(settings).enabled is on
    forced = load_settings(profile=profile, state_dir=tmp_path, api={"auth": not on})
    assert Access(forced).enabled is not on


def hubstream(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hubstream_cli", *args, "--state-dir", str(state_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_the_api_keys_command_creates_lists_and_revokes(stack: Stack) -> None:
    created = hubstream("api-keys", "create", "ci", "--topic", stack.chat, "--quiet", state_dir=stack.state_dir)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n" and key.startswith("hsk_")
    assert stack.publish(bearer(key)).status_code == 200
    listed = hubstream("api-keys", "list", "--json", state_dir=stack.state_dir)
    entries = {entry["id"]: entry for entry in json.loads(listed.stdout)}
    key_id = key.split("_")[1]
    assert entries[key_id]["name"] == "ci" and entries[key_id]["topics"] == [stack.chat]
    assert "digest" not in entries[key_id] and key not in listed.stdout
    revoked = hubstream("api-keys", "revoke", key_id, "--json", state_dir=stack.state_dir)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["active"] is False
    unknown = hubstream("api-keys", "revoke", "000000000000", state_dir=stack.state_dir)
    assert unknown.returncode != 0 and "api-keys list" in unknown.stderr + unknown.stdout
    as_json = hubstream("api-keys", "create", "other", "--json", state_dir=stack.state_dir)
    assert json.loads(as_json.stdout)["key"].startswith("hsk_")
