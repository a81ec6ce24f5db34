"""A fast webhook receiver for the benchmarks: HTTP/1.1 keep-alive on raw asyncio, 200 to every POST.

    python -m bench._receiver --port 9000 --out received.tsv --status status.json

A process of its own. For each request it answers ``200 ok`` and then writes ``webhook-id<TAB>time of the 2xx<TAB>
arrivedAt`` (the message's, as sent; empty for a plain POST) in batches every 200 ms; the status file holds the
count. It checks no signatures: the bench measures sending, and the tests check signing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path

_ARRIVED = re.compile(rb'"arrivedAt":"([^"]+)"')
_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
_FLUSH_S = 0.2


class Log:
    def __init__(self, out: Path, status: Path) -> None:
        self._out = open(out, "a")  # noqa: SIM115 - closed in close()
        self._status = status
        self._lines: list[str] = []
        self.count = 0

    def add(self, webhook_id: str, at: float, arrived: str) -> None:
        self._lines.append(f"{webhook_id}\t{at:.6f}\t{arrived}\n")
        self.count += 1

    def flush(self) -> None:
        if self._lines:
            self._out.write("".join(self._lines))
            self._out.flush()
            self._lines.clear()
        tmp = self._status.with_suffix(".tmp")
        tmp.write_text(json.dumps({"received": self.count}))
        tmp.replace(self._status)

    def close(self) -> None:
        self.flush()
        self._out.close()


class Connection(asyncio.Protocol):
    """One keep-alive connection: parse requests as bytes arrive, answer each at once (no per-request task)."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length, webhook_id = 0, ""
            for line in self._buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    webhook_id = value.strip().decode()
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            assert self._transport is not None
            self._transport.write(_OK)
            at = time.time()
            found = _ARRIVED.search(body)
            self._log.add(webhook_id, at, found.group(1).decode() if found else "")


async def main_async(args: argparse.Namespace) -> None:
    log = Log(args.out, args.status)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(log), "127.0.0.1", args.port, backlog=1024)
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    log.flush()
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), _FLUSH_S)
        except TimeoutError:
            log.flush()
    server.close()
    log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
