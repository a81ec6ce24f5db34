"""``<state-dir>/stack.json``: how commands in a second terminal find a running ``hubstream dev`` stack."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr

from hubstream.errors import StackNotRunningError
from hubstream.files import secret_file
from hubstream.settings import Settings

STACK_FILE = "stack.json"
LOCAL_SECRET_FILE = "delivery-secret"


class EntraInfo(BaseModel):
    """The local fake Entra ID's application: what azure-identity's ClientSecretCredential takes."""

    authority: str
    tenant_id: str
    client_id: str
    client_secret: str


class EventHubsInfo(BaseModel):
    """The Event Hubs door on the local Apache Kafka, for the ``eventhubs`` profile in a second terminal."""

    connection_string: str  # the PLAIN door's password (user $ConnectionString); its Endpoint is `bootstrap`
    bootstrap: str  # SASL_SSL + PLAIN
    oauth_bootstrap: str  # SASL_SSL + OAUTHBEARER, tokens from `entra`
    namespace: str  # host:port for HUBSTREAM_EVENTHUBS__NAMESPACE with auth=entra (token scope https://<host>/.default)
    ca_file: Path  # the CA of both doors' certificate (and of the fake Entra's)
    entra: EntraInfo | None = None


class StackInfo(BaseModel):
    broker: Literal["kafka", "tansu"] = "tansu"
    bootstrap_servers: str
    schema_registry: str  # host:port, the fully_qualified_namespace for SchemaRegistryClient
    ca_file: Path
    schema_group: str
    producer_url: str
    delivery_url: str | None = None
    topics: dict[str, int]
    pid: int
    eventhubs: EventHubsInfo | None = None

    def write(self, state_dir: Path) -> Path:
        """Write atomically so a reader never sees half a file."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / STACK_FILE
        tmp = path.with_suffix(".tmp")
        # 0600: with the Event Hubs door it holds a connection string and a client secret
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.model_dump_json(indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, state_dir: Path) -> StackInfo:
        path = state_dir / STACK_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StackNotRunningError(
                f"no local stack found ({path} does not exist). Start one with `hubstream dev` "
                "(or pass --state-dir), or choose another profile with HUBSTREAM_PROFILE=kafka|eventhubs."
            ) from None
        info = cls.model_validate(data)
        if not _alive(info.pid):
            raise StackNotRunningError(
                f"{path} belongs to a stack that is no longer running (pid {info.pid}). Start it with `hubstream dev`."
            )
        return info

    @staticmethod
    def remove(state_dir: Path) -> None:
        (state_dir / STACK_FILE).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_local_stack(settings: Settings) -> Settings:
    """Fill what the local profile leaves unset (bootstrap, registry, the delivery token secret) from the running
    stack. Explicit settings always win; other profiles are returned unchanged."""
    if settings.profile != "local":
        return settings
    settings = with_local_secret(settings)
    if settings.kafka.bootstrap_servers and settings.registry.namespace:
        return settings
    info = StackInfo.read(settings.state_dir)
    kafka = settings.kafka.model_copy(
        update={"bootstrap_servers": settings.kafka.bootstrap_servers or info.bootstrap_servers}
    )
    registry_update: dict[str, object] = {}
    if not settings.registry.namespace:
        registry_update = {
            "namespace": info.schema_registry,
            "ca_file": settings.registry.ca_file or info.ca_file,
            "group": info.schema_group,
        }
    registry = settings.registry.model_copy(update=registry_update)
    return settings.model_copy(update={"kafka": kafka, "registry": registry})


def local_delivery_secret(state_dir: Path, *, create: bool = False) -> str | None:
    """The local stack's secret for client tokens (HS256), kept in the state dir (0600) so tokens outlive restarts."""
    path = state_dir / LOCAL_SECRET_FILE
    if not create and not path.exists():
        return None
    return secret_file(path, secrets.token_urlsafe(48))


def with_local_secret(settings: Settings) -> Settings:
    """The local profile's delivery token secret from the state dir, unless one is configured."""
    if settings.profile != "local":
        return settings
    auth = settings.delivery.auth
    if auth.secret is not None or auth.jwks_url is not None:
        return settings
    secret = local_delivery_secret(settings.state_dir)
    if secret is None:
        return settings
    delivery = settings.delivery.model_copy(update={"auth": auth.model_copy(update={"secret": SecretStr(secret)})})
    return settings.model_copy(update={"delivery": delivery})
