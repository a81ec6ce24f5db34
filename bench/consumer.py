"""Consumer throughput: one hubstream worker against a raw confluent-kafka loop doing the project's decode.

    .venv/bin/python bench/consumer.py                    # or: make bench-consumer (about 4 minutes)
    .venv/bin/python bench/consumer.py --records 100000 --rounds 3 --cases raw,async

It starts a broker (``--broker auto``: Apache Kafka when a JDK is here, else Tansu) and a registry emulator as
child processes, pre-fills one 3-partition topic with ``--records`` ChatResponse events in the registry's wire
format (keyed by conversationId, as the producer API keys them), and then, in interleaved rounds, reads the
whole topic with a fresh consumer group per measurement, every case with ``kafka_config.consumer_config``:

raw      ``Consumer.consume(500)`` + ``record_of`` + ``decode_event`` on one thread: the floor.
async    a worker (``build_worker``) with an async no-op handler, key_concurrency=1 (the default).
async-k4 the same with key_concurrency=4.
plain    a worker with a plain (sync) no-op handler, run on the handler thread pool.

Like ``hubstream consume``, the bench freezes its start-up objects out of the garbage collector (hubstream.heap)
before the first round. A measurement counts from the first event handled (decoded, for raw) to the last, so group
joins and the first fetch are left out. Goals: async >= 0.5x raw and >= 100,000 events/s; plain >= 30,000
events/s; async-k4 >= 0.8x async. Ratios are taken within a round (the cases of a round run back to back), and
every figure is printed as median (min–max) over the rounds: the machine is small and shared.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project is imported

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from confluent_kafka import Consumer, Producer

from bench._stack import load_note, local_stack, spread
from bench.serde import CONTRACT, chat_responses
from hubstream import kafka_config
from hubstream.heap import freeze_startup_objects
from hubstream.settings import Settings
from kafka_consumer.events import ConsumedEvent, decode_event
from kafka_consumer.records import record_of
from kafka_consumer.wiring import build_worker
from schemas.contracts import load_contracts
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde

CASES = ("raw", "async", "async-k4", "plain")
GOAL_ASYNC_RATIO, GOAL_ASYNC_RATE, GOAL_PLAIN_RATE, GOAL_K4_RATIO = 0.5, 100_000.0, 30_000.0, 0.8
TIMEOUT_S = 600.0


class Clock:
    """Times the first to the last of ``n`` events; ``tick`` is safe from several threads (next() on a count is
    atomic under the GIL)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._count = itertools.count(1)
        self.first = self.last = self.first_cpu = self.last_cpu = 0.0
        self.done = threading.Event()

    def tick(self) -> None:
        seen = next(self._count)
        if seen == 1:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        elif seen == self.n:
            self.last, self.last_cpu = time.perf_counter(), time.process_time()
            self.done.set()

    @property
    def result(self) -> tuple[float, float]:
        """Events/s, and this process's CPU time per event in µs (every thread's, librdkafka's included)."""
        return (self.n - 1) / (self.last - self.first), (self.last_cpu - self.first_cpu) * 1e6 / (self.n - 1)


def prefill(settings: Settings, topic: str, n: int) -> None:
    contract = load_contracts(REPO_ROOT / "schemas" / "avro")[CONTRACT]
    with SchemaRegistry.from_settings(settings) as registry:
        serde = AvroSerde(registry)
        producer = Producer(kafka_config.producer_config(settings))
        started = time.perf_counter()
        for event in chat_responses(n):
            encoded = serde.encode(event, contract)
            while True:
                try:
                    producer.produce(topic, encoded.value, key=event["conversationId"], headers=encoded.headers)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        assert producer.flush(60) == 0
    print(f"pre-filled {topic} with {n:,} events in {time.perf_counter() - started:.1f} s", flush=True)


def raw(settings: Settings, topic: str, n: int) -> tuple[float, float]:
    clock = Clock(n)
    consumer = Consumer(kafka_config.consumer_config(settings, f"bench-raw-{uuid.uuid4().hex[:8]}"))
    with SchemaRegistry.from_settings(settings) as registry:
        serde = AvroSerde(registry)
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while not clock.done.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError("raw consumer did not read the topic")
                for message in consumer.consume(500, timeout=0.5):
                    if message.error() is None:
                        decode_event(serde, record_of(message))
                        clock.tick()
        finally:
            consumer.close()
    return clock.result


def worker(settings: Settings, topic: str, n: int, *, sync: bool, key_concurrency: int) -> tuple[float, float]:
    clock = Clock(n)
    tick = clock.tick

    async def async_noop(event: ConsumedEvent) -> None:
        tick()

    def plain_noop(event: ConsumedEvent) -> None:
        tick()

    consumer = settings.consumer.model_copy(update={"key_concurrency": key_concurrency})
    built = build_worker(
        settings.model_copy(update={"consumer": consumer}),
        group=f"bench-worker-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=plain_noop if sync else async_noop,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            built.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)
            clock.done.set()

    thread = threading.Thread(target=run, name="bench-worker", daemon=True)
    thread.start()
    try:
        if not clock.done.wait(TIMEOUT_S):
            raise TimeoutError("the worker did not handle the topic")
    finally:
        built.stop()
        thread.join(60)
    if failure:
        raise failure[0]
    return clock.result


def run_case(case: str, settings: Settings, topic: str, n: int) -> tuple[float, float]:
    gc.collect()
    if case == "raw":
        return raw(settings, topic, n)
    return worker(settings, topic, n, sync=case == "plain", key_concurrency=4 if case == "async-k4" else 1)


def row(
    measure: str, floor: Sequence[float], ours: Sequence[float], ratios: Sequence[float], goal: str, met: bool
) -> str:
    return (
        f"{measure:34}{spread(floor, ',.0f'):>28}{spread(ours, ',.0f'):>28}"
        f"{spread(ratios, '.2f') + 'x':>22}{goal:>22}  {'yes' if met else 'NO'}"
    )


def report(rates: dict[str, list[float]], n: int, rounds: int) -> bool:
    print(f"\n{n:,} events per measurement, {rounds} interleaved rounds: median (min–max) events/s\n")
    print(f"{'measure':34}{'floor':>28}{'hubstream':>28}{'ratio':>22}{'goal':>22}  met")
    ok = True

    def ratios(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(rates[a], rates[b], strict=True)]

    if rates["raw"] and rates["async"]:
        r = ratios("async", "raw")
        met = statistics.median(r) >= GOAL_ASYNC_RATIO and statistics.median(rates["async"]) >= GOAL_ASYNC_RATE
        print(row("async no-op vs raw consume+decode", rates["raw"], rates["async"], r, ">=0.5x, >=100k/s", met))
        ok &= met
    if rates["raw"] and rates["plain"]:
        met = statistics.median(rates["plain"]) >= GOAL_PLAIN_RATE
        print(
            row(
                "plain no-op vs raw consume+decode",
                rates["raw"],
                rates["plain"],
                ratios("plain", "raw"),
                ">=30k/s",
                met,
            )
        )
        ok &= met
    if rates["async"] and rates["async-k4"]:
        r = ratios("async-k4", "async")
        met = statistics.median(r) >= GOAL_K4_RATIO
        print(row("async key_concurrency=4 vs =1", rates["async"], rates["async-k4"], r, ">=0.8x", met))
        ok &= met
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--records", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--broker", choices=("auto", "tansu", "kafka"), default="auto")
    args = parser.parse_args()
    cases = [case for case in args.cases.split(",") if case]
    if unknown := set(cases) - set(CASES):
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING)

    topic = f"bench-consumer-{uuid.uuid4().hex[:8]}"
    rates: dict[str, list[float]] = {case: [] for case in CASES}
    cpu_us: dict[str, list[float]] = {case: [] for case in CASES}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-consumer-")))
        settings = stack.enter_context(local_stack(args.broker, workdir, [topic])).settings
        prefill(settings, topic, args.records)
        freeze_startup_objects()  # as `hubstream consume` does before it consumes, for every case alike
        for n in range(args.rounds):
            order = cases if n % 2 == 0 else cases[::-1]  # neither side always runs first
            for case in order:
                rate, cpu = run_case(case, settings, topic, args.records)
                rates[case].append(rate)
                cpu_us[case].append(cpu)
            print(
                f"  round {n + 1}: " + "  ".join(f"{c} {rates[c][-1]:8,.0f}/s {cpu_us[c][-1]:5.1f} µs" for c in cases),
                flush=True,
            )
    print(load_note())
    ok = report(rates, args.records, args.rounds)
    print(
        "\nCPU time of this process per event (all threads; less sensitive to the neighbours than the rates): "
        + ", ".join(f"{c} {spread(cpu_us[c])} µs" for c in cases)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
