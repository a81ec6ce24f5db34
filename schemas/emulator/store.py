"""The emulator's SQLite store: schema groups and the versions registered in them.

Durability: WAL with ``synchronous=FULL``, so a 204 means the version is on disk. Versions of one
name are numbered inside a ``BEGIN IMMEDIATE`` transaction (one writer at a time, across processes
too) and ``UNIQUE (group_name, schema_name, version)`` backs that up. A connection per operation
keeps threads (FastAPI runs sync handlers in a pool) from sharing one.

Group names compare case-insensitively, like other Azure resource names; schema names exactly.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from schemas.compatibility import Mode
from schemas.emulator.errors import GroupConflictError, NotFoundError
from schemas.emulator.groups import SchemaFormat, SchemaGroup

DB_FILE = "registry.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_groups (
    name          TEXT PRIMARY KEY COLLATE NOCASE,
    format        TEXT NOT NULL,
    compatibility TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_versions (
    id          TEXT PRIMARY KEY,
    group_name  TEXT NOT NULL COLLATE NOCASE REFERENCES schema_groups (name),
    schema_name TEXT NOT NULL,
    version     INTEGER NOT NULL,
    format      TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (group_name, schema_name, version)
);
"""

_VERSION_COLUMNS = "id, group_name, schema_name, version, format, definition"


@dataclass(frozen=True)
class SchemaVersion:
    id: str
    group: str
    name: str
    version: int
    format: SchemaFormat
    definition: str


@dataclass(frozen=True)
class GroupUsage:
    group: SchemaGroup
    schemas: int
    versions: int


# Called inside the write transaction with the group and its existing versions of the name (oldest
# first); raises to refuse the new version. Keeps format and compatibility rules out of the store.
Admission = Callable[[SchemaGroup, Sequence[SchemaVersion]], None]


class SchemaStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: stays set in the file
            conn.executescript(_SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SchemaStore:
        return cls(state_dir / DB_FILE)

    # groups

    def put_group(self, group: SchemaGroup) -> SchemaGroup:
        """Create the group or change its mode; its format can change only while it holds no schemas."""
        with self._write() as conn:
            existing = _find_group(conn, group.name)
            if existing and existing.format is not group.format and _count_versions(conn, existing.name):
                raise GroupConflictError(
                    f"Schema group {existing.name} holds {existing.format.value} schemas; "
                    f"its format cannot change to {group.format.value}."
                )
            conn.execute(
                "INSERT INTO schema_groups (name, format, compatibility) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET format = excluded.format, compatibility = excluded.compatibility",
                (group.name, group.format.value, group.compatibility.azure_name),
            )
            return _get_group(conn, group.name)

    def ensure_group(self, group: SchemaGroup) -> SchemaGroup:
        """Create the group if no group of that name exists; an existing one is left as it is."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO schema_groups (name, format, compatibility) VALUES (?, ?, ?)",
                (group.name, group.format.value, group.compatibility.azure_name),
            )
            return _get_group(conn, group.name)

    def get_group(self, name: str) -> SchemaGroup:
        with self._connect() as conn:
            return _get_group(conn, name)

    def list_groups(self) -> list[GroupUsage]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT g.name, g.format, g.compatibility, COUNT(DISTINCT v.schema_name), COUNT(v.id) "
                "FROM schema_groups g LEFT JOIN schema_versions v ON v.group_name = g.name "
                "GROUP BY g.name ORDER BY g.name"
            ).fetchall()
        return [GroupUsage(_group_from_row(row[:3]), row[3], row[4]) for row in rows]

    # schema versions

    def register(
        self, group_name: str, name: str, fmt: SchemaFormat, definition: str, admit: Admission
    ) -> SchemaVersion:
        """Add ``definition`` as the next version of ``name``, or return the latest if it is the same text.

        Content equal to an older version (not the latest) becomes a new version, as in Azure.
        """
        with self._write() as conn:
            group = _get_group(conn, group_name)
            previous = _versions(conn, group.name, name)
            latest = previous[-1] if previous else None
            if latest and latest.definition == definition and latest.format is fmt:
                return latest
            admit(group, previous)
            created = SchemaVersion(
                id=uuid.uuid4().hex,
                group=group.name,
                name=name,
                version=latest.version + 1 if latest else 1,
                format=fmt,
                definition=definition,
            )
            conn.execute(
                f"INSERT INTO schema_versions ({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (created.id, created.group, created.name, created.version, fmt.value, definition),
            )
            return created

    def find(self, group_name: str, name: str, definition: str, same: Callable[[str], str] = str) -> SchemaVersion:
        """The newest version of ``name`` whose content is ``definition``'s: ``same(text)`` equal for both texts.

        ``same`` is the comparison key (``schemas.emulator.content.content_key`` for get-id); the default
        compares the texts exactly.
        """
        wanted = same(definition)
        with self._connect() as conn:
            group = _get_group(conn, group_name)
            versions = _versions(conn, group.name, name)
        if not versions:
            raise NotFoundError(f"Schema {group.name}/{name} does not exist.")
        for version in reversed(versions):
            if version.definition == definition or same(version.definition) == wanted:
                return version
        raise NotFoundError(f"No version of schema {group.name}/{name} has the given content.")

    def by_id(self, schema_id: str) -> SchemaVersion:
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_VERSION_COLUMNS} FROM schema_versions WHERE id = ?", (schema_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"Schema id {schema_id} does not exist.")
        return _version_from_row(row)

    def by_version(self, group_name: str, name: str, version: int) -> SchemaVersion:
        with self._connect() as conn:
            group = _get_group(conn, group_name)
            row = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM schema_versions "
                "WHERE group_name = ? AND schema_name = ? AND version = ?",
                (group.name, name, version),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Schema {group.name}/{name}/ver.{version} does not exist.")
        return _version_from_row(row)

    def version_numbers(self, group_name: str, name: str) -> list[int]:
        with self._connect() as conn:
            group = _get_group(conn, group_name)
            numbers = [v.version for v in _versions(conn, group.name, name)]
        if not numbers:
            raise NotFoundError(f"Schema {group.name}/{name} does not exist.")
        return numbers

    # connections

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE themselves
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            # take the write lock before reading, so two registrations cannot both see version n as latest
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _find_group(conn: sqlite3.Connection, name: str) -> SchemaGroup | None:
    row = conn.execute("SELECT name, format, compatibility FROM schema_groups WHERE name = ?", (name,)).fetchone()
    return _group_from_row(row) if row else None


def _get_group(conn: sqlite3.Connection, name: str) -> SchemaGroup:
    group = _find_group(conn, name)
    if group is None:
        raise NotFoundError(
            f"Schema group {name} does not exist. Create it with `hubstream registry group create {name}` "
            "or in the --groups file."
        )
    return group


def _count_versions(conn: sqlite3.Connection, group_name: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM schema_versions WHERE group_name = ?", (group_name,)).fetchone()
    return int(row[0])


def _versions(conn: sqlite3.Connection, group_name: str, name: str) -> list[SchemaVersion]:
    rows = conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM schema_versions WHERE group_name = ? AND schema_name = ? ORDER BY version",
        (group_name, name),
    ).fetchall()
    return [_version_from_row(row) for row in rows]


def _group_from_row(row: Sequence[str]) -> SchemaGroup:
    return SchemaGroup(name=row[0], format=SchemaFormat(row[1]), compatibility=Mode.parse(row[2]))


def _version_from_row(row: Sequence[object]) -> SchemaVersion:
    schema_id, group, name, version, fmt, definition = row
    return SchemaVersion(
        str(schema_id), str(group), str(name), int(str(version)), SchemaFormat(str(fmt)), str(definition)
    )
