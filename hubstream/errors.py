"""Every error hubstream raises on purpose, under one root; the message says what to do next.

The kernel's classes are defined here; the others next to the code that raises them (module in brackets), so
the kernel imports nothing of the project. ``tests/test_errors.py`` fails when a class is missing here or drawn
under the wrong parent.

HubstreamError
├── ConfigurationError                settings that cannot work; the message names the setting
│   ├── ConnectionStringError         an Event Hubs connection string is missing a part
│   └── UnknownModeError              an unknown compatibility mode name [schemas.compatibility]
├── StackNotRunningError              no local stack found where --state-dir points
├── PortInUseError                    a local stack port is taken
├── ContractError                     a .avsc contract or the topic catalog is wrong
│   ├── UnknownTopicError             a topic with no contract bound to it
│   ├── NoRecipientError              an event that names no recipient, where that dead-letters [delivery]
│   └── FieldAssignmentError          a send-test-event --set that is not FIELD=VALUE [kafka_consumer.admin]
├── SerdeError                        encoding or decoding a record failed
│   ├── EventValidationError          an event does not match its schema (carries field paths)
│   ├── UnknownSchemaIdError          a schema id the registry does not know (carries the raw record)
│   └── UndecodableRecordError        bytes or headers that are not an Azure-format Avro record (carries it too)
├── RegistryError                     the schema registry refused or could not be reached
│   ├── SchemaNotRegisteredError      a contract's exact text is not registered [schemas.registry]
│   └── ContractNotReadyError         503: the API has no schema id for the contract yet [kafka_producer.readiness]
├── EmulatorError                     the emulator's answers: Azure's status and code [schemas.emulator]
│   ├── InvalidRequestError           400 malformed id, empty body, bad name
│   ├── InvalidSchemaError            400 the schema text does not parse
│   ├── IncompatibleSchemaError       400 breaks the group's compatibility mode
│   ├── UnauthorizedError             401 bearer token missing or wrong
│   ├── NotFoundError                 404 group, schema, version or id unknown
│   ├── MethodNotAllowedError         405
│   ├── GroupConflictError            409 changing a used group's format
│   ├── PayloadTooLargeError          413 a request body over a schema's 1 MB
│   └── UnsupportedSchemaTypeError    415 unknown format, or not the group's format
├── BrokerError                       Kafka produce / consume / admin failures
│   ├── BrokerUnavailableError        the broker did not acknowledge within the bounded wait
│   │   ├── BrokerUnreachableError    no broker answered an operator command in time [kafka_consumer.admin]
│   │   └── ProducerQueueFullError    the producer's local queue is full; retry later [kafka_producer.producer]
│   ├── RecordTooLargeError           a record over the message size limit (the API's 413) [kafka_producer.producer]
│   ├── DeadLetterError               a record could not be dead-lettered; its partition stops [kafka_consumer]
│   ├── ReplayIncompleteError         dlq replay stopped before its commit; re-run it [kafka_consumer.admin]
│   ├── ReplayCommitError             dlq replay published but could not commit [kafka_consumer.admin]
│   ├── BrokerLoginError              the broker refused the login: connection string key, Entra token audience
│   ├── NoSuchTopicError              no such topic on the cluster [kafka_consumer.admin]
│   └── UnknownPartitionError         tail --partition the topic does not have [kafka_consumer.admin]
├── PermanentError                    raised by a handler: no retry will fix this record [kafka_consumer]
├── ProcessingStoppedError            the worker stopped on a record it could not process [kafka_consumer]
├── NotADeadLetterError               a record on a DLQ without hubstream's dead-letter headers [kafka_consumer]
├── IdempotencyError                  misuse of the processed-ids store [kafka_consumer.idempotency]
├── ArchiveError                      the archive sink cannot write [kafka_consumer.archive]
│   └── ArchiveCorruptError           archive files overlap; names both files
├── ReplayError                       dlq replay was asked for what it cannot do [kafka_consumer.admin]
│   ├── UnknownFilterError            a --filter it does not understand
│   └── TopicNotFoundError            the DLQ or the original topic does not exist
├── ActiveGroupError                  offsets of a group that has members cannot be reset [kafka_consumer.admin]
├── InvalidStartError                 a tail --from it does not understand [kafka_consumer.admin]
├── RejectedRequestError              a request the producer API cannot take as it is [kafka_producer.body]
├── PublishAuthError                  401: no credential, or one not valid here [kafka_producer.access]
│   └── TopicForbiddenError           403: an API key not allowed on the topic
├── ApiKeyError                       an api-keys command that cannot be done (unknown id) [kafka_producer.api_keys]
├── AuthError                         401: no, a bad or an expired token [delivery.auth]
│   └── ForbiddenError                403: another recipient's mailbox, or not an admin
├── MailboxError                      a mailbox request that cannot be served as asked [delivery.mailbox]
│   ├── InvalidCursorError            a cursor this store did not hand out
│   └── AckAheadError                 409: an ack beyond the mailbox's last message
├── StoreUnavailableError             the mailbox store cannot be reached; retry later [delivery.mailbox]
├── WebhookNotFoundError              404: no webhook endpoint with that id [delivery.webhooks]
├── EndpointUrlError                  a webhook URL that is malformed, not https, or refused [delivery.webhooks]
├── WebhookVerificationError          a request not signed by this secret, or not recently [delivery.webhooks]
├── WebhookApiError                   the delivery node refused a webhooks command [hubstream_cli.webhooks]
├── LocalBrokerError                  the local Apache Kafka broker cannot run (`--broker tansu` still can)
│   ├── JavaNotFoundError             no Java 17 or newer on PATH
│   ├── KafkaJarsError                the broker's jars are not cached and Maven could not fetch them
│   └── BrokerStartError              the JVM exited or did not serve metadata in time; carries its log's tail
└── EntraTokenError                   no Entra ID token from the credential for a scope (names both)
"""

from __future__ import annotations

from typing import Any


class HubstreamError(Exception):
    """Root of hubstream's errors; the message says what to do next."""


class ConfigurationError(HubstreamError):
    pass


class ConnectionStringError(ConfigurationError):
    pass


class StackNotRunningError(HubstreamError):
    pass


class PortInUseError(HubstreamError):
    pass


class ContractError(HubstreamError):
    pass


class UnknownTopicError(ContractError):
    def __init__(self, topic: str, known: list[str]) -> None:
        self.topic = topic
        super().__init__(
            f"no contract is bound to topic {topic!r}; known topics: {', '.join(sorted(known)) or 'none'}. "
            "Add it to the topic catalog (schemas/topics.toml or HUBSTREAM_TOPICS_FILE)."
        )


class SerdeError(HubstreamError):
    pass


class EventValidationError(SerdeError):
    """An event does not match its schema. `problems` maps field paths to what is wrong; `total` counts the
    problems found, of which `problems` may list only the first (the message names at most ten)."""

    def __init__(self, schema_name: str, problems: list[tuple[str, str]], *, total: int | None = None) -> None:
        self.schema_name = schema_name
        self.problems = problems
        self.total = max(total or 0, len(problems))
        details = "; ".join(f"{path}: {problem}" for path, problem in problems[:10])
        more = f" (and {self.total - min(len(problems), 10)} more problems)" if self.total > 10 else ""
        super().__init__(f"event does not match {schema_name}: {details}{more}")


class UnknownSchemaIdError(SerdeError):
    """A schema id the registry does not know. Raised while decoding, it carries the raw record (``value``,
    ``headers``) so a consumer can dead-letter it without reading it again."""

    def __init__(self, schema_id: str, *, value: Any = None, headers: Any = None) -> None:
        self.schema_id = schema_id
        self.value = value
        self.headers = headers
        super().__init__(
            f"schema id {schema_id!r} is not known to the schema registry; "
            "the record was written against another registry or the schema was deleted"
        )


class UndecodableRecordError(SerdeError):
    """Bytes or headers that are not an Azure-format Avro record; carries the raw record (``value``, ``headers``,
    and ``schema_id`` when known) so a consumer can dead-letter it without reading it again."""

    def __init__(self, message: str, *, value: Any = None, headers: Any = None, schema_id: str | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.headers = headers
        self.schema_id = schema_id


class RegistryError(HubstreamError):
    pass


class BrokerError(HubstreamError):
    pass


class BrokerUnavailableError(BrokerError):
    pass


class LocalBrokerError(HubstreamError):
    pass


class JavaNotFoundError(LocalBrokerError):
    pass


class KafkaJarsError(LocalBrokerError):
    pass


class BrokerStartError(LocalBrokerError):
    pass


class BrokerLoginError(BrokerError):
    pass


class EntraTokenError(HubstreamError):
    """The azure-identity credential gave no token for ``scope`` (refused, failed or too slow)."""

    def __init__(self, credential: str, scope: str, problem: str) -> None:
        self.credential = credential
        self.scope = scope
        super().__init__(
            f"{credential} could not get an Entra ID token for scope {scope}: {problem}. Check azure-identity's "
            "settings (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, a managed identity, or `az login`), "
            "HUBSTREAM_EVENTHUBS__AUTHORITY, and that the identity has a role on the namespace"
        )
