"""Provisioning: the catalog's topics and their dead-letter topics exist, and its contracts are registered.

Used by `hubstream dev` and `hubstream provision` (e.g. the setup step of docker-compose.kafka.yml).
On Event Hubs topics (event hubs) are created in Azure, not through the Kafka admin API: create
``<topic>.dlq`` there too for each topic whose consumers dead-letter records.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from devstack.topics import ensure_topics
from hubstream import kafka_config
from hubstream.settings import Settings
from kafka_consumer.dead_letters import topic_config as dead_letter_topic_config
from schemas.contracts import Catalog
from schemas.registry import SchemaRegistry


@dataclass(frozen=True)
class Provisioned:
    topics: dict[str, int]
    dead_letter_topics: dict[str, int]
    created_topics: list[str]
    schema_ids: dict[str, str]
    topics_created_here: bool = True  # False on Event Hubs, where event hubs are made in Azure


def provision(settings: Settings, *, default_partitions: int = 3) -> Provisioned:
    catalog = Catalog.from_settings(settings)
    topics = {name: binding.partitions or default_partitions for name, binding in catalog.topics.items()}
    suffix = settings.consumer.dead_letter_suffix
    dead_letters = {name + suffix: n for name, n in topics.items()} if settings.consumer.dead_letter else {}
    created: list[str] = []
    if settings.profile != "eventhubs":
        admin = AdminClient(kafka_config.admin_config(settings))
        room = dict.fromkeys(dead_letters, dead_letter_topic_config(settings))  # a dead letter's headers fit too
        created = ensure_topics(admin, {**topics, **dead_letters}, room)
    registry = SchemaRegistry.from_settings(settings)
    try:
        schema_ids = {name: registry.register(contract) for name, contract in catalog.contracts.items()}
    finally:
        registry.close()
    return Provisioned(topics, dead_letters, created, schema_ids, settings.profile != "eventhubs")
