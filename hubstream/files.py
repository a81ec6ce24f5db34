"""Files more than one process shares: an exclusive lock, atomic writes, secrets created once, and owner-only
(0700/0600) directories and files for anything that holds events or their ids."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created, with its directory, if missing); other processes wait."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # created with the final mode, so a key is never readable by others, not even briefly
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def secret_file(path: Path, make: str) -> str:
    """The secret kept in ``path`` (0600); ``make`` is written there first if the file does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(make)
    return make


def private_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents owner-only (0700); returns those created, outermost first.

    Directories that exist already keep their mode.
    """
    missing = []
    path = directory
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
    return missing[::-1]


def new_private_file(path: Path) -> BinaryIO:
    """Open a new file for writing, owner-only (0600) from its creation; FileExistsError if ``path`` exists."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) unless it exists; an existing file keeps its mode.

    For a SQLite database create it this way before SQLite opens it: SQLite gives its ``-wal``, ``-shm`` and
    ``-journal`` files the database file's mode, whatever the process's umask.
    """
    with suppress(FileExistsError):
        new_private_file(path).close()
