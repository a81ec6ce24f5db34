"""Settings: one object from the environment, validated the same way however a value arrives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubstream.errors import ConfigurationError
from hubstream.settings import PACKAGE_SCHEMAS_DIR, load_settings, with_overrides

SECRET = "SharedAccessKey=c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1wcmludA=="


@pytest.mark.parametrize(
    "variable", ["HUBSTREAM_CONSUMER__KEY_CONCURRENCY", "HUBSTREAM_KAFKA__EXTRA", "HUBSTREAM_API__PORT"]
)
def test_a_secret_in_the_wrong_variable_is_never_printed(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, SECRET)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(_env_file=None)
    assert SECRET not in str(raised.value) and "c2VjcmV0" not in str(raised.value)
    assert "invalid settings" in str(raised.value)


def test_an_override_is_validated_like_the_environment() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigurationError, match=r"HUBSTREAM_CONSUMER__KEY_CONCURRENCY: .*less than or equal to 1000"):
        with_overrides(settings, "consumer", key_concurrency=5000)
    assert with_overrides(settings, "consumer", key_concurrency=7).consumer.key_concurrency == 7


def test_consume_refuses_a_key_concurrency_above_its_bound() -> None:
    env = {**os.environ, "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", "HUBSTREAM_REGISTRY__NAMESPACE": "x:1"}
    result = subprocess.run(
        [sys.executable, "-m", "hubstream_cli", "consume", "--group", "g", "--topic", "t", "--key-concurrency", "5000"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "HUBSTREAM_CONSUMER__KEY_CONCURRENCY" in result.stderr and "1000" in result.stderr
    assert "Traceback" not in result.stderr


def test_contracts_come_from_the_working_directory_when_it_has_a_schemas_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(_env_file=None).contracts_dir == PACKAGE_SCHEMAS_DIR / "avro"
    (tmp_path / "schemas" / "avro").mkdir(parents=True)
    (tmp_path / "schemas" / "topics.toml").write_text("")
    settings = load_settings(_env_file=None)
    assert settings.contracts_dir == tmp_path / "schemas" / "avro"
    assert settings.topics_file == tmp_path / "schemas" / "topics.toml"


def test_eventhubs_settings_are_checked_without_printing_their_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__NAMESPACE", f"sb://leaked.servicebus.windows.net/;{SECRET}")
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__AUTH", "sas")
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__CA_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__AUTHORITY", "http://localhost:8444")
    with pytest.raises(ConfigurationError) as raised:
        load_settings(_env_file=None)
    message = str(raised.value)
    for variable in ("NAMESPACE", "AUTH", "CA_FILE", "AUTHORITY"):
        assert f"HUBSTREAM_EVENTHUBS__{variable}:" in message
    assert "bare host[:port]" in message and "https://" in message and "connection-string" in message
    assert "c2VjcmV0" not in message and "leaked" not in message


def test_eventhubs_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    monkeypatch.setenv("HUBSTREAM_PROFILE", "eventhubs")
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__AUTH", "entra")
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__NAMESPACE", "localhost:19095")
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__CA_FILE", str(ca))
    monkeypatch.setenv("HUBSTREAM_EVENTHUBS__AUTHORITY", "https://localhost:8444")
    eh = load_settings(_env_file=None).eventhubs
    assert (eh.auth, eh.namespace, eh.ca_file, eh.authority) == (
        "entra",
        "localhost:19095",
        ca,
        "https://localhost:8444",
    )
    assert eh.check_login is True and eh.token_timeout_s == 20
