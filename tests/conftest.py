"""Test fixtures: a real broker and a real registry emulator, started once per session.

Set HUBSTREAM_TEST_BOOTSTRAP=host:port to run the same tests against another Kafka
(e.g. the one from docker-compose.kafka.yml) instead of the embedded local broker.
"""

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.registry",
    "tests.fixtures.stores",
    "tests.fixtures.postgres",
]
