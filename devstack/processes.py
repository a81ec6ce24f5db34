"""Child processes that never outlive their parent, and ports that are checked before use."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from hubstream.errors import HubstreamError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends SIGTERM when the parent dies, even by SIGKILL,
    # so a crashed `hubstream dev` leaves no broker or server behind.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """A named subprocess started with parent-death protection and stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self._log: IO[bytes] | None = None
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_file, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log if self._log else None,
            stderr=subprocess.STDOUT if self._log else None,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 8.0) -> int | None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log:
            self._log.close()
            self._log = None
        return self.process.returncode

    def tail(self, lines: int = 20) -> str:
        if not self.log_file or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, process: ChildProcess | None = None) -> None:
    """Poll `check` until it holds; fail early if the process it waits for has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise HubstreamError(f"{what} exited with code {process.process.returncode}:\n{process.tail()}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            pass
        time.sleep(0.05)
    detail = f"\n{process.tail()}" if process is not None else ""
    raise HubstreamError(f"{what} was not ready within {timeout:.0f} s{detail}")
