"""The one settings object, read from the environment (prefix ``HUBSTREAM_``) and ``.env``.

Groups are nested models; their variables use ``__`` between group and field, e.g.
``HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS`` or ``HUBSTREAM_EVENTHUBS__CONNECTION_STRING``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Profile = Literal["local", "kafka", "eventhubs"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Assignor = Literal["range", "roundrobin", "cooperative-sticky"]

PACKAGE_SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Group):
    """Connection to any Kafka broker (profile ``kafka``); the ``local`` profile fills these from the stack."""

    bootstrap_servers: str | None = None
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    client_id: str = "hubstream"
    # librdkafka properties passed through unchanged, e.g. '{"linger.ms": 20}'; they win over profile defaults
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict)


class EventHubsSettings(_Group):
    """Profile ``eventhubs``: a namespace-level (or event-hub-level) SAS connection string."""

    connection_string: SecretStr | None = None


class RegistrySettings(_Group):
    """Azure Schema Registry (or the local emulator) the serde looks schemas up in."""

    # host[:port] handed to SchemaRegistryClient as fully_qualified_namespace; for Event Hubs this
    # defaults to the namespace from the connection string
    namespace: str | None = None
    group: str = "hubstream"
    ca_file: Path | None = None
    # "static" sends `token` (the local emulator); "azure" uses azure-identity's DefaultAzureCredential
    credential: Literal["static", "azure"] | None = None
    token: SecretStr = SecretStr("hubstream-local")
    id_cache_size: int = 1024


class ProducerSettings(_Group):
    linger_ms: int = 5
    # how long a send may wait for the broker's acknowledgement before it fails (HTTP 503)
    delivery_timeout_ms: int = 15_000
    max_message_bytes: int = 1_000_000


class ConsumerSettings(_Group):
    """Group membership timing; ``None`` takes the profile's default (see kafka_config)."""

    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int = 300_000
    assignor: Assignor | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"


class ApiSettings(_Group):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUBSTREAM_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="forbid",
    )

    profile: Profile = "local"
    state_dir: Path = Path(".hubstream")
    contracts_dir: Path = PACKAGE_SCHEMAS_DIR / "avro"
    topics_file: Path = PACKAGE_SCHEMAS_DIR / "topics.toml"
    log_level: str = "INFO"

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    eventhubs: EventHubsSettings = Field(default_factory=EventHubsSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
