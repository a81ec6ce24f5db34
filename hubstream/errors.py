"""Every error hubstream raises on purpose, under one root.

HubstreamError
├── ConfigurationError              settings that cannot work; the message names the setting
│   └── ConnectionStringError       an Event Hubs connection string is missing a part
├── StackNotRunningError            no local stack found where --state-dir points
├── PortInUseError                  a local stack port is taken
├── ContractError                   a .avsc contract or the topic catalog is wrong
│   └── UnknownTopicError           a topic with no contract bound to it
├── SerdeError                      encoding or decoding a record failed
│   ├── EventValidationError        an event does not match its schema (carries field paths)
│   ├── UnknownSchemaIdError        a schema id the registry does not know
│   └── UndecodableRecordError      bytes or headers that are not an Azure-format Avro record
├── RegistryError                   the schema registry refused or could not be reached
├── IdempotencyError                misuse of the processed-ids store (kafka_consumer/idempotency.py)
├── ArchiveError                    the archive sink cannot write (kafka_consumer/sinks/)
│   └── ArchiveCorruptError         archive files overlap; names both files
└── BrokerError                     Kafka produce / consume / admin failures
    └── BrokerUnavailableError      the broker did not acknowledge within the bounded wait
"""

from __future__ import annotations


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
    """An event does not match its schema. `problems` maps field paths to what is wrong."""

    def __init__(self, schema_name: str, problems: list[tuple[str, str]]) -> None:
        self.schema_name = schema_name
        self.problems = problems
        details = "; ".join(f"{path}: {problem}" for path, problem in problems)
        super().__init__(f"event does not match {schema_name}: {details}")


class UnknownSchemaIdError(SerdeError):
    def __init__(self, schema_id: str) -> None:
        self.schema_id = schema_id
        super().__init__(
            f"schema id {schema_id!r} is not known to the schema registry; "
            "the record was written against another registry or the schema was deleted"
        )


class UndecodableRecordError(SerdeError):
    pass


class RegistryError(HubstreamError):
    pass


class BrokerError(HubstreamError):
    pass


class BrokerUnavailableError(BrokerError):
    pass
