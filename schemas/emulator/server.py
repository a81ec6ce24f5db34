"""Run the emulator over HTTPS: the given certificate, the SQLite store in the state dir, the groups, uvicorn."""

from __future__ import annotations

import errno
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from hubstream import ports
from hubstream.errors import ConfigurationError, PortInUseError
from schemas.emulator.app import create_app
from schemas.emulator.entra_auth import EntraAuth
from schemas.emulator.groups import SchemaGroup, load_groups_file
from schemas.emulator.store import SchemaStore

_LOOPBACK = ("", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class ServeOptions:
    state_dir: Path
    cert_file: Path  # the server certificate (PEM, naming the host); made by whoever starts the emulator
    key_file: Path
    host: str = "127.0.0.1"
    port: int = ports.REGISTRY
    groups_file: Path | None = None
    auth_token: str | None = None
    entra: EntraAuth | None = None  # data-plane requests need an Entra ID token (entra_auth.py)
    default_group: str = "hubstream"
    log_level: str = "info"


class EmulatorServer:
    """Prepared on construction (certificates, database, groups, bound port), served by ``run()``."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.store = SchemaStore.in_state_dir(options.state_dir)
        self.groups = _set_up_groups(self.store, options)
        self._socket = _bind(options.host, options.port)
        self.port: int = self._socket.getsockname()[1]

    @property
    def namespace(self) -> str:
        """What SchemaRegistryClient takes as ``fully_qualified_namespace``: a name the certificate covers."""
        host = self.options.host
        if host in _LOOPBACK:
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.namespace}"

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then finish in-flight requests and return."""
        app = create_app(self.store, auth_token=self.options.auth_token, entra=self.options.entra)
        config = uvicorn.Config(
            app,
            ssl_certfile=str(self.options.cert_file),
            ssl_keyfile=str(self.options.key_file),
            log_level=self.options.log_level.lower(),
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        # uvicorn re-raises the signal it stopped on once it is done, through the handlers it found;
        # with these in place that is a no-op and the command exits 0 instead of dying by the signal
        previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run(sockets=[self._socket])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._socket.close()


def _stopped(signum: int, frame: FrameType | None) -> None:
    pass


def _set_up_groups(store: SchemaStore, options: ServeOptions) -> list[SchemaGroup]:
    """The default group exists unless the store already has it; groups in the file are created or updated."""
    try:
        default = SchemaGroup(name=options.default_group)
    except ValueError as exc:
        raise ConfigurationError(f"default schema group (setting registry.group): {exc}") from None
    store.ensure_group(default)
    for group in load_groups_file(options.groups_file) if options.groups_file else []:
        store.put_group(group)
    return [usage.group for usage in store.list_groups()]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is taken; stop what uses it or pass another --port") from None
        raise
    sock.set_inheritable(True)
    return sock
