"""docker-compose.kafka.yml cannot run here (no Docker engine): check it agrees with the code instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from hubstream.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.kafka.yml"
HUBSTREAM_SERVICES = ("registry", "provision", "producer-api", "consumer")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def setting_exists(variable: str) -> bool:
    """HUBSTREAM_GROUP__FIELD → Settings.group.field, the way pydantic-settings reads it."""
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("HUBSTREAM_").lower().split("__")
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if index < len(parts) - 1:
            model = field.annotation  # type: ignore[assignment] - checked to be a model class just below
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                return False
    return True


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_services_are_kafka_kraft_and_hubstream_parts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", *HUBSTREAM_SERVICES}
    kafka_env = env_of(services["kafka"])
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"] and "broker" in kafka_env["KAFKA_PROCESS_ROLES"]
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]


def test_every_hubstream_variable_is_a_setting_the_code_reads(compose: dict[str, Any]) -> None:
    seen = set()
    for name in HUBSTREAM_SERVICES:
        for variable in env_of(compose["services"][name]):
            if variable.startswith("HUBSTREAM_"):
                seen.add(variable)
                assert setting_exists(variable), f"{name}: {variable} is not a field of hubstream.settings.Settings"
    assert {"HUBSTREAM_PROFILE", "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS", "HUBSTREAM_REGISTRY__NAMESPACE"} <= seen
    assert not setting_exists("HUBSTREAM_KAFKA__NO_SUCH_FIELD")  # the check itself can fail


def test_addresses_match_the_services_that_serve_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka_env = env_of(services["kafka"])
    registry_cmd = services["registry"]["command"]
    for name in ("provision", "producer-api", "consumer"):
        env = env_of(services[name])
        host, port = env["HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS"].split(":")
        assert f"INTERNAL://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        registry_host, registry_port = env["HUBSTREAM_REGISTRY__NAMESPACE"].split(":")
        assert registry_host == "registry" and registry_port == option(registry_cmd, "--port")
        assert option(registry_cmd, "--tls-host") == registry_host  # the certificate names the host clients use
        assert env["HUBSTREAM_REGISTRY__CA_FILE"].startswith("/state/")
        assert env["HUBSTREAM_PROFILE"] == "kafka"
    api_cmd = services["producer-api"]["command"]
    assert f"127.0.0.1:{option(api_cmd, '--port')}:{option(api_cmd, '--port')}" in services["producer-api"]["ports"]


@pytest.mark.parametrize("service", HUBSTREAM_SERVICES)
def test_service_commands_are_valid_hubstream_invocations(compose: dict[str, Any], service: str) -> None:
    command = compose["services"][service]["command"]
    # click rejects unknown options before it handles the trailing --help
    result = subprocess.run(
        [sys.executable, "-m", "hubstream_cli", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert published, "the check itself found no ports"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_every_container_runs_as_a_non_root_user(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        user = str(service.get("user", "root"))
        assert user.split(":")[0] not in ("root", "0"), f"{name} runs as {user}"
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "\nUSER 10001" in dockerfile  # the image itself, for `docker run` without compose


def test_the_registry_token_comes_from_the_environment_and_has_no_default(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "--auth-token" not in services["registry"]["command"]  # argv is visible to `ps`
    tokens = {name: env_of(services[name]).get("HUBSTREAM_REGISTRY__TOKEN") for name in HUBSTREAM_SERVICES}
    for name, token in tokens.items():
        assert token is not None, f"{name} has no registry token"
        # compose's ${VAR:?message}: `up` fails unless the operator sets it; no well-known value
        assert token.startswith("${HUBSTREAM_REGISTRY_TOKEN:?"), f"{name}: {token}"
    assert len(set(tokens.values())) == 1
    assert "hubstream-local" not in COMPOSE.read_text()
    help_text = subprocess.run(
        [sys.executable, "-m", "hubstream_cli", "registry", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "HUBSTREAM_REGISTRY__TOKEN" in help_text  # what `registry serve --auth-token` reads


def test_the_producer_api_keeps_its_keys_on_a_writable_volume(compose: dict[str, Any]) -> None:
    api = compose["services"]["producer-api"]
    keys_file = env_of(api)["HUBSTREAM_API__API_KEYS_FILE"]
    mounts = {volume.split(":")[1]: volume for volume in api["volumes"]}
    directory = keys_file.rsplit("/", 1)[0]
    assert directory in mounts and not mounts[directory].endswith(":ro")
    assert env_of(api)["HUBSTREAM_PROFILE"] != "local"  # so auth is on
