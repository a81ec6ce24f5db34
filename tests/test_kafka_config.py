"""Client configuration per profile, and Event Hubs connection strings."""

from __future__ import annotations

import pytest

from hubstream import kafka_config
from hubstream.errors import ConfigurationError, ConnectionStringError
from hubstream.settings import Settings

CONN = (
    "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=abc="
)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


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
