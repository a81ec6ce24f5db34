"""Client configuration per profile, and Event Hubs connection strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubstream import kafka_config
from hubstream.credentials import OAuthBearerTokens, credential_options
from hubstream.errors import ConfigurationError, ConnectionStringError
from hubstream.settings import Settings

CONN = (
    "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=abc="
)


def settings(**values: object) -> Settings:
    """Settings without .env; the eventhubs profile's startup login is off (these tests make no connections)."""
    eventhubs = values.pop("eventhubs", {})
    assert isinstance(eventhubs, dict)
    return Settings(_env_file=None, eventhubs={"check_login": False, **eventhubs}, **values)


def test_eventhubs_profile_uses_sasl_ssl_plain_with_the_connection_string() -> None:
    config = kafka_config.producer_config(settings(profile="eventhubs", eventhubs={"connection_string": CONN}))
    assert config["bootstrap.servers"] == "contoso.servicebus.windows.net:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "PLAIN"
    assert config["sasl.username"] == "$ConnectionString"
    assert config["sasl.password"] == CONN
    # Microsoft's recommendations for the Kafka endpoint
    assert config["request.timeout.ms"] == 60_000
    assert config["metadata.max.age.ms"] == 180_000
    assert config["socket.keepalive.enable"] is True
    assert config["compression.type"] == "none"
    assert config["enable.idempotence"] is True and config["acks"] == "all"


def test_eventhubs_consumer_defaults_to_30_s_session_and_cooperative_sticky() -> None:
    config = kafka_config.consumer_config(settings(profile="eventhubs", eventhubs={"connection_string": CONN}), "g")
    assert config["session.timeout.ms"] == 30_000
    assert config["heartbeat.interval.ms"] == 3_000
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["enable.auto.commit"] is False and config["enable.auto.offset.store"] is False


@pytest.mark.parametrize(
    ("connection_string", "missing"),
    [
        ("SharedAccessKeyName=k;SharedAccessKey=v", "Endpoint"),
        ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=v", "SharedAccessKeyName"),
        ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k", "SharedAccessKey"),
        ("Endpoint=sb://ns.servicebus.windows.net/", "SharedAccessKeyName, SharedAccessKey"),
    ],
)
def test_connection_string_missing_a_part_names_it(connection_string: str, missing: str) -> None:
    with pytest.raises(ConnectionStringError, match=f"missing {missing}"):
        kafka_config.parse_connection_string(connection_string)


def test_connection_string_errors_for_wrong_scheme_and_garbage() -> None:
    with pytest.raises(ConnectionStringError, match="sb://"):
        kafka_config.parse_connection_string("Endpoint=https://x/;SharedAccessKeyName=k;SharedAccessKey=v")
    with pytest.raises(ConnectionStringError, match="without '='"):
        kafka_config.parse_connection_string("garbage")
    with pytest.raises(ConnectionStringError, match="HUBSTREAM_EVENTHUBS__CONNECTION_STRING"):
        kafka_config.producer_config(settings(profile="eventhubs"))


def test_entity_path_is_kept() -> None:
    conn = kafka_config.parse_connection_string(CONN + ";EntityPath=chat")
    assert conn.entity_path == "chat" and conn.fully_qualified_namespace == "contoso.servicebus.windows.net"


def test_kafka_profile_passes_security_through_and_extra_wins() -> None:
    s = settings(
        profile="kafka",
        kafka={
            "bootstrap_servers": "b:9092",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "u",
            "sasl_password": "hunter2-secret",
            "extra": {"linger.ms": 50},
        },
    )
    config = kafka_config.producer_config(s)
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.password"] == "hunter2-secret"
    assert config["linger.ms"] == 50
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s.model_dump())  # secrets never print


def test_missing_bootstrap_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS"):
        kafka_config.admin_config(settings(profile="kafka"))


def test_max_poll_interval_below_session_is_rejected() -> None:
    s = settings(profile="kafka", kafka={"bootstrap_servers": "b:1"}, consumer={"max_poll_interval_ms": 1000})
    with pytest.raises(ConfigurationError, match="max_poll_interval_ms"):
        kafka_config.consumer_config(s, "g")


def test_settings_read_nested_variables_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSTREAM_PROFILE", "kafka")
    monkeypatch.setenv("HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS", "k:1")
    monkeypatch.setenv("HUBSTREAM_CONSUMER__SESSION_TIMEOUT_MS", "6000")
    s = Settings(_env_file=None)
    assert s.profile == "kafka" and s.kafka.bootstrap_servers == "k:1" and s.consumer.session_timeout_ms == 6000


@pytest.mark.parametrize(
    ("endpoint", "bootstrap", "protocol"),
    [
        ("sb://contoso.servicebus.windows.net/", "contoso.servicebus.windows.net:9093", "SASL_SSL"),
        ("sb://contoso.servicebus.windows.net", "contoso.servicebus.windows.net:9093", "SASL_SSL"),
        ("sb://localhost:19094/", "localhost:19094", "SASL_SSL"),  # an explicit port is kept
        ("sb://127.0.0.1:19094", "127.0.0.1:19094", "SASL_SSL"),
        ("sb://[::1]:19094/", "[::1]:19094", "SASL_SSL"),
    ],
)
def test_the_bootstrap_comes_from_the_endpoint(endpoint: str, bootstrap: str, protocol: str) -> None:
    conn = kafka_config.parse_connection_string(f"Endpoint={endpoint};SharedAccessKeyName=k;SharedAccessKey=v")
    assert conn.bootstrap_servers == bootstrap and conn.security_protocol == protocol


@pytest.mark.parametrize(
    ("endpoint", "bootstrap"),
    [("sb://localhost", "localhost:9092"), ("sb://eventhubs-emulator:5672/", "eventhubs-emulator:5672")],
)
def test_the_event_hubs_emulators_connection_string_is_sasl_plaintext(endpoint: str, bootstrap: str) -> None:
    conn_string = (
        f"Endpoint={endpoint};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;"
        "UseDevelopmentEmulator=true;"
    )
    config = kafka_config.producer_config(settings(profile="eventhubs", eventhubs={"connection_string": conn_string}))
    assert config["bootstrap.servers"] == bootstrap
    assert config["security.protocol"] == "SASL_PLAINTEXT" and config["sasl.mechanism"] == "PLAIN"
    assert "ssl.ca.location" not in config


@pytest.mark.parametrize("endpoint", ["sb://host:0/", "sb://host:99999", "sb://host:abc/", "sb://host/path/"])
def test_a_bad_endpoint_port_or_path_is_refused(endpoint: str) -> None:
    with pytest.raises(ConnectionStringError, match="Endpoint"):
        kafka_config.parse_connection_string(f"Endpoint={endpoint};SharedAccessKeyName=k;SharedAccessKey=v")


def test_the_ca_file_sets_the_trust_for_the_kafka_connection(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    local = CONN.replace("contoso.servicebus.windows.net", "localhost:19094")
    config = kafka_config.admin_config(
        settings(profile="eventhubs", eventhubs={"connection_string": local, "ca_file": str(ca)})
    )
    assert config["ssl.ca.location"] == str(ca) and config["bootstrap.servers"] == "localhost:19094"
    assert config["broker.address.family"] == "v4"  # local listeners are on 127.0.0.1
    default = kafka_config.admin_config(settings(profile="eventhubs", eventhubs={"connection_string": CONN}))
    assert "ssl.ca.location" not in default  # system trust


def test_entra_uses_oauthbearer_with_a_shared_callback_for_the_namespace_scope() -> None:
    s = settings(profile="eventhubs", eventhubs={"auth": "entra", "namespace": "contoso.servicebus.windows.net"})
    producer = kafka_config.producer_config(s)
    assert producer["bootstrap.servers"] == "contoso.servicebus.windows.net:9093"
    assert producer["security.protocol"] == "SASL_SSL" and producer["sasl.mechanism"] == "OAUTHBEARER"
    assert "sasl.username" not in producer and "sasl.password" not in producer
    oauth_cb = producer["oauth_cb"]
    assert (
        isinstance(oauth_cb, OAuthBearerTokens) and oauth_cb.scope == "https://contoso.servicebus.windows.net/.default"
    )
    assert kafka_config.consumer_config(s, "g")["oauth_cb"] is oauth_cb
    assert kafka_config.admin_config(s)["oauth_cb"] is oauth_cb
    assert producer["request.timeout.ms"] == 60_000  # Microsoft's settings hold for both logins


def test_entra_takes_the_namespace_from_the_connection_string_and_keeps_its_port() -> None:
    local = CONN.replace("contoso.servicebus.windows.net", "localhost:19095")
    s = settings(profile="eventhubs", eventhubs={"auth": "entra", "connection_string": local})
    config = kafka_config.client_config(s)
    assert config["bootstrap.servers"] == "localhost:19095" and config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["oauth_cb"].scope == "https://localhost/.default"


def test_entra_with_a_bootstrap_override_asks_for_the_namespaces_audience() -> None:
    s = settings(
        profile="eventhubs",
        eventhubs={"namespace": "hubstream-test.servicebus.windows.net"},  # auth inferred: no connection string
        kafka={"bootstrap_servers": "localhost:19095"},
    )
    config = kafka_config.client_config(s)
    assert config["bootstrap.servers"] == "localhost:19095"
    assert config["oauth_cb"].scope == "https://hubstream-test.servicebus.windows.net/.default"


def test_entra_without_a_namespace_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="HUBSTREAM_EVENTHUBS__NAMESPACE"):
        kafka_config.producer_config(settings(profile="eventhubs", eventhubs={"auth": "entra"}))
    with pytest.raises(ConnectionStringError, match="HUBSTREAM_EVENTHUBS__CONNECTION_STRING"):
        kafka_config.producer_config(settings(profile="eventhubs", eventhubs={"auth": "connection-string"}))


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        (None, {}),
        ("login.microsoftonline.com", {"authority": "https://login.microsoftonline.com"}),
        ("https://login.microsoftonline.us", {"authority": "https://login.microsoftonline.us"}),
        (
            "https://localhost:8444",
            {"authority": "https://localhost:8444", "disable_instance_discovery": True, "connection_verify": "ca.pem"},
        ),
    ],
)
def test_a_non_microsoft_authority_goes_without_instance_discovery(
    authority: str | None, expected: dict[str, object]
) -> None:
    assert credential_options(authority, "ca.pem") == expected
