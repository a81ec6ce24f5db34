"""The Avro contracts in ``schemas/avro/*.avsc`` and the topic catalog that binds topics to them."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException

from hubstream.errors import ContractError, UnknownTopicError
from hubstream.settings import Settings


@dataclass(frozen=True)
class Contract:
    """One Avro record schema. ``text`` is what gets registered.

    ``text`` is the compact JSON of the file, keys in file order. Java's ``Schema.toString()`` may order a
    field's keys differently (``doc`` before ``default``); registries compare the JSON value, not the text, so Java
    and Python producers still find one version (tests/test_java_interop.py checks every contract).
    """

    name: str
    text: str
    schema: dict[str, Any]
    path: Path | None = None

    @classmethod
    def from_text(cls, text: str, path: Path | None = None) -> Contract:
        where = f" in {path}" if path else ""
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"schema{where} is not valid JSON: {exc}") from exc
        try:
            parsed = fastavro.parse_schema(schema, _write_hint=False)
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            raise ContractError(f"schema{where} is not valid Avro: {exc}") from exc
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise ContractError(f"schema{where} must be an Avro record at the top level")
        compact = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
        return cls(name=parsed["name"], text=compact, schema=schema, path=path)

    def field(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.schema.get("fields", []) if f["name"] == name), None)


@dataclass(frozen=True)
class TopicBinding:
    topic: str
    schema: str
    key_field: str | None
    partitions: int | None = None


@dataclass(frozen=True)
class Catalog:
    contracts: dict[str, Contract]
    topics: dict[str, TopicBinding]

    @classmethod
    def load(cls, contracts_dir: Path, topics_file: Path) -> Catalog:
        contracts = load_contracts(contracts_dir)
        return cls(contracts=contracts, topics=load_topics(topics_file, contracts))

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls.load(settings.contracts_dir, settings.topics_file)

    def binding(self, topic: str) -> TopicBinding:
        try:
            return self.topics[topic]
        except KeyError:
            raise UnknownTopicError(topic, list(self.topics)) from None

    def contract_for(self, topic: str) -> Contract:
        return self.contracts[self.binding(topic).schema]


def load_contracts(directory: Path) -> dict[str, Contract]:
    if not directory.is_dir():
        raise ContractError(f"contracts directory {directory} does not exist (set HUBSTREAM_CONTRACTS_DIR)")
    contracts: dict[str, Contract] = {}
    for path in sorted(directory.glob("*.avsc")):
        contract = Contract.from_text(path.read_text(encoding="utf-8"), path)
        if contract.name in contracts:
            raise ContractError(f"{path} and {contracts[contract.name].path} both define {contract.name}")
        contracts[contract.name] = contract
    return contracts


def load_topics(path: Path, contracts: dict[str, Contract]) -> dict[str, TopicBinding]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"topic catalog {path} does not exist (set HUBSTREAM_TOPICS_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"topic catalog {path} is not valid TOML: {exc}") from exc
    topics: dict[str, TopicBinding] = {}
    for topic, entry in data.get("topics", {}).items():
        schema = entry.get("schema")
        if schema not in contracts:
            raise ContractError(
                f"{path}: topic {topic!r} names schema {schema!r}, which no .avsc defines "
                f"(known: {', '.join(sorted(contracts)) or 'none'})"
            )
        key_field = entry.get("key_field")
        if key_field is not None and contracts[schema].field(key_field) is None:
            raise ContractError(f"{path}: topic {topic!r} key_field {key_field!r} is not a field of {schema}")
        topics[topic] = TopicBinding(topic, schema, key_field, entry.get("partitions"))
    return topics
