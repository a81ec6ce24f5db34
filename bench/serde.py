"""Throughput of hubstream's AvroSerde against azure-schemaregistry-avroencoder's AvroEncoder.

    .venv/bin/python bench/serde.py                       # starts a local registry emulator
    .venv/bin/python bench/serde.py --namespace host:port --ca-file ca.pem [--group g] [--token t]

Both encode and decode the same ChatResponse records through the same registry, in one process; the
bytes must be identical and each side must decode the other's. Each measurement is the best of
``--repeat`` runs, the runs of both sides interleaved so that a noisy neighbour slows both alike. The
ratios (ours / AvroEncoder's records per second) are what the goals are about.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from azure.core.exceptions import ResourceNotFoundError
from azure.schemaregistry import SchemaRegistryClient
from azure.schemaregistry.encoder.avroencoder import AvroEncoder

from devstack.tls import TlsFiles
from hubstream.credentials import StaticTokenCredential
from schemas.contracts import Contract, load_contracts
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde

GOALS = {"encode": 12.0, "decode": 6.0}
CONTRACT = "hubstream.chat.ChatResponse"
_WORDS = [
    "the",
    "agent",
    "streams",
    "a",
    "response",
    "to",
    "the",
    "user",
    "chunk",
    "by",
    "chunk",
    "while",
    "it",
    "thinks",
    "about",
    "the",
    "answer",
]


def chat_responses(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Records shaped like a streamed LLM answer: short ids, a chunk of text, a few metadata entries."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    records = []
    for i in range(n):
        conversation = i // 40
        records.append(
            {
                "eventId": f"evt-{i:010d}",
                "conversationId": f"conv-{conversation:06d}",
                "userId": f"user-{conversation % 997:04d}",
                "sequence": i % 40,
                "content": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 30))),
                "final": i % 40 == 39,
                "createdAt": start + dt.timedelta(milliseconds=i * 37),
                "metadata": {"model": "gpt-4o", "region": "westeurope"} if i % 3 else {},
            }
        )
    return records


@contextlib.contextmanager
def local_emulator(token: str) -> Iterator[tuple[str, Path]]:
    """``python -m hubstream_cli registry serve`` on a free port, stopped on exit."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as state:
        state_dir = Path(state)
        log = open(state_dir / "emulator.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubstream_cli",
                "registry",
                "serve",
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "HUBSTREAM_REGISTRY__GROUP": "hubstream"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            namespace = f"localhost:{port}"
            yield namespace, _wait_for_ca(process, state_dir, namespace, token)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_for_ca(process: subprocess.Popen[bytes], state_dir: Path, namespace: str, token: str) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the registry emulator exited:\n{(state_dir / 'emulator.log').read_text()}")
        ca_file = TlsFiles.under(state_dir).ca_file
        if ca_file.exists():
            client = SchemaRegistryClient(
                namespace, StaticTokenCredential(token), connection_verify=str(ca_file), retry_total=0
            )
            try:
                client.get_schema("0" * 32)
            except ResourceNotFoundError:
                return ca_file
            except Exception:  # noqa: BLE001 - not serving yet
                pass
            finally:
                client.close()
        time.sleep(0.2)
    raise SystemExit("the registry emulator did not start within 30 s")


def best_rate(run: Callable[[], object], n: int, results: list[float]) -> None:
    gc.collect()
    started = time.perf_counter()
    run()
    results.append(n / (time.perf_counter() - started))


def bench(client: SchemaRegistryClient, group: str, n: int, repeat: int) -> dict[str, float]:
    contract: Contract = load_contracts(REPO_ROOT / "schemas" / "avro")[CONTRACT]
    registry = SchemaRegistry(client, group)
    schema_id = registry.register(contract)
    serde = AvroSerde(registry)
    encoder = AvroEncoder(client=client, group_name=group)
    records = chat_responses(n)

    # correctness first: same bytes, same header, and each decodes the other's
    theirs = [encoder.encode(r, schema=contract.text) for r in records]
    ours = [serde.encode(r, contract) for r in records]
    for record, their, our in zip(records, theirs, ours, strict=True):
        assert our.value == their["content"], f"bytes differ for {record['eventId']}"
        assert our.headers == [("content-type", their["content_type"].encode())], our.headers
        assert our.schema_id == schema_id
    messages = [{"content": m["content"], "content_type": m["content_type"]} for m in theirs]
    wire = [(e.value, e.headers) for e in ours]
    for record, message, (value, headers) in zip(records, messages, wire, strict=True):
        assert serde.decode(value, headers).record == record
        assert encoder.decode({"content": value, "content_type": headers[0][1].decode()}) == record
        assert serde.decode(message["content"], [("content-type", message["content_type"].encode())]).record == record

    # as a consumer meets them: every record brings its own header bytes and value objects
    wire = [(bytes(bytearray(v)), [("content-type", bytes(bytearray(h[0][1])))]) for v, h in wire]
    messages = [{"content": bytes(bytearray(m["content"])), "content_type": str(m["content_type"])} for m in messages]

    def encode_theirs() -> None:
        for r in records:
            encoder.encode(r, schema=text)

    def encode_ours() -> None:
        for r in records:
            serde.encode(r, contract)

    def decode_theirs() -> None:
        for m in messages:
            encoder.decode(m)

    def decode_ours() -> None:
        for v, h in wire:
            serde.decode(v, h)

    # results are dropped as a streaming service drops them, so no side pays for keeping 20,000 alive
    rates: dict[str, list[float]] = {k: [] for k in ("enc_theirs", "enc_ours", "dec_theirs", "dec_ours")}
    text = contract.text
    for _ in range(repeat):
        best_rate(encode_theirs, n, rates["enc_theirs"])
        best_rate(encode_ours, n, rates["enc_ours"])
        best_rate(decode_theirs, n, rates["dec_theirs"])
        best_rate(decode_ours, n, rates["dec_ours"])
    return {k: max(v) for k, v in rates.items()}


def report(best: dict[str, float], n: int, repeat: int) -> bool:
    print(
        f"\nAvroSerde vs AvroEncoder: {n:,} ChatResponse records, best of {repeat} interleaved runs, bytes identical\n"
    )
    print(f"{'':8} {'AvroEncoder rec/s':>18} {'hubstream rec/s':>16} {'ratio':>7} {'goal':>6}  met")
    met_all = True
    for op in ("encode", "decode"):
        theirs, ours = best[f"{op[:3]}_theirs"], best[f"{op[:3]}_ours"]
        ratio = ours / theirs
        met = ratio >= GOALS[op]
        met_all &= met
        print(f"{op:8} {theirs:18,.0f} {ours:16,.0f} {ratio:6.1f}x {GOALS[op]:5.0f}x  {'yes' if met else 'NO'}")
    print()
    return met_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--namespace", help="registry host[:port]; without it a local emulator is started")
    parser.add_argument("--ca-file", type=Path)
    parser.add_argument("--group", default="hubstream")
    parser.add_argument("--token", default="hubstream-local", help="static bearer token (the emulator's)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.namespace:
            namespace, ca_file = args.namespace, args.ca_file
        else:
            namespace, ca_file = stack.enter_context(local_emulator(args.token))
        kwargs = {"connection_verify": str(ca_file)} if ca_file else {}
        client = stack.enter_context(SchemaRegistryClient(namespace, StaticTokenCredential(args.token), **kwargs))
        best = bench(client, args.group, args.records, args.repeat)
    return 0 if report(best, args.records, args.repeat) else 1


if __name__ == "__main__":
    sys.exit(main())
