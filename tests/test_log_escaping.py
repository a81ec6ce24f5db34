"""Record-controlled text in logs: keys and ids escaped on one line, and event bodies only at DEBUG."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from hubstream.logs import printable
from kafka_consumer.events import ConsumedEvent
from kafka_consumer.handlers import log_event
from kafka_consumer.idempotency import ProcessedIds, idempotent

FORGED = "a\nINFO forged\x1b[31m"
TEXT_FORMAT = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")  # setup_logging's text format


def _event(value: dict[str, Any], key: bytes | None = b"conv-1") -> ConsumedEvent:
    return ConsumedEvent(
        value=value,
        topic="chat.responses",
        partition=2,
        offset=41,
        key=key,
        timestamp_ms=None,
        schema_id="s1",
        schema_name="hubstream.chat.ChatResponse",
        body=b"x" * 57,
    )


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [TEXT_FORMAT.format(record) for record in caplog.records]


def test_a_forged_key_logs_as_one_line_with_its_escapes_visible(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_event(_event({"eventId": "e-1"}, key=FORGED.encode()))
    (line,) = _lines(caplog)
    assert "\n" not in line and "\x1b" not in line
    assert r"key=a\nINFO forged\x1b[31m schema=" in line


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (b"conv-1", "conv-1"),
        ("café", "café"),
        (b"\xffk\xfe", r"\xffk\xfe"),  # not UTF-8
        ("tab\there\r", r"tab\there\r"),
        ("next\u2028line\x85\x9b[2J", r"next\u2028line\x85\x9b[2J"),  # Unicode line separator, C1 controls
        (r"\n", r"\\n"),  # a real backslash cannot pass for an escape
    ],
)
def test_printable_escapes_what_could_move_or_colour_the_terminal(value: bytes | str | None, shown: str) -> None:
    assert printable(value) == shown


def test_printable_cuts_long_keys() -> None:
    assert printable("k" * 10_000) == "k" * 200 + "…"
    assert printable(b"\x1b" * 10_000) == r"\x1b" * 50 + "…"
    assert printable("k" * 200) == "k" * 200


def test_the_default_handler_logs_no_body_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_event(_event({"eventId": "evt-1", "userId": "user-1", "content": "my secret diagnosis"}))
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "chat.responses[2]@41 key=conv-1 schema=hubstream.chat.ChatResponse eventId=evt-1 (57 bytes)"
    )


def test_the_default_handler_names_no_event_id_when_there_is_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_event(_event({"userId": "user-1"}, key=None))
    assert caplog.messages == ["chat.responses[2]@41 key=- schema=hubstream.chat.ChatResponse (57 bytes)"]


def test_the_default_handler_escapes_the_event_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_event(_event({"eventId": FORGED}))
    (line,) = _lines(caplog)
    assert r"eventId=a\nINFO forged\x1b[31m (57 bytes)" in line


def test_the_default_handler_logs_the_body_at_debug_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kafka_consumer.handlers")
    value = {"eventId": "evt-1", "content": "ligne 1\nligne 2 \x1b[31mrouge\x9b[2J café"}
    log_event(_event(value))
    info, debug = caplog.records
    assert info.levelno == logging.INFO and "content" not in info.getMessage()
    assert debug.levelno == logging.DEBUG
    message = debug.getMessage()
    prefix = "chat.responses[2]@41 body "
    assert message.startswith(prefix) and json.loads(message.removeprefix(prefix)) == value
    assert message.isprintable() and "café" in message  # no control character, non-ASCII text readable


def test_idempotency_logs_escape_event_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kafka_consumer.idempotency")
    with ProcessedIds(tmp_path / "ids.db") as store:
        handled = []
        handler = idempotent(store)(handled.append)
        handler(_event({"eventId": FORGED}))
        handler(_event({"eventId": FORGED}))
    assert len(handled) == 1
    (line,) = _lines(caplog)
    assert r"event a\nINFO forged\x1b[31m was already processed" in line and "\n" not in line
