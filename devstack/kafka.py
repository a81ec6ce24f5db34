"""The local Apache Kafka broker: KRaft combined mode (broker and controller in one JVM), one node.

It runs from Maven Central jars (devstack/kafka_jars.py), with no tarball and no Docker.
Data lives under ``<state-dir>/kafka/data``, so a restart keeps topics, records and committed offsets. The JVM is
a ``ChildProcess``: it gets SIGTERM when its parent dies, even by SIGKILL.

Beside the plain listener it can open an Event Hubs front door (``EventHubsDoor``): SASL_SSL with PLAIN, user
``$ConnectionString`` and a connection string as the password, like Event Hubs' port 9093; and SASL_SSL with
OAUTHBEARER, where the broker verifies RS256 JWTs against a JWKS file, issuer and audience as Entra ID's.
"""

from __future__ import annotations

import base64
import secrets
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from devstack.kafka_jars import find_java, resolve_jars
from devstack.processes import ChildProcess
from hubstream.errors import BrokerStartError, ConfigurationError
from hubstream.files import secret_file, write_atomically
from hubstream.ports import ensure_port_free, free_port, port_open

LOG_CONFIG = Path(__file__).parent / "kafka" / "log4j2.properties"
READY_TIMEOUT_S = 60.0
_JVM_FLAGS = (
    "-Xms128m",
    "-Xmx768m",
    "-XX:+UseSerialGC",  # one node, small heap, 2 cores shared with the tests: no GC threads to compete
    "-XX:TieredStopAtLevel=1",  # C1 only: starts faster; local traffic never needs C2's peak speed
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
# Tuned for one node on a laptop: internal topics with one replica and few partitions, groups that form at once
# and accept the local profile's 3 s sessions, few threads.
_BASE_PROPERTIES = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
    # a wrong password or token fails at once instead of after the default 100 ms penalty per attempt
    "connection.failed.authentication.delay.ms": "0",
}
_PLAIN_LISTENER = "EHPLAIN"
_OAUTH_LISTENER = "EHOAUTH"
_OAUTH = "org.apache.kafka.common.security.oauthbearer"


@dataclass(frozen=True)
class EventHubsDoor:
    """The Event Hubs front door: two SASL_SSL listeners on the local broker.

    ``cert_file``/``key_file`` are the server certificate (SANs ``localhost`` and ``127.0.0.1``) and its
    unencrypted PKCS#8 key; ``jwks_file`` holds the public keys OAUTHBEARER tokens must be signed with.
    ``reauth_ms`` is the broker's ``connections.max.reauth.ms``: clients re-authenticate (with a fresh token)
    at least that often, so token refresh is exercised on every long connection.
    """

    plain_port: int
    oauth_port: int
    cert_file: Path
    key_file: Path
    connection_string: str
    jwks_file: Path
    issuer: str
    audience: str
    reauth_ms: int = 60_000

    @property
    def jwks_url(self) -> str:
        return self.jwks_file.resolve().as_uri()

    def bootstrap(self, host: str = "localhost") -> str:
        return f"{host}:{self.plain_port}"

    def oauth_bootstrap(self, host: str = "localhost") -> str:
        return f"{host}:{self.oauth_port}"


@dataclass
class KafkaBroker:
    """A running local broker: its JVM, where clients connect, and how long it took to be ready."""

    process: ChildProcess
    bootstrap_servers: str
    data_dir: Path
    ready_s: float
    formatted: bool  # True when this start formatted an empty data dir
    door: EventHubsDoor | None = None

    def stop(self, timeout: float = 30.0) -> int | None:
        return self.process.stop(timeout)


SAS_KEY_NAME = "RootManageSharedAccessKey"


def local_connection_string(state_dir: Path, port: int, host: str = "localhost") -> str:
    """The door's connection string, shaped like a namespace's; its key is made once and kept in the state dir."""
    key = secret_file(state_dir.resolve() / "kafka" / "sas-key", base64.b64encode(secrets.token_bytes(32)).decode())
    return f"Endpoint=sb://{host}:{port}/;SharedAccessKeyName={SAS_KEY_NAME};SharedAccessKey={key}"


# --- server.properties ----------------------------------------------------------------------------------------


def server_properties(
    *, host: str, port: int, controller_port: int, data_dir: Path, door: EventHubsDoor | None, keystore: Path | None
) -> dict[str, str]:
    listeners = {"PLAINTEXT": (host, port, "PLAINTEXT"), "CONTROLLER": (host, controller_port, "PLAINTEXT")}
    advertised = {"PLAINTEXT": (host, port)}
    if door is not None:
        listeners[_PLAIN_LISTENER] = (host, door.plain_port, "SASL_SSL")
        listeners[_OAUTH_LISTENER] = (host, door.oauth_port, "SASL_SSL")
        # the certificate names localhost and 127.0.0.1; the connection string's host is localhost
        advertised[_PLAIN_LISTENER] = ("localhost", door.plain_port)
        advertised[_OAUTH_LISTENER] = ("localhost", door.oauth_port)
    properties = {
        **_BASE_PROPERTIES,
        # a static voter set, so the controller may take another free port on the next start
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": ",".join(f"{name}://{h}:{p}" for name, (h, p, _) in listeners.items()),
        "advertised.listeners": ",".join(f"{name}://{h}:{p}" for name, (h, p) in advertised.items()),
        "listener.security.protocol.map": ",".join(f"{name}:{proto}" for name, (_, _, proto) in listeners.items()),
        "log.dirs": str(data_dir),
    }
    if door is not None and keystore is not None:
        properties.update(_door_properties(door, keystore))
    return properties


def _door_properties(door: EventHubsDoor, keystore: Path) -> dict[str, str]:
    if any(c in door.connection_string for c in '"\\\n'):
        raise ConfigurationError(
            "the local Event Hubs connection string may not contain quotes, backslashes or newlines"
        )
    plain, oauth = f"listener.name.{_PLAIN_LISTENER.lower()}", f"listener.name.{_OAUTH_LISTENER.lower()}"
    properties: dict[str, str] = {}
    for prefix in (plain, oauth):
        properties[f"{prefix}.ssl.keystore.type"] = "PEM"
        properties[f"{prefix}.ssl.keystore.location"] = str(keystore)
    properties[f"{plain}.sasl.enabled.mechanisms"] = "PLAIN"
    # JAAS treats $ as a word character and the quoted value as data, so the string needs no escaping
    properties[f"{plain}.plain.sasl.jaas.config"] = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_$ConnectionString="{door.connection_string}";'
    )
    mechanism = f"{oauth}.oauthbearer"
    properties[f"{oauth}.sasl.enabled.mechanisms"] = "OAUTHBEARER"
    # no options: a validate-only listener; any option would make the login module mint an unsecured token
    properties[f"{mechanism}.sasl.jaas.config"] = f"{_OAUTH}.OAuthBearerLoginModule required ;"
    properties[f"{mechanism}.sasl.server.callback.handler.class"] = f"{_OAUTH}.OAuthBearerValidatorCallbackHandler"
    # named, not left to the default: signature, exp, iss and aud are verified whatever the version's default
    properties[f"{mechanism}.sasl.oauthbearer.jwt.validator.class"] = f"{_OAUTH}.BrokerJwtValidator"
    properties[f"{mechanism}.sasl.oauthbearer.jwks.endpoint.url"] = door.jwks_url
    properties[f"{mechanism}.sasl.oauthbearer.expected.issuer"] = door.issuer
    properties[f"{mechanism}.sasl.oauthbearer.expected.audience"] = door.audience
    properties[f"{mechanism}.connections.max.reauth.ms"] = str(door.reauth_ms)
    return properties


def write_properties(path: Path, properties: dict[str, str]) -> None:
    lines = [f"{key}={value.replace(chr(92), chr(92) * 2)}" for key, value in properties.items()]
    path.write_text("# written by hubstream on every start; edits are lost\n" + "\n".join(lines) + "\n")
    path.chmod(0o600)  # it holds the connection string


def write_keystore(door: EventHubsDoor, path: Path) -> Path:
    """Kafka's PEM keystore: the unencrypted PKCS#8 key followed by the certificate, in one file."""
    key = door.key_file.read_text()
    if "BEGIN PRIVATE KEY" not in key:
        raise ConfigurationError(f"{door.key_file} must be an unencrypted PKCS#8 key (BEGIN PRIVATE KEY)")
    write_atomically(path, (key.rstrip("\n") + "\n" + door.cert_file.read_text()).encode(), mode=0o600)
    return path


# --- starting and stopping ------------------------------------------------------------------------------------


def start_kafka(
    port: int,
    *,
    state_dir: Path,
    host: str = "127.0.0.1",
    controller_port: int | None = None,
    door: EventHubsDoor | None = None,
    log_file: Path | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> KafkaBroker:
    """Start the broker with its data under ``state_dir/kafka`` and return once it serves metadata."""
    java = find_java()
    libs = resolve_jars()
    ensure_bindable(host, port, "Kafka broker")
    if door is not None:
        ensure_bindable(host, door.plain_port, "Event Hubs door (SASL PLAIN)")
        ensure_bindable(host, door.oauth_port, "Event Hubs door (OAUTHBEARER)")
    controller_port = controller_port or free_port(host)
    ensure_bindable(host, controller_port, "Kafka controller")
    home = state_dir.resolve() / "kafka"
    data_dir = home / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_file or state_dir.resolve() / "logs" / "broker.log"
    keystore = write_keystore(door, home / "keystore.pem") if door is not None else None
    config = home / "server.properties"
    write_properties(
        config,
        server_properties(
            host=host, port=port, controller_port=controller_port, data_dir=data_dir, door=door, keystore=keystore
        ),
    )
    jvm = [java, *_JVM_FLAGS, f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", str(libs / "*")]
    started = time.monotonic()
    formatted = not (data_dir / "meta.properties").exists()
    if formatted:
        _format(jvm, config, log_file)
    if door is not None:
        # Kafka >= 4.0 reads a JWKS only from URLs listed here, compared as exact strings
        jvm.append(f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={door.jwks_url}")
    process = ChildProcess("broker", [*jvm, "kafka.Kafka", str(config)], log_file=log_file)
    bootstrap = f"{host}:{port}"
    try:
        _wait_ready(process, bootstrap, timeout)
    except BaseException:
        process.stop(5)
        raise
    return KafkaBroker(process, bootstrap, data_dir, time.monotonic() - started, formatted, door)


def ensure_bindable(host: str, port: int, what: str) -> None:
    """PortInUseError unless the broker can listen on host:port. Binds with SO_REUSEADDR as the JVM does, so a
    port that the previous run left in TIME_WAIT counts as free; a port someone listens on does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return
        except OSError:
            pass
    ensure_port_free(host, port, what)


def _format(jvm: list[str], config: Path, log_file: Path) -> None:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    # "--cluster-id=": a URL-safe base64 id starts with "-" once in 64, which argparse would take for an option
    argv = [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log:
        log.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BrokerStartError(
            f"formatting the Kafka data dir failed (exit {done.returncode}); see {log_file}, or delete "
            f"{config.parent} to start with empty data:\n{(done.stdout + done.stderr).strip()[-2000:]}"
        )


def _wait_ready(process: ChildProcess, bootstrap: str, timeout: float) -> None:
    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    admin: AdminClient | None = None
    while time.monotonic() < deadline:
        if not process.alive():
            raise BrokerStartError(
                f"the Kafka broker exited with code {process.process.returncode} while starting; its log "
                f"({process.log_file}) ends with:\n{process.tail(30)}"
            )
        if admin is None and port_open(host, int(port)):
            admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
        if admin is not None and _serves_metadata(admin):
            return
        time.sleep(0.05)
    raise BrokerStartError(
        f"the Kafka broker did not serve metadata within {timeout:.0f} s; its log ({process.log_file}) ends with:\n"
        f"{process.tail(30)}"
    )


def _serves_metadata(admin: AdminClient) -> bool:
    try:
        return bool(admin.list_topics(timeout=1).brokers)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
