"""Creating topics on brokers that allow it (local Kafka; on Event Hubs, event hubs are made in Azure)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from hubstream.errors import BrokerError

_ADMIN_TIMEOUT_S = 15.0


def ensure_topics(
    admin: AdminClient, partitions_by_topic: dict[str, int], configs: dict[str, dict[str, str]] | None = None
) -> list[str]:
    """Create the topics that do not exist yet (with ``configs[name]``, if given); returns the names created.
    Existing topics are left as they are."""
    if not partitions_by_topic:
        return []
    existing = set(admin.list_topics(timeout=_ADMIN_TIMEOUT_S).topics)
    configs = configs or {}
    wanted = [
        NewTopic(name, num_partitions=n, config=configs.get(name, {}))
        for name, n in partitions_by_topic.items()
        if name not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, operation_timeout=_ADMIN_TIMEOUT_S).items():
        try:
            future.result(_ADMIN_TIMEOUT_S)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"could not create topic {name!r}: {exc.args[0].str()}") from exc
    return created
