"""Test fixtures: a real broker, registry emulator and PostgreSQL, each started once per session.

Set HUBSTREAM_TEST_BOOTSTRAP=host:port to run the same tests against another Kafka (e.g. the one from
docker-compose.kafka.yml) instead of the embedded local broker, and HUBSTREAM_TEST_POSTGRES_DSN for another
PostgreSQL.

Tests that need any of these servers are marked `broker` automatically (from the fixtures they use), so
`pytest -m "not broker"` runs the pure ones alone, in seconds.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.registry",
    "tests.fixtures.stores",
    "tests.fixtures.postgres",
]

SERVER_FIXTURES = {"kafka_broker", "registry_emulator", "registry_group", "postgres_server"}
# modules whose tests start servers themselves (a whole local stack, a private emulator)
SERVER_MODULES = {"test_dev_stack", "test_emulator", "test_schemas_cli", "test_new_user"}


def pytest_report_header() -> str:
    from tests.fixtures.broker import describe_session_broker

    return describe_session_broker()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_a_server(item):
            item.add_marker(pytest.mark.broker)


def _needs_a_server(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    return bool(fixtures & SERVER_FIXTURES) or params.get("store_url") == "postgres" or module in SERVER_MODULES
