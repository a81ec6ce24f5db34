"""API keys for the producer API, kept hashed in a small JSON file (``hubstream api-keys`` manages it).

A key is ``hsk_<id>_<secret>``: ``id`` (12 hex digits) names the key in listings and logs, ``secret`` is 32
random bytes (URL-safe base64). The file keeps only SHA-256 of the secret. A slow password hash (argon2,
scrypt) protects guessable secrets; a 256-bit random secret cannot be guessed, so one SHA-256 per request
is enough and keeps verification cheap. Digests are compared in constant time.

Several keys may be active at once (rotate: create the new one, move clients, revoke the old). A key may be
limited to some topics; a key without topics may publish to any. The file is written atomically with mode
0600, and a running API re-reads it when it changes, so a revocation takes effect without a restart.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hubstream.errors import ConfigurationError, HubstreamError
from hubstream.files import locked, write_atomically

PREFIX = "hsk_"
_KEY = re.compile(r"hsk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})\Z")
_RELOAD_EVERY_S = 1.0


class ApiKeyError(HubstreamError):
    """An api-keys command that cannot be done as asked (an unknown key id)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    digest: str  # SHA-256 of the secret, hex
    topics: tuple[str, ...] | None  # None: every topic
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_publish(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def public(self) -> dict[str, Any]:
        """What listings show: everything but the digest."""
        shown = asdict(self)
        del shown["digest"]
        shown["topics"] = None if self.topics is None else list(self.topics)
        shown["active"] = self.active
        return shown


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    """The keys in one JSON file; thread-safe, and safe beside other processes that write the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def create(self, name: str, topics: list[str] | None = None) -> tuple[ApiKey, str]:
        """A new active key; returns it and the full key text, which is shown once and never stored."""
        key_id = secrets.token_hex(6)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        key = ApiKey(key_id, name, _digest(secret), tuple(topics) if topics else None, time.time())
        with self._lock, self._file_lock():
            keys = self._read()
            keys[key_id] = key
            self._write(keys)
        return key, f"{PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        with self._lock:
            return sorted(self._read().values(), key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock, self._file_lock():
            keys = self._read()
            key = keys.get(key_id)
            if key is None:
                known = ", ".join(sorted(keys)) or "none"
                raise ApiKeyError(f"no API key with id {key_id!r} (known: {known}); see `hubstream api-keys list`")
            if key.active:
                keys[key_id] = key = replace(key, revoked_at=time.time())
                self._write(keys)
            return key

    def verify(self, presented: str) -> ApiKey | None:
        """The active key ``presented`` is, or None (malformed, unknown, revoked or a wrong secret)."""
        match = _KEY.match(presented)
        if match is None:
            return None
        with self._lock:
            self._refresh()
            key = self._keys.get(match["id"])
            if key is None:  # created since the last look: a stat, and a read only when the file changed
                self._refresh(force=True)
                key = self._keys.get(match["id"])
        if key is None or not hmac.compare_digest(key.digest, _digest(match["secret"])):
            return None
        return key if key.active else None

    def _file_lock(self) -> contextlib.AbstractContextManager[None]:
        """Another process (a second `hubstream api-keys create`) waits, so that no write is lost."""
        return locked(self.path.with_name(self.path.name + ".lock"))

    def _refresh(self, *, force: bool = False) -> None:
        """Re-read the file when another process changed it (looked at once a second, or now with ``force``)."""
        now = time.monotonic()
        if not force and self._stamp is not None and now - self._checked < _RELOAD_EVERY_S:
            return
        self._checked = now
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._keys = self._load()
            self._stamp = stamp

    def _file_stamp(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    def _read(self) -> dict[str, ApiKey]:
        self._keys, self._stamp = self._load(), self._file_stamp()
        return dict(self._keys)

    def _load(self) -> dict[str, ApiKey]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                item["id"]: ApiKey(
                    id=item["id"],
                    name=item["name"],
                    digest=item["digest"],
                    topics=None if item.get("topics") is None else tuple(item["topics"]),
                    created_at=float(item["created_at"]),
                    revoked_at=None if item.get("revoked_at") is None else float(item["revoked_at"]),
                )
                for item in data["keys"]
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"the API key file {self.path} cannot be read ({type(exc).__name__}: {exc}); fix or remove it "
                "(HUBSTREAM_API__API_KEYS_FILE says where it is)"
            ) from None

    def _write(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        items = [{**asdict(k), "topics": None if k.topics is None else list(k.topics)} for k in keys.values()]
        text = json.dumps({"version": 1, "keys": items}, indent=2) + "\n"
        write_atomically(self.path, text.encode(), mode=0o600)
        self._keys, self._stamp = dict(keys), self._file_stamp()


def key_store_path(state_dir: Path, configured: Path | None) -> Path:
    return configured if configured is not None else state_dir / "api-keys.json"
