"""The benchmarks' probes, each a process of its own so it never shares a GIL with what it measures.

    python -m bench._clients sse --url http://127.0.0.1:8090 --recipients user-0:100 --out arrivals.tsv
    python -m bench._clients raw --topic chat.responses --out arrivals.tsv      # settings from HUBSTREAM_*

``sse`` holds one SSE stream per recipient on raw asyncio sockets (a StreamReader each, so thousands fit in one
process), and writes ``eventId<TAB>arrival time`` for every message event as its frame arrives. ``raw`` is a bare
confluent-kafka consumer with the delivery node's own consumer config (kafka_config.consumer_config from the same
settings): it writes ``key<TAB>receipt time`` per record, the floor of the end-to-end latency. Both write a JSON
status file (streams open, failed, closed; records; assigned) every 200 ms and stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

_EVENT_ID = re.compile(rb'"eventId":"([^"]+)"')
_FLUSH_S = 0.2


@dataclass
class Status:
    open: int = 0
    failed: int = 0
    closed: int = 0
    received: int = 0
    assigned: bool = False
    errors: str = ""


class Recorder:
    """Buffers (id, time) pairs and writes them, with the status, every 200 ms."""

    def __init__(self, out: Path, status_file: Path) -> None:
        self._out: IO[str] = open(out, "a")  # noqa: SIM115 - closed in close()
        self._status_file = status_file
        self._pending: list[str] = []
        self.status = Status()

    def arrived(self, key: str, at: float) -> None:
        self._pending.append(f"{key}\t{at:.6f}\n")
        self.status.received += 1

    def flush(self) -> None:
        if self._pending:
            self._out.write("".join(self._pending))
            self._out.flush()
            self._pending.clear()
        tmp = self._status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.status)))
        tmp.replace(self._status_file)

    def close(self) -> None:
        self.flush()
        self._out.close()


# --- SSE ------------------------------------------------------------------------------------------------------


async def hold_streams(url: str, recipients: list[str], recorder: Recorder, concurrency: int) -> None:
    from bench._stack import token

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    opening = asyncio.Semaphore(concurrency)  # connects in flight, so a burst does not overrun the accept queue
    tasks = [asyncio.create_task(_stream(host, port, r, token(r), recorder, opening)) for r in recipients]
    await asyncio.gather(*tasks, return_exceptions=True)


async def _stream(
    host: str, port: int, recipient: str, bearer: str, recorder: Recorder, opening: asyncio.Semaphore
) -> None:
    status = recorder.status
    try:
        async with opening:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
            writer.write(
                f"GET /v1/mailboxes/{recipient}/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {bearer}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
        status.failed += 1
        status.errors = f"{recipient}: {exc.__class__.__name__}: {exc}"[:300]
        return
    status.open += 1
    chunked = b"transfer-encoding: chunked" in head.lower()
    buffer = b""
    try:
        while True:
            if chunked:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(1 << 16)
                if not data:
                    break
            now = time.time()
            buffer = (buffer + data).replace(b"\r\n", b"\n")  # the node ends event lines with CRLF, pings with LF
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if line.startswith(b"data:"):
                        found = _EVENT_ID.search(line)
                        if found:
                            recorder.arrived(found.group(1).decode(), now)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        status.open -= 1
        status.closed += 1
        writer.close()


def recipients_of(spec: str) -> list[str]:
    """``prefix:start:count`` or ``prefix:count``."""
    prefix, *numbers = spec.rsplit(":", 2)
    start, count = (0, int(numbers[0])) if len(numbers) == 1 else (int(numbers[0]), int(numbers[1]))
    return [f"{prefix}{i}" for i in range(start, start + count)]


async def run_sse(args: argparse.Namespace) -> None:
    recorder = Recorder(args.out, args.status)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)

    async def flush_forever() -> None:
        while True:
            recorder.flush()
            await asyncio.sleep(_FLUSH_S)

    flusher = asyncio.create_task(flush_forever())
    streams = asyncio.create_task(hold_streams(args.url, recipients_of(args.recipients), recorder, args.concurrency))
    await stopping.wait()
    streams.cancel()
    flusher.cancel()
    recorder.close()


# --- the raw consumer -----------------------------------------------------------------------------------------


def run_raw(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer

    from hubstream import kafka_config
    from hubstream.settings import Settings

    recorder = Recorder(args.out, args.status)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    config = kafka_config.consumer_config(Settings(), f"bench-raw-{uuid.uuid4().hex[:8]}")
    consumer = Consumer(config)

    def assigned(_consumer: Consumer, partitions: list[object]) -> None:
        recorder.status.assigned = bool(partitions)

    consumer.subscribe([args.topic], on_assign=assigned)
    last_flush = time.monotonic()
    try:
        while not stopping:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                recorder.arrived((message.key() or b"").decode(), time.time())
            if time.monotonic() - last_flush >= _FLUSH_S:
                recorder.flush()
                last_flush = time.monotonic()
    finally:
        consumer.close()
        recorder.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    sse = sub.add_parser("sse", help="hold SSE streams and log each message's arrival")
    sse.add_argument("--url", required=True, help="the delivery node")
    sse.add_argument("--recipients", required=True, help="prefix:start:count, e.g. user-:0:5000")
    sse.add_argument("--concurrency", type=int, default=200, help="connects in flight")
    raw = sub.add_parser("raw", help="a bare confluent-kafka consumer logging each record's receipt")
    raw.add_argument("--topic", required=True)
    for p in (sse, raw):
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--status", type=Path, required=True)
    args = parser.parse_args()
    if args.probe == "sse":
        asyncio.run(run_sse(args))
    else:
        run_raw(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
