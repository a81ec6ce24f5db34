"""Provisioning: the catalog's topics exist and its contracts are registered.

Used by `hubstream dev` and `hubstream provision` (e.g. the setup step of docker-compose.kafka.yml).
On Event Hubs topics (event hubs) are created in Azure, not through the Kafka admin API.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from hubstream import kafka_config
from hubstream.settings import Settings
from hubstream.topics import ensure_topics
from schemas.contracts import Catalog
from schemas.registry import SchemaRegistry


@dataclass(frozen=True)
class Provisioned:
    topics: dict[str, int]
    created_topics: list[str]
    schema_ids: dict[str, str]


def provision(settings: Settings, *, default_partitions: int = 3) -> Provisioned:
    catalog = Catalog.from_settings(settings)
    topics = {name: binding.partitions or default_partitions for name, binding in catalog.topics.items()}
    created: list[str] = []
    if settings.profile != "eventhubs":
        created = ensure_topics(AdminClient(kafka_config.admin_config(settings)), topics)
    registry = SchemaRegistry.from_settings(settings)
    try:
        schema_ids = {name: registry.register(contract) for name, contract in catalog.contracts.items()}
    finally:
        registry.close()
    return Provisioned(topics, created, schema_ids)
