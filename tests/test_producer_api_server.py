"""The producer API's server stack: the head bound of its httptools protocol (as h11's), and orjson parsing
bodies exactly as the standard library path did."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from hubstream.ports import free_port, port_open
from hubstream.settings import load_settings
from hubstream_cli.http_head import MAX_HEAD_BYTES
from hubstream_cli.produce_api import server_options
from kafka_producer.body import RejectedRequestError, _parse_json_stdlib, parse_json


async def _echo_length(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    answer = str(size).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    options = server_options(load_settings(api={"host": "127.0.0.1", "port": port}), http=request.param)
    server = uvicorn.Server(uvicorn.Config(_echo_length, log_level="error", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not (server.started and port_open("127.0.0.1", port)):
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


def _exchange(port: int, *requests: bytes) -> list[bytes]:
    """Send the requests on one connection, one after the other; each answer's status line."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for raw in requests:
            sock.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            answers.append(data.split(b"\r\n", 1)[0])
            if not data.startswith(b"HTTP/1.1 200"):
                break
            head, _, rest = data.partition(b"\r\n\r\n")
            fields = (line.partition(b": ") for line in head.split(b"\r\n"))
            length = next(int(v) for k, _, v in fields if k.lower() == b"content-length")
            while len(rest) < length:
                rest += sock.recv(65536)
    return answers


def _request(header_bytes: int, body: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * header_bytes + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def test_an_unfinished_head_over_the_bound_is_400_on_both_parsers(server: int) -> None:
    unfinished = _request(MAX_HEAD_BYTES + 4096).removesuffix(b"\r\n\r\n")
    assert _exchange(server, unfinished) == [b"HTTP/1.1 400 Bad Request"]


def test_a_head_sent_in_small_pieces_is_bounded_on_both_parsers(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Pad: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server answered and closed
            for _ in range(MAX_HEAD_BYTES // 1000 + 8):
                sock.sendall(b"a" * 1000)
                time.sleep(0.005)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 Bad Request")


def test_heads_under_the_bound_pass_request_after_request(server: int) -> None:
    pad = MAX_HEAD_BYTES // 2  # two of these on one connection exceed the bound together, not each
    assert _exchange(server, _request(pad), _request(pad), _request(pad)) == [b"HTTP/1.1 200 OK"] * 3


def test_a_large_body_is_not_counted_as_head(server: int) -> None:
    assert _exchange(server, _request(100, b"x" * 300_000)) == [b"HTTP/1.1 200 OK"]


def _outcome(body: bytes, parse: Any) -> Any:
    try:
        parsed = parse(body)
    except RejectedRequestError as exc:
        return ("rejected", exc.status, exc.code, str(exc))
    if parsed.problems:  # the value then holds markers (non-finite numbers), compared through their problems
        return ("problems", parsed.problems)
    return ("value", json.dumps(parsed.value, sort_keys=True), repr(parsed.value))


_any_character = st.characters(blacklist_categories=())  # lone surrogates too
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_any_character)
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(_any_character), inner)
)


@settings(max_examples=300, deadline=None)
@given(_values, st.booleans())
def test_orjson_parses_as_the_standard_library(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _outcome(body, parse_json) == _outcome(body, _parse_json_stdlib)


@pytest.mark.parametrize(
    "body",
    [
        b"NaN",
        b'{"a": [Infinity, -Infinity]}',
        b"[1e400]",
        b'"\\ud800"',
        b'{"\\udc00": 1}',
        b'"\\ud83d\\ude00"',
        b"123456789012345678901234567890",
        b"-9223372036854775809",
        b"18446744073709551615",
        b"\xef\xbb\xbf{}",
        b'"\xff"',
        b"",
        b"1 2",
        b'{"a":1,"a":2}',
        b"[" * 600 + b"]" * 600,
        b'{"a":' * 513 + b"1" + b"}" * 513,
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_edge_bodies_parse_as_the_standard_library(body: bytes) -> None:
    assert _outcome(body, parse_json) == _outcome(body, _parse_json_stdlib)
