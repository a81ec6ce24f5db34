"""Well-known local ports, defined once, and the socket checks made before a server binds one."""

from __future__ import annotations

import socket

from hubstream.errors import PortInUseError

BROKER = 9092  # the local stack's Kafka (PLAINTEXT)
REGISTRY = 8443  # the Schema Registry emulator (HTTPS)
PRODUCER_API = 8080
CONSUMER_OPS = 8081  # a consumer worker's /metrics, /healthz, /readyz
DELIVERY = 8090  # a delivery node's API and ops routes


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Fail fast with a clear message instead of letting a server hang or die on a taken port."""
    if not port_free(host, port):
        raise PortInUseError(
            f"port {port} on {host} (for the {what}) is already in use; stop whatever holds it "
            f"(e.g. `lsof -i :{port}`) or pick another port with the matching --*-port flag"
        )


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
