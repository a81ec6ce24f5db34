"""The producer API's /metrics: requests by route template and status, validation failures, broker acks and
publish latency, per topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.provisioning import provision
from tests.fixtures.broker import LocalKafka
from tests.fixtures.events import chat_event
from tests.fixtures.services import CHAT, make_settings, producer_api, write_catalog


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_validation_failures_acks_and_latency_are_counted(
    kafka_broker: LocalKafka, registry_emulator: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("metrics", partitions=1)
    settings = make_settings(kafka_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}))
    provision(settings)
    with producer_api(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post(f"/v1/topics/{topic}/events", json=chat_event()).status_code == 200
        batch = {"events": [chat_event(sequence=i) for i in range(3)]}
        assert client.post(f"/v1/topics/{topic}/events:batch", json=batch).status_code == 200
        assert client.post(f"/v1/topics/{topic}/events", json={"eventId": "x"}).status_code == 422
        assert client.get("/no/such/path/123").status_code == 404
        found = samples(client.get("/metrics").text)
    route = "/v1/topics/{topic}/events"
    assert found[("hubstream_api_requests_total", (("route", route), ("status", "200")))] == 1
    assert found[("hubstream_api_requests_total", (("route", route), ("status", "422")))] == 1
    assert found[("hubstream_api_requests_total", (("route", "unmatched"), ("status", "404")))] == 1
    assert found[("hubstream_api_validation_failures_total", (("topic", topic),))] == 1
    assert found[("hubstream_api_broker_acks_total", (("outcome", "ok"), ("topic", topic)))] == 4
    assert found[("hubstream_api_publish_seconds_count", (("topic", topic),))] == 2  # one per request
    assert found[("hubstream_api_requests_in_flight", ())] == 1  # the /metrics request itself
