"""librdkafka configuration for producers, consumers and admin clients, per connection profile.

Profiles:
- ``local``: the embedded Tansu broker; short group timings so joins and failover take seconds.
- ``kafka``: any bootstrap; security settings passed through; librdkafka's own defaults otherwise.
- ``eventhubs``: SASL_SSL to the namespace, plus Microsoft's recommended client settings; the login is PLAIN with
  the connection string (``eventhubs.auth=connection-string``) or OAUTHBEARER with Entra ID tokens from the
  process's one azure-identity credential (``entra``, scope ``https://<namespace-host>/.default``; see
  hubstream/credentials.py). The Event Hubs emulator's connection string (``UseDevelopmentEmulator=true``) gives
  SASL_PLAINTEXT on port 9092 unless the Endpoint names a port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubstream.errors import ConfigurationError, ConnectionStringError
from hubstream.settings import Settings

EVENTHUBS_KAFKA_PORT = 9093
EMULATOR_KAFKA_PORT = 9092  # the Event Hubs emulator's Kafka endpoint (SASL_PLAINTEXT)

# Microsoft's guidance for the Event Hubs Kafka endpoint. The service closes idle connections after
# 240 s, enforces a 20 s minimum request timeout and accepts requests up to 1,046,528 bytes.
_EVENTHUBS_CLIENT = {
    "metadata.max.age.ms": 180_000,
    "socket.keepalive.enable": True,
    "request.timeout.ms": 60_000,
}
_EVENTHUBS_MAX_MESSAGE_BYTES = 1_000_000
_EVENTHUBS_PRODUCER = {
    "compression.type": "none",  # gzip only on Premium/Dedicated; none works on every tier
    "message.max.bytes": _EVENTHUBS_MAX_MESSAGE_BYTES,
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
    """What a connection string names: the namespace host (and port, when given), the SAS policy, the hub."""

    host: str
    port: int | None
    shared_access_key_name: str
    entity_path: str | None
    development_emulator: bool = False  # UseDevelopmentEmulator=true: the Event Hubs emulator, SASL_PLAINTEXT

    @property
    def fully_qualified_namespace(self) -> str:
        return self.host

    @property
    def bootstrap_servers(self) -> str:
        default = EMULATOR_KAFKA_PORT if self.development_emulator else EVENTHUBS_KAFKA_PORT
        return f"{_bracketed(self.host)}:{self.port or default}"

    @property
    def security_protocol(self) -> str:
        # the emulator's Kafka endpoint has no TLS (learn.microsoft.com/azure/event-hubs/overview-emulator)
        return "SASL_PLAINTEXT" if self.development_emulator else "SASL_SSL"


def parse_connection_string(connection_string: str) -> EventHubsConnection:
    """Parse ``Endpoint=sb://<ns>[:port]/;SharedAccessKeyName=<n>;SharedAccessKey=<k>[;EntityPath=<hub>]``
    (``;UseDevelopmentEmulator=true`` for the Event Hubs emulator)."""
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
    address = endpoint.removeprefix("sb://").strip("/")
    if not address or "/" in address:
        raise ConnectionStringError(
            f"Event Hubs connection string Endpoint must be sb://<host>[:port]/ (got {endpoint!r})"
        )
    host, port = split_host_port(address, what="Event Hubs connection string Endpoint", error=ConnectionStringError)
    emulator = parts.get("usedevelopmentemulator", "").lower() == "true"
    return EventHubsConnection(host, port, parts["sharedaccesskeyname"], parts.get("entitypath") or None, emulator)


def split_host_port(
    address: str, *, what: str, error: type[ConfigurationError] = ConfigurationError
) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port or None)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else None)
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    else:
        host, port_text = address, ""
    if not host or port_text is None or (port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536)):
        raise error(f"{what} must be host[:port] with a port from 1 to 65535 (got {address!r})")
    return host, int(port_text) if port_text else None


def eventhubs_connection(settings: Settings) -> EventHubsConnection:
    secret = settings.eventhubs.connection_string
    if secret is None or not secret.get_secret_value().strip():
        raise ConnectionStringError(
            "profile 'eventhubs' needs HUBSTREAM_EVENTHUBS__CONNECTION_STRING (the namespace's SAS connection string), "
            "or HUBSTREAM_EVENTHUBS__AUTH=entra with HUBSTREAM_EVENTHUBS__NAMESPACE for Entra ID"
        )
    return parse_connection_string(secret.get_secret_value())


def eventhubs_auth(settings: Settings) -> str:
    """``connection-string`` or ``entra``: as set, else ``connection-string`` when one is given, else ``entra``
    when a namespace is."""
    eh = settings.eventhubs
    if eh.auth:
        return eh.auth
    if eh.connection_string is not None:
        return "connection-string"
    if eh.namespace:
        return "entra"
    raise ConnectionStringError(
        "profile 'eventhubs' needs HUBSTREAM_EVENTHUBS__CONNECTION_STRING (the namespace's SAS connection string), "
        "or HUBSTREAM_EVENTHUBS__AUTH=entra with HUBSTREAM_EVENTHUBS__NAMESPACE (host[:port]) for Entra ID"
    )


def eventhubs_namespace(settings: Settings) -> tuple[str, int | None]:
    """The namespace (host, port) the ``entra`` login goes to: ``namespace``, else the connection string's."""
    eh = settings.eventhubs
    if eh.namespace:
        return split_host_port(eh.namespace, what="HUBSTREAM_EVENTHUBS__NAMESPACE")
    if eh.connection_string is not None:
        conn = eventhubs_connection(settings)
        return conn.host, conn.port
    raise ConfigurationError(
        "HUBSTREAM_EVENTHUBS__AUTH=entra needs HUBSTREAM_EVENTHUBS__NAMESPACE, the namespace's host[:port] "
        "(e.g. contoso.servicebus.windows.net), or a connection string to take it from"
    )


def eventhubs_scope(settings: Settings) -> str:
    """The token scope for the namespace's Kafka endpoint: ``https://<namespace-host>/.default``."""
    host, _ = eventhubs_namespace(settings)
    return f"https://{_bracketed(host)}/.default"


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings shared by producers, consumers and admin clients.

    For the eventhubs profile the first call in a process also logs in once (``eventhubs.check_login``), so a
    refused key or token stops the command at startup with BrokerLoginError or EntraTokenError.
    """
    if settings.profile == "eventhubs":
        config = _eventhubs_config(settings)
        if settings.eventhubs.check_login:
            from hubstream.login_check import check_login

            check_login(settings, config)
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


def _eventhubs_config(settings: Settings) -> dict[str, Any]:
    eh = settings.eventhubs
    if eventhubs_auth(settings) == "connection-string":
        conn = eventhubs_connection(settings)
        assert eh.connection_string is not None  # eventhubs_connection checked it
        config: dict[str, Any] = {
            "bootstrap.servers": settings.kafka.bootstrap_servers or conn.bootstrap_servers,
            "security.protocol": conn.security_protocol,
            "sasl.mechanism": "PLAIN",
            "sasl.username": "$ConnectionString",
            "sasl.password": eh.connection_string.get_secret_value(),
        }
        host = conn.host
    else:
        host, port = eventhubs_namespace(settings)
        from hubstream.credentials import oauth_tokens

        config = {
            "bootstrap.servers": settings.kafka.bootstrap_servers
            or f"{_bracketed(host)}:{port or EVENTHUBS_KAFKA_PORT}",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            # one object per process and scope: every client's refreshes come from one azure-identity credential
            "oauth_cb": oauth_tokens(settings, eventhubs_scope(settings)),
        }
    if eh.ca_file is not None and config["security.protocol"] == "SASL_SSL":
        config["ssl.ca.location"] = str(eh.ca_file)
    if host == "localhost" or str(config["bootstrap.servers"]).startswith("localhost:"):
        config["broker.address.family"] = "v4"  # local listeners bind 127.0.0.1; ::1 would fail first
    config.update(_EVENTHUBS_CLIENT)
    return config


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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
        config["message.max.bytes"] = min(settings.producer.max_message_bytes, _EVENTHUBS_MAX_MESSAGE_BYTES)
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
