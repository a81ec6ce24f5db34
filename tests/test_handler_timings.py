"""Handler run times added in bulk expose exactly what one observe() per record would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from kafka_consumer.processors.timings import Timings


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_bulk_timings_equal_one_observe_per_record() -> None:
    bulk, single = CollectorRegistry(), CollectorRegistry()
    timings = Timings(Histogram("h", "h", ["topic"], registry=bulk).labels("t"))
    observed = Histogram("h", "h", ["topic"], registry=single).labels("t")
    for seconds in [0.0, 0.005, 0.0051, 0.3, 1.0, 10.0, 99.0, 0.123]:
        timings.add(seconds)
        observed.observe(seconds)
    assert exposition(bulk) != exposition(single)  # nothing added before the flush
    timings.flush()
    assert exposition(bulk) == exposition(single)
    timings.flush()  # nothing new: nothing added twice
    assert exposition(bulk) == exposition(single)
