"""librdkafka configuration for producers, consumers and admin clients, per connection profile.

Profiles:
- ``local``: the embedded Tansu broker; short group timings so joins and failover take seconds.
- ``kafka``: any bootstrap; security settings passed through; librdkafka's own defaults otherwise.
- ``eventhubs``: SASL_SSL/PLAIN with the connection string, plus Microsoft's recommended client settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubstream.errors import ConfigurationError, ConnectionStringError
from hubstream.settings import Settings

EVENTHUBS_KAFKA_PORT = 9093

# Microsoft's guidance for the Event Hubs Kafka endpoint. The service closes idle connections after
# 240 s, enforces a 20 s minimum request timeout and accepts requests up to 1,046,528 bytes.
_EVENTHUBS_CLIENT = {
    "metadata.max.age.ms": 180_000,
    "socket.keepalive.enable": True,
    "request.timeout.ms": 60_000,
}
_EVENTHUBS_PRODUCER = {
    "compression.type": "none",  # gzip only on Premium/Dedicated; none works on every tier
    "message.max.bytes": 1_000_000,
}

# Group timing per profile: (session.timeout.ms, heartbeat.interval.ms, assignor).
# Local Tansu accepts sessions below Kafka's 6 s floor and needs 2-3 join rounds for cooperative-sticky.
_GROUP_DEFAULTS: dict[str, tuple[int, int, str]] = {
    "local": (3_000, 1_000, "range"),
    "kafka": (45_000, 3_000, "cooperative-sticky"),
    "eventhubs": (30_000, 3_000, "cooperative-sticky"),
}


@dataclass(frozen=True)
class EventHubsConnection:
    fully_qualified_namespace: str
    shared_access_key_name: str
    entity_path: str | None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.fully_qualified_namespace}:{EVENTHUBS_KAFKA_PORT}"


def parse_connection_string(connection_string: str) -> EventHubsConnection:
    """Parse ``Endpoint=sb://<ns>/;SharedAccessKeyName=<n>;SharedAccessKey=<k>[;EntityPath=<hub>]``."""
    parts: dict[str, str] = {}
    for item in connection_string.strip().split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ConnectionStringError(
                f"Event Hubs connection string has a part without '=' ({key.strip()[:20]!r}); copy it again from "
                "the portal: Event Hubs namespace > Shared access policies > Connection string-primary key"
            )
        parts[key.strip().lower()] = value.strip()
    missing = [name for name in ("Endpoint", "SharedAccessKeyName", "SharedAccessKey") if not parts.get(name.lower())]
    if missing:
        raise ConnectionStringError(
            f"Event Hubs connection string is missing {', '.join(missing)}; expected "
            "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<policy>;SharedAccessKey=<key>"
        )
    endpoint = parts["endpoint"]
    if not endpoint.startswith("sb://"):
        raise ConnectionStringError(f"Event Hubs connection string Endpoint must start with sb:// (got {endpoint!r})")
    host = endpoint.removeprefix("sb://").strip("/")
    if not host:
        raise ConnectionStringError("Event Hubs connection string Endpoint has no namespace host after sb://")
    return EventHubsConnection(host, parts["sharedaccesskeyname"], parts.get("entitypath") or None)


def eventhubs_connection(settings: Settings) -> EventHubsConnection:
    secret = settings.eventhubs.connection_string
    if secret is None or not secret.get_secret_value().strip():
        raise ConnectionStringError(
            "profile 'eventhubs' needs HUBSTREAM_EVENTHUBS__CONNECTION_STRING (the namespace's SAS connection string)"
        )
    return parse_connection_string(secret.get_secret_value())


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings shared by producers, consumers and admin clients."""
    if settings.profile == "eventhubs":
        conn = eventhubs_connection(settings)
        config: dict[str, Any] = {
            "bootstrap.servers": settings.kafka.bootstrap_servers or conn.bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "$ConnectionString",
            "sasl.password": settings.eventhubs.connection_string.get_secret_value(),  # type: ignore[union-attr]
            **_EVENTHUBS_CLIENT,
        }
    else:
        if not settings.kafka.bootstrap_servers:
            raise ConfigurationError(
                "no Kafka bootstrap servers: set HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS, or start `hubstream dev` "
                "for the local profile"
            )
        config = {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "security.protocol": settings.kafka.security_protocol,
        }
        if settings.kafka.sasl_mechanism:
            config["sasl.mechanism"] = settings.kafka.sasl_mechanism
        if settings.kafka.sasl_username:
            config["sasl.username"] = settings.kafka.sasl_username
        if settings.kafka.sasl_password:
            config["sasl.password"] = settings.kafka.sasl_password.get_secret_value()
        if settings.kafka.ssl_ca_location:
            config["ssl.ca.location"] = str(settings.kafka.ssl_ca_location)
    config["client.id"] = settings.kafka.client_id
    return config


def producer_config(settings: Settings) -> dict[str, Any]:
    config = client_config(settings)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": settings.producer.linger_ms,
            "message.timeout.ms": settings.producer.delivery_timeout_ms,
            # murmur2 places keys on the same partitions as Java/.NET producers, so per-key order
            # holds when existing Kafka apps publish the same keys to the same topics
            "partitioner": "murmur2_random",
            "message.max.bytes": settings.producer.max_message_bytes,
        }
    )
    if settings.profile == "eventhubs":
        config.update(_EVENTHUBS_PRODUCER)
        config["message.max.bytes"] = min(settings.producer.max_message_bytes, _EVENTHUBS_PRODUCER["message.max.bytes"])
    config.update(settings.kafka.extra)
    return config


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    session_default, heartbeat_default, assignor_default = _GROUP_DEFAULTS[settings.profile]
    c = settings.consumer
    session = c.session_timeout_ms or session_default
    if c.max_poll_interval_ms < session:
        raise ConfigurationError(
            f"consumer max_poll_interval_ms ({c.max_poll_interval_ms}) must be at least session_timeout_ms ({session})"
        )
    config = client_config(settings)
    config.update(
        {
            "group.id": group_id,
            "session.timeout.ms": session,
            "heartbeat.interval.ms": c.heartbeat_interval_ms or min(heartbeat_default, session // 3),
            "max.poll.interval.ms": c.max_poll_interval_ms,
            "partition.assignment.strategy": c.assignor or assignor_default,
            "auto.offset.reset": c.auto_offset_reset,
            # offsets are committed by the runtime only after the handler finished
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
        }
    )
    if settings.profile == "local":
        config["fetch.wait.max.ms"] = 100  # Tansu's long poll does not wake on new data
    config.update(settings.kafka.extra)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    config = client_config(settings)
    config.update(settings.kafka.extra)
    return config
