"""Faults that heal: the schema registry goes away for 20 s while a worker consumes records with a schema id it
has not seen yet. The worker waits (reporting "degraded"), does not stop, and once the registry is back handles
every record exactly once, without a restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from hubstream.settings import Settings
from kafka_consumer.archive import ArchiveSink, archive_offsets
from kafka_consumer.wiring import build_worker
from schemas.contracts import Catalog, Contract
from schemas.natural import NaturalJson
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.registry import running_emulator, start_emulator
from tests.fixtures.services import CHAT, Collected, make_settings, produce_events, running_worker, write_catalog
from tests.fixtures.waiting import wait_for

OUTAGE_S = 20


def a_newer_version(contract: Contract) -> Contract:
    """The contract plus an optional field: a compatible version with its own schema id."""
    schema = json.loads(contract.text)
    schema["fields"].append({"name": "outageProbe", "type": ["null", "string"], "default": None})
    return Contract.from_text(json.dumps(schema, separators=(",", ":")))


def encoded(settings: Any, contract: Contract, events: list[dict[str, Any]]) -> list[tuple[str, bytes, Any]]:
    """Registered and encoded now, produced later (while the registry is down): (key, value, headers)."""
    with SchemaRegistry.from_settings(settings) as registry:
        registry.register(contract)
        serde = AvroSerde(registry)
        natural = NaturalJson(contract.schema)
        return [
            (e["conversationId"], (v := serde.encode(natural.from_json(e), contract)).value, v.headers) for e in events
        ]


def twenty_now_twenty_later(
    broker: LocalKafka, emulator: Any, tmp_path: Path, name: str
) -> tuple[str, Settings, list[tuple[str, bytes, Any]]]:
    """A topic with 20 records of the catalog's contract, and 20 more encoded (not produced) with a newer version."""
    topic = broker.create_topic(name, partitions=2)
    settings = make_settings(broker, emulator, write_catalog(tmp_path, {topic: CHAT}))
    produce_events(settings, topic, [chat_event(f"conv-{i % 4}", i) for i in range(20)])
    newer = a_newer_version(Catalog.from_settings(settings).contract_for(topic))
    return topic, settings, encoded(settings, newer, [chat_event(f"conv-{i % 4}", 20 + i) for i in range(20)])


def test_the_archive_waits_out_a_registry_outage_and_archives_every_record_once(
    kafka_broker: LocalKafka, tmp_path: Path
) -> None:
    with running_emulator(tmp_path / "registry") as emulator:
        topic, settings, later = twenty_now_twenty_later(kafka_broker, emulator, tmp_path, "outage")

        root = tmp_path / "archive"
        worker = build_worker(settings, group=unique("outage"), topics=[topic], sink=ArchiveSink(root, max_age_s=0.5))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        archived = lambda: sum(len(archive_offsets(root, topic, p)) for p in range(2))  # noqa: E731
        try:
            wait_for(lambda: archived() == 20, "the first 20 records archived", timeout_s=60)
            emulator.stop()
            producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
            for key, value, headers in later:
                producer.produce(topic, value, key=key, headers=headers)
            assert producer.flush(30) == 0

            wait_for(lambda: worker.status().problems != [], "the worker reporting the outage", timeout_s=30)
            problems = worker.status().problems
            assert any("degraded" in p and "schema registry" in p for p in problems), problems
            time.sleep(OUTAGE_S)
            assert thread.is_alive(), "the worker stopped during the outage"
            assert archived() == 20

            restarted = start_emulator(emulator.state_dir, port=emulator.port)
            try:
                wait_for(lambda: archived() == 40, "every record archived after the registry came back", 90)
                wait_for(lambda: worker.status().problems == [], "the worker healthy again", timeout_s=30)
            finally:
                worker.stop()
                thread.join(30)
                restarted.stop()
        finally:
            worker.stop()
            thread.join(30)
    offsets = {p: archive_offsets(root, topic, p) for p in range(2)}
    assert sum(len(o) for o in offsets.values()) == 40
    for p, found in offsets.items():
        assert sorted(found) == list(range(len(found))), f"partition {p}: every offset once, in order"


def test_a_handler_worker_waits_out_a_registry_outage_and_handles_every_record_once(
    kafka_broker: LocalKafka, tmp_path: Path
) -> None:
    with running_emulator(tmp_path / "registry") as emulator:
        topic, settings, later = twenty_now_twenty_later(kafka_broker, emulator, tmp_path, "outage-handler")
        handled = Collected()
        with running_worker(settings, unique("outage-handler"), [topic], handled) as worker:
            handled.wait_for(20, timeout=60)
            emulator.stop()
            producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
            for key, value, headers in later:
                producer.produce(topic, value, key=key, headers=headers)
            assert producer.flush(30) == 0
            wait_for(
                lambda: any("degraded" in p and "schema registry" in p for p in worker.status().problems),
                "the worker reporting the outage",
                timeout_s=30,
            )
            time.sleep(OUTAGE_S)
            assert len(handled.events) == 20 and worker.status().state not in ("stopped", "stopping")
            restarted = start_emulator(emulator.state_dir, port=emulator.port)
            try:
                events = handled.wait_for(40, timeout=90)
                wait_for(lambda: worker.status().problems == [], "the worker healthy again", timeout_s=30)
            finally:
                restarted.stop()
    assert sorted(e.value["sequence"] for e in events) == list(range(40))  # every record once
    by_conversation: dict[str, list[int]] = {}
    for e in events:
        by_conversation.setdefault(e.value["conversationId"], []).append(e.value["sequence"])
    assert all(seqs == sorted(seqs) for seqs in by_conversation.values()), "a conversation out of order"
