"""The one settings object, read from the environment (prefix ``HUBSTREAM_``) and ``.env``.

Groups are nested models; their variables use ``__`` between group and field, e.g.
``HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS`` or ``HUBSTREAM_EVENTHUBS__CONNECTION_STRING``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from hubstream import ports
from hubstream.errors import ConfigurationError

Profile = Literal["local", "kafka", "eventhubs"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Assignor = Literal["range", "roundrobin", "cooperative-sticky"]

PACKAGE_SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


def working_schemas(name: str) -> Path:
    """``schemas/<name>`` of the working directory if it exists, else the one installed with hubstream."""
    local = Path("schemas") / name
    return local.resolve() if local.exists() else PACKAGE_SCHEMAS_DIR / name


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


EventHubsAuth = Literal["connection-string", "entra"]


class EventHubsSettings(_Group):
    """Profile ``eventhubs``: SASL_SSL to the namespace's Kafka endpoint, logged in with a SAS connection string
    (``connection-string``, PLAIN) or with Entra ID tokens from azure-identity (``entra``, OAUTHBEARER).

    ``auth`` unset: ``connection-string`` when one is given, else ``entra``. ``entra`` takes its namespace from
    ``namespace``, else from the connection string's Endpoint; the credential is azure-identity's
    DefaultAzureCredential, configured by its own variables (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
    managed identity, ``az login``); hubstream/credentials.py says how it is shared.
    """

    connection_string: SecretStr | None = None
    auth: EventHubsAuth | None = None
    # host[:port] of the namespace, e.g. contoso.servicebus.windows.net (port 9093 when none is given)
    namespace: str | None = None
    # CA bundle (PEM) the broker's certificate is checked against; unset: the system's trust store. For a
    # non-Microsoft authority (the local fake Entra ID) it is also what the credential trusts over HTTPS
    ca_file: Path | None = None
    # the Entra ID authority: unset is the public cloud (login.microsoftonline.com); a host or https URL.
    # Authorities that are not Microsoft's are used without instance discovery (a local fake works)
    authority: str | None = None
    # how long getting one token may take before the client fails with EntraTokenError (never a hang)
    token_timeout_s: float = Field(default=20.0, gt=0)
    # log in once when the first client is configured, so a wrong key or a refused token stops the command
    # at startup with a message instead of retrying in the background (cached per process)
    check_login: bool = True
    check_login_timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("namespace")
    @classmethod
    def _bare_namespace(cls, value: str | None) -> str | None:
        if value is not None and ("://" in value or "/" in value):
            # the value is not repeated: a connection string put here by mistake must not be printed
            raise ValueError("a bare host[:port] without scheme or path, e.g. contoso.servicebus.windows.net")
        return value or None

    @field_validator("authority")
    @classmethod
    def _https_authority(cls, value: str | None) -> str | None:
        if value and "://" in value and not value.startswith("https://"):
            raise ValueError("the Entra authority must be https:// (azure-identity refuses anything else)")
        return value or None

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file; give the PEM bundle of the CA that signed the broker's certificate")
        return value


class RegistrySettings(_Group):
    """Azure Schema Registry (or the local emulator) the serde looks schemas up in."""

    # host[:port] handed to SchemaRegistryClient as fully_qualified_namespace; for Event Hubs this
    # defaults to the namespace from the connection string
    namespace: str | None = None
    group: str = "hubstream"
    ca_file: Path | None = None
    # "static" sends `token` (the local emulator); "azure" uses azure-identity's DefaultAzureCredential, the same
    # object the eventhubs profile's Kafka clients use (same authority and trust)
    credential: Literal["static", "azure"] | None = None
    token: SecretStr = SecretStr("hubstream-local")
    id_cache_size: int = 1024
    # per request (connect, and read); the Azure SDK retries a failed request 3 times on top
    timeout_s: float = Field(default=10.0, gt=0)


class ProducerSettings(_Group):
    linger_ms: int = 5
    # how long a send may wait for the broker's acknowledgement before it fails (HTTP 503); librdkafka takes 0
    # as "forever", so it is refused
    delivery_timeout_ms: int = Field(default=15_000, gt=0)
    max_message_bytes: int = 1_000_000


class ConsumerSettings(_Group):
    """Consumer-group workers: membership timing (``None`` takes the profile's default, see kafka_config),
    processing, commits, failure handling and the ops endpoint. kafka_consumer/runtime.py says how they act."""

    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int = 300_000
    assignor: Assignor | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"

    # processing: 1 handles a partition's records one by one; N > 1 runs up to N at once, never two of one key
    key_concurrency: int = Field(default=1, ge=1, le=1000)
    handler_threads: int = Field(default=8, ge=1)  # thread pool for plain (non-async) handlers
    # backpressure: a partition with this many records waiting or in flight is paused, and resumed at half
    max_pending_per_partition: int = Field(default=500, ge=1)
    # a handler running longer than this is logged (default: half of max_poll_interval_ms)
    handler_budget_ms: int | None = Field(default=None, ge=1)
    # how long revocation and shutdown wait for handlers in flight before giving their records up
    drain_timeout_ms: int = Field(default=15_000, ge=0)

    # commits: per partition every interval or after this many records, never above the rate cap
    commit_interval_ms: int = Field(default=1_000, ge=1)
    commit_every_records: int = Field(default=1_000, ge=1)
    max_commits_per_second: float = Field(default=2.0, gt=0)  # per partition; Event Hubs throttles above 4

    # failures: attempts include the first call; backoff is exponential with jitter
    retry_attempts: int = Field(default=5, ge=1)
    retry_initial_backoff_ms: int = Field(default=200, ge=0)
    retry_max_backoff_ms: int = Field(default=10_000, ge=0)
    dead_letter: bool = True  # False: a record that keeps failing stops its partition instead
    dead_letter_suffix: str = ".dlq"

    # the archive sink (consume --sink archive:DIR) rolls a partition's file at this age or size
    archive_roll_seconds: float = Field(default=60.0, gt=0)
    archive_roll_bytes: int = Field(default=64 * 1024 * 1024, ge=1)

    # the worker's /metrics, /healthz and /readyz. Unset: 8081, or a free port when another worker holds it
    # (the URL is logged); 0 always picks a free one; any other port must be free or the worker does not start
    ops_host: str = "127.0.0.1"
    ops_port: int | None = Field(default=None, ge=0, le=65535)


class ApiSettings(_Group):
    """The producer API: where it listens, what it takes, and who may publish (kafka_producer/ says how)."""

    host: str = "127.0.0.1"
    port: int = ports.PRODUCER_API
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    max_batch_events: int = Field(default=1_000, ge=1)  # a batch with more is refused (413)
    max_problems: int = Field(default=100, ge=1)  # a 422 lists this many problems, and counts them all

    # who may publish: unset is off in the local profile and required in the others
    auth: bool | None = None
    # API keys (stored hashed; `hubstream api-keys` manages them). Unset: <state_dir>/api-keys.json
    api_keys_file: Path | None = None
    # Entra ID (or any OpenID provider) bearer tokens: RS256 JWTs signed by a key of this JWKS, with this
    # issuer and audience (all three are needed to accept tokens)
    jwks_url: str | None = None
    jwks_ca_file: Path | None = None  # the CA the JWKS URL's certificate is checked against; unset: the system's
    issuer: str | None = None
    audience: str | None = None
    leeway_s: float = Field(default=30.0, ge=0)

    # the server: connections over this many get 503 at once; idle keep-alive connections are closed after
    limit_concurrency: int = Field(default=512, ge=1)
    timeout_keep_alive_s: float = Field(default=5.0, gt=0)
    timeout_graceful_shutdown_s: float = Field(default=15.0, gt=0)
    # contract ids are looked up at startup and, while the registry fails, again this often (readiness waits)
    registry_retry_s: float = Field(default=2.0, gt=0)


class DeliveryAuthSettings(_Group):
    """Who may read a mailbox: bearer JWTs whose ``sub`` is the recipient (or that carry the admin scope)."""

    secret: SecretStr | None = None  # HS256: a shared secret (hubstream clients token mints with it)
    jwks_url: str | None = None  # RS256: the JWKS of your own identity provider
    audience: str = "hubstream-delivery"
    issuer: str | None = None  # required when set
    admin_scope: str = "hubstream.admin"  # in the space-separated `scope` claim: any mailbox, and the admin API
    leeway_s: float = Field(default=30.0, ge=0)


class WebhookSettings(_Group):
    """Signed webhooks from the mailboxes (delivery/webhooks/ says how they act)."""

    # seconds to wait before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    retry_schedule_s: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0], min_length=1
    )
    jitter: float = Field(default=0.2, ge=0, lt=1)  # each wait is spread by +-20%
    timeout_s: float = Field(default=15.0, gt=0)  # a 2xx must come within this
    max_retry_after_s: float = Field(default=86400, gt=0)  # a 429/503 Retry-After is honoured up to this
    disable_after_s: float = Field(default=5 * 86400, gt=0)  # an endpoint failing every attempt this long is disabled
    max_in_flight: int = Field(default=10, ge=1)  # concurrent requests per endpoint
    claim_batch: int = Field(default=100, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)  # how often due retries are looked for
    attempts_retention_s: float = Field(default=7 * 86400, gt=0)
    # which endpoint URLs are refused (SSRF): plain http and loopback addresses are allowed only when
    # allow_loopback (default: on in the local profile), private and link-local addresses only when allow_private
    allow_loopback: bool | None = None
    allow_private: bool = False


class DeliverySettings(_Group):
    """The delivery node: mailboxes, their retention, and the client streams (delivery/ says how they act)."""

    store: str = "sqlite:"  # sqlite:PATH (sqlite: alone = <state_dir>/delivery.db) or postgresql://...
    host: str = "127.0.0.1"
    port: int = Field(default=ports.DELIVERY, ge=0, le=65535)
    max_messages: int = Field(default=10_000, ge=1)  # per recipient
    ttl_s: float = Field(default=7 * 86400, gt=0)
    acked_grace_s: float = Field(default=3600, ge=0)  # acked messages stay readable this long
    prune_interval_s: float = Field(default=60, gt=0)
    page_limit: int = Field(default=100, ge=1, le=1000)  # messages per page when the client names no limit
    keepalive_s: float = Field(default=15, gt=0)  # SSE comment / WebSocket ping when idle, below proxy timeouts
    retry_ms: int = Field(default=3000, ge=100)  # the reconnect hint; each stream gets it with +-50% jitter
    send_timeout_s: float = Field(default=10, gt=0)  # a client that takes longer to take a send is cut off
    # PostgreSQL: how often a node looks for writes whose notification it missed (e.g. its listener reconnected)
    wake_fallback_s: float = Field(default=2.0, gt=0)
    stream_max_s: float = Field(default=3600, gt=0)  # then a stream is closed (with a retry hint) to spread load
    batch_max: int = Field(default=500, ge=1)  # records per mailbox write transaction
    auth: DeliveryAuthSettings = Field(default_factory=DeliveryAuthSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUBSTREAM_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="forbid",
    )

    profile: Profile = "local"
    state_dir: Path = Path(".hubstream")
    # the working directory's schemas/ when it has one (a schema owner's clone), else the contracts bundled here
    contracts_dir: Path = Field(default_factory=lambda: working_schemas("avro"))
    topics_file: Path = Field(default_factory=lambda: working_schemas("topics.toml"))
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    eventhubs: EventHubsSettings = Field(default_factory=EventHubsSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)


def load_settings(**values: object) -> Settings:
    """Settings from the environment and ``.env`` (``values`` win). Errors name the variable, never its value:
    a secret put in the wrong variable must not end up in a terminal or a log."""
    try:
        return Settings(**values)  # type: ignore[arg-type]  # pydantic validates each value
    except ValidationError as exc:
        raise settings_error(exc) from None
    except SettingsError as exc:  # a value that is not the JSON a nested field takes; the message names no value
        raise ConfigurationError(f"invalid settings: {exc} (a JSON object is expected there)") from None


def with_overrides(settings: Settings, group: str, **values: object) -> Settings:
    """A copy with fields of one group replaced (e.g. command-line options), validated like the environment's."""
    current = getattr(settings, group)
    try:
        updated = type(current).model_validate({**current.model_dump(), **values})
    except ValidationError as exc:
        raise settings_error(exc, group) from None
    return settings.model_copy(update={group: updated})


def settings_error(exc: ValidationError, group: str | None = None) -> ConfigurationError:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        path = [group, *map(str, error["loc"])] if group else [str(part) for part in error["loc"]]
        variable = "HUBSTREAM_" + "__".join(path).upper()
        problems.append(f"{variable}: {error['msg']}")
    return ConfigurationError("invalid settings: " + "; ".join(problems))
