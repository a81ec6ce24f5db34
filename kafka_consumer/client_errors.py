"""How a worker treats librdkafka's errors: fatal ones stop it, the rest are logged while librdkafka retries."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError

from hubstream.errors import BrokerError

log = logging.getLogger(__name__)


def check_record_error(group: str, error: KafkaError) -> None:
    """An error delivered in place of a record; raises BrokerError when the client can never recover."""
    if error.code() == KafkaError._PARTITION_EOF:
        return
    if error.fatal():
        raise BrokerError(f"fatal consumer error: {error.str()}")
    # e.g. a subscribed topic that does not exist yet; librdkafka keeps retrying
    log.warning("group %s: %s", group, error.str(), extra={"event": "consumer_error", "group": group})


def client_error_logger(group: str) -> Callable[[KafkaError], None]:
    """librdkafka's error_cb: connection-level trouble (brokers down, authentication), logged."""

    def on_error(error: KafkaError) -> None:
        log.warning(
            "group %s: kafka client error: %s", group, error.str(), extra={"event": "client_error", "group": group}
        )

    return on_error
