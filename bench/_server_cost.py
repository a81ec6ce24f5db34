"""What a server under load spends, for bench/http_ingest.py: its CPU thread by thread (librdkafka's apart),
and where its Python code is (py-spy, when asked for)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Cpu:
    total: float = 0.0  # seconds, user + system
    librdkafka: float = 0.0  # of which in librdkafka's threads (rdk:*)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.total - other.total, self.librdkafka - other.librdkafka)


def cpu_seconds(pid: int) -> Cpu:
    """CPU of ``pid`` and its descendants (the workers), thread by thread from /proc."""
    cpu, todo, tick = Cpu(), [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                name, _, rest = (task / "stat").read_text().partition(" (")[2].rpartition(")")
                fields = rest.split()
                seconds = (int(fields[11]) + int(fields[12])) / tick
                cpu.total += seconds
                if name.startswith("rdk:"):
                    cpu.librdkafka += seconds
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return cpu


@contextlib.contextmanager
def sampled(pid: int, directory: Path | None, what: str, seconds: int) -> Iterator[None]:
    """py-spy samples ``pid`` (and its children) while the block runs; the top frames are printed after."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{what}.txt"
    argv = ["py-spy", "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
    spy = subprocess.Popen(
        [*argv, "--duration", str(seconds), "--rate", "200", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.wait(seconds + 30)
    print(f"    profile {what}: {out}", flush=True)
    print(top_frames(out), flush=True)


def top_frames(collapsed: Path, count: int = 12) -> str:
    """The frames with the most samples on the stack (inclusive) and at its top (self), from py-spy's raw output."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        frames = [f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1] for f in stack.split(";")[1:]]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + samples
    lines = [f"    {total} samples; self:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:count]:
        lines.append(f"      {100 * n / total:5.1f}%  {frame}")
    lines.append("    inclusive:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[: count * 2]:
        lines.append(f"      {100 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)
