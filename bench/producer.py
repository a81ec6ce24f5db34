"""Producer benchmarks: the library (AsyncProducer) against raw librdkafka, and Avro events through the library.

    .venv/bin/python bench/producer.py                 # or: make bench-producer (about 2 minutes)
    .venv/bin/python bench/producer.py --records 200000 --rounds 5

It starts a broker (``--broker auto``: Apache Kafka when a JDK is here, else Tansu) and a registry emulator as
child processes and stops them at the end. Every run sends to a fresh 3-partition topic with the producer config
the library builds (kafka_config.producer_config: idempotent, acks=all, the same linger), in the same process:

raw      ``confluent_kafka.Producer.produce`` for N pre-encoded records of ``--size`` bytes, then ``flush()``: the
         floor, librdkafka with nothing around it.
library  ``AsyncProducer.send_many`` for the same records in batches of ``--batch`` (500), each batch one future
         resolved with every record's partition and offset; all batches awaited together.
send     ``AsyncProducer.send`` per record, then ``asyncio.gather`` of the N futures (for comparison; no goal).
avro     N ChatResponse events encoded by the serde (encode included) and sent through ``send_many``.

Rounds interleave raw and library; the best round of each is compared (the machine is small and shared: the
spread over rounds is printed too).
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project is imported

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from azure.schemaregistry import SchemaRegistryClient
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench._stack import broker, broker_kind, load_note
from bench.serde import CONTRACT, chat_responses, local_emulator
from devstack.topics import ensure_topics
from hubstream import kafka_config
from hubstream.credentials import StaticTokenCredential
from hubstream.settings import Settings
from kafka_producer.producer import AsyncProducer, Delivery
from schemas.contracts import load_contracts
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde

GOALS = {"library": 0.9, "avro": 100_000.0}
TOKEN = "hubstream-local"


def fresh_topic(bootstrap: str) -> str:
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), {topic: 3})
    return topic


def raw(config: dict[str, Any], topic: str, values: list[bytes]) -> float:
    producer = Producer(config)
    started = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - started
    assert left == 0, f"{left} records undelivered"
    return len(values) / elapsed


async def library(config: dict[str, Any], topic: str, values: list[bytes], batch: int) -> float:
    async with AsyncProducer(config) as producer:
        started = time.perf_counter()
        batches = [producer.send_many(topic, values[i : i + batch]) for i in range(0, len(values), batch)]
        outcomes = [o for b in await asyncio.gather(*batches) for o in b]
        elapsed = time.perf_counter() - started
    assert len(outcomes) == len(values) and all(isinstance(o, Delivery) and o.offset >= 0 for o in outcomes)
    return len(values) / elapsed


async def per_record(config: dict[str, Any], topic: str, values: list[bytes]) -> float:
    async with AsyncProducer(config) as producer:
        started = time.perf_counter()
        futures = [producer.send(topic, value) for value in values]
        deliveries = await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    assert len(deliveries) == len(values) and all(d.offset >= 0 for d in deliveries)
    return len(values) / elapsed


async def avro(config: dict[str, Any], topic: str, serde: AvroSerde, events: list[dict[str, Any]], batch: int) -> float:
    contract = load_contracts(REPO_ROOT / "schemas" / "avro")[CONTRACT]
    async with AsyncProducer(config) as producer:
        started = time.perf_counter()
        batches = []
        for i in range(0, len(events), batch):
            chunk = events[i : i + batch]
            encoded = [serde.encode(event, contract) for event in chunk]
            batches.append(
                producer.send_many(
                    topic,
                    [e.value for e in encoded],
                    keys=[event["conversationId"] for event in chunk],
                    headers=[e.headers for e in encoded],
                )
            )
        outcomes = [o for b in await asyncio.gather(*batches) for o in b]
        elapsed = time.perf_counter() - started
    assert all(isinstance(o, Delivery) for o in outcomes)
    return len(events) / elapsed


def timed(run: Callable[[], float], results: list[float]) -> None:
    gc.collect()
    results.append(run())


def report(rates: dict[str, list[float]], records: int, rounds: int) -> bool:
    best = {k: max(v) for k, v in rates.items()}
    spread = {k: f"{min(v):,.0f}–{max(v):,.0f}" for k, v in rates.items()}
    ratio = best["library"] / best["raw"]
    print(f"\n{records:,} records per run, best of {rounds} interleaved rounds (spread min–max in brackets)\n")
    print(f"{'measure':34}{'floor':>12}{'hubstream':>12}{'ratio':>8}{'goal':>10}  met")
    met_library = ratio >= GOALS["library"]
    print(
        f"{'library send_many vs raw rec/s':34}{best['raw']:12,.0f}{best['library']:12,.0f}{ratio:7.2f}x"
        f"{GOALS['library']:9.1f}x  {'yes' if met_library else 'NO'}"
    )
    met_avro = best["avro"] >= GOALS["avro"]
    print(
        f"{'Avro encode + send rec/s':34}{'':>12}{best['avro']:12,.0f}{'':>8}{GOALS['avro']:10,.0f}  "
        f"{'yes' if met_avro else 'NO'}"
    )
    per_record_ratio = best["send"] / best["raw"]
    print(f"{'  (send per record + gather)':34}{best['raw']:12,.0f}{best['send']:12,.0f}{per_record_ratio:7.2f}x")
    print(
        f"\nspreads: raw {spread['raw']}, library {spread['library']}, send {spread['send']}, "
        f"avro {spread['avro']} rec/s"
    )
    return met_library and met_avro


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=200, help="bytes per pre-encoded record")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="records per send_many")
    parser.add_argument("--broker", choices=("auto", "tansu", "kafka"), default="auto")
    args = parser.parse_args()

    kind, why = broker_kind(args.broker)
    print(f"producer benchmarks; broker: {kind} ({why}); {load_note()}", flush=True)
    values = [os.urandom(args.size) for _ in range(args.records)]
    events = chat_responses(args.records)
    rates: dict[str, list[float]] = {"raw": [], "library": [], "send": [], "avro": []}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-producer-")))
        bootstrap = stack.enter_context(broker(kind, workdir))
        namespace, ca_file = stack.enter_context(local_emulator(TOKEN))
        settings = Settings(_env_file=None, profile="local", kafka={"bootstrap_servers": bootstrap})
        config = kafka_config.producer_config(settings)
        client = stack.enter_context(
            SchemaRegistryClient(namespace, StaticTokenCredential(TOKEN), connection_verify=str(ca_file))
        )
        registry = SchemaRegistry(client, "hubstream")
        registry.register(load_contracts(REPO_ROOT / "schemas" / "avro")[CONTRACT])
        serde = AvroSerde(registry)
        asyncio.run(library(config, fresh_topic(bootstrap), values[:1000], args.batch))  # warm-up: connections
        for n in range(args.rounds):
            timed(lambda: raw(config, fresh_topic(bootstrap), values), rates["raw"])
            timed(lambda: asyncio.run(library(config, fresh_topic(bootstrap), values, args.batch)), rates["library"])
            timed(lambda: asyncio.run(per_record(config, fresh_topic(bootstrap), values)), rates["send"])
            timed(lambda: asyncio.run(avro(config, fresh_topic(bootstrap), serde, events, args.batch)), rates["avro"])
            print(
                f"  round {n + 1}: raw {rates['raw'][-1]:9,.0f}/s  library {rates['library'][-1]:9,.0f}/s  "
                f"send {rates['send'][-1]:9,.0f}/s  avro {rates['avro'][-1]:9,.0f}/s",
                flush=True,
            )
    print(load_note())
    return 0 if report(rates, args.records, args.rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
