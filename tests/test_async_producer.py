"""AsyncProducer over the real broker: every future resolves with where its record went, outcomes of one poll are
handed to the loop together, and a rejected record fails only its own future."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from hubstream import kafka_config
from hubstream.settings import Settings
from kafka_producer.producer import AsyncProducer, BrokerError, Delivery, RecordTooLargeError
from tests.fixtures.broker import LocalKafka
from tests.fixtures.readers import read_all

pytestmark = pytest.mark.asyncio


def config(broker: LocalKafka, **extra: object) -> dict[str, object]:
    settings = Settings(_env_file=None, profile=broker.profile, kafka={"bootstrap_servers": broker.bootstrap_servers})
    return {**kafka_config.producer_config(settings), **extra}


async def test_every_future_resolves_with_its_own_partition_and_offset(kafka_broker: LocalKafka) -> None:
    topic = kafka_broker.create_topic("async-producer", partitions=3)
    loop = asyncio.get_running_loop()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        async with AsyncProducer(config(kafka_broker)) as producer:
            futures = [producer.send(topic, f"v{i}".encode(), key=f"k{i % 7}") for i in range(5000)]
            deliveries = await asyncio.gather(*futures)
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    assert len({(d.partition, d.offset) for d in deliveries}) == 5000
    for partition in {d.partition for d in deliveries}:
        offsets = sorted(d.offset for d in deliveries if d.partition == partition)
        assert offsets == list(range(len(offsets)))
    assert wakeups < 5000 / 10, f"{wakeups} loop wake-ups for 5000 records: outcomes are not handed over together"


async def test_a_record_over_the_size_limit_fails_alone(kafka_broker: LocalKafka) -> None:
    topic = kafka_broker.create_topic("async-producer-size", partitions=1)
    async with AsyncProducer(config(kafka_broker, **{"message.max.bytes": 10_000})) as producer:
        small = [producer.send(topic, b"x" * 100) for _ in range(10)]
        with pytest.raises(RecordTooLargeError, match="larger than the message size limit"):
            producer.send(topic, b"x" * 20_000)
        cancelled = producer.send(topic, b"y")
        cancelled.cancel()  # the awaiting request went away: its outcome is dropped quietly
        deliveries = await asyncio.gather(*small)
    assert sorted(d.offset for d in deliveries) == list(range(10))


def native_threads() -> int:
    """librdkafka's threads in this process (named rdk:main, rdk:broker…)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended while listing
            names.append(Path(f"/proc/self/task/{task}/comm").read_text())
    return sum(name.startswith("rdk:") for name in names)


async def test_close_stops_the_client_and_fails_what_it_could_not_deliver() -> None:
    before = native_threads()
    unreachable = {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 60_000}
    producer = AsyncProducer(unreachable)
    pending = producer.send("nowhere", b"x")
    assert native_threads() > before
    assert await producer.close(timeout_s=0.5) == 1
    with pytest.raises(BrokerError):
        await asyncio.wait_for(pending, 5)  # purged, not left hanging
    assert await producer.close() == 0  # a second close is harmless
    assert not producer.broker_reachable()
    for _ in range(50):  # the client's threads end shortly after close()
        if native_threads() <= before:
            break
        await asyncio.sleep(0.1)
    assert native_threads() <= before


async def test_send_many_refuses_keys_or_headers_that_do_not_pair_with_the_values(kafka_broker: LocalKafka) -> None:
    topic = kafka_broker.create_topic("async-producer-many-pairs", partitions=1)
    async with AsyncProducer(config(kafka_broker)) as producer:
        with pytest.raises(ValueError, match="2 values and 1 keys"):
            await producer.send_many(topic, [b"a", b"b"], keys=[b"k"])
        with pytest.raises(ValueError, match="2 values and 3 headers"):
            await producer.send_many(topic, [b"a", b"b"], headers=[None, None, None])
        assert [d.offset for d in await producer.send_many(topic, [b"a", b"b"])] == [0, 1]  # nothing half-sent


async def test_send_many_resolves_one_future_with_each_records_outcome_in_order(kafka_broker: LocalKafka) -> None:
    topic = kafka_broker.create_topic("async-producer-many", partitions=3)
    values: list[bytes | None] = [f"v{i}".encode() for i in range(3000)]
    values[1234] = b"x" * 20_000  # over this producer's limit: refused at produce time, alone
    keys = [f"k{i % 11}" for i in range(3000)]
    headers = [[("n", str(i).encode())] for i in range(3000)]
    async with AsyncProducer(config(kafka_broker, **{"message.max.bytes": 10_000})) as producer:
        outcomes = await producer.send_many(topic, values, keys=keys, headers=headers)
        assert await producer.send_many(topic, []) == []
    too_large = outcomes.pop(1234)
    assert isinstance(too_large, RecordTooLargeError)
    deliveries = [o for o in outcomes if isinstance(o, Delivery)]
    assert len(deliveries) == 2999 and {d.topic for d in deliveries} == {topic}
    for partition in {d.partition for d in deliveries}:  # in the order given, within each partition
        offsets = [d.offset for d in deliveries if d.partition == partition]
        assert offsets == list(range(len(offsets)))
    by_key = {}  # one key, one partition
    for i, d in enumerate(deliveries):
        by_key.setdefault(keys[i if i < 1234 else i + 1], set()).add(d.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    [first] = [m for m in read_all(kafka_broker, topic, partitions=3) if m.value() == b"v0"]
    assert first.key() == b"k0" and first.headers() == [("n", b"0")]
