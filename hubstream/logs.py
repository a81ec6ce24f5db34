"""Log output: text for people, or one JSON object per line for log pipelines (``HUBSTREAM_LOG_FORMAT=json``).

Structured fields are passed with ``extra={...}`` (e.g. ``event``, ``group``, ``member_id``, ``partitions``);
the JSON format writes them as top-level keys, the text format shows only the message.

Values that come from records (keys, event ids) go into a message through ``printable()``, so a key cannot
start a forged log line or send escape codes to the terminal.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

PRINTABLE_LIMIT = 200  # characters of printable() output before it is cut


def printable(value: bytes | str | None, limit: int = PRINTABLE_LIMIT) -> str:
    """``value`` as one line of plain text, for a log message; ``-`` for None.

    Control characters (newlines, ANSI escape codes), other unprintable characters and backslashes are written
    as Python escapes (``\\n``, ``\\x1b``, ``\\u2028``, ``\\\\``), bytes that are not UTF-8 as ``\\xff``. Past
    ``limit`` characters the text is cut and ends with ``…``.
    """
    if value is None:
        return "-"
    # no more than can show: limit + 1 characters, or the bytes that hold at least that many
    text = value[: 4 * limit + 1].decode(errors="surrogateescape") if isinstance(value, bytes) else value[: limit + 1]
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text  # the usual key: nothing to escape
    out: list[str] = []
    length = 0
    for char in text:
        piece = _escape(char)
        if length + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


def _escape(char: str) -> str:
    if char.isprintable() and char != "\\":
        return char
    if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8, as surrogateescape kept it
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]


# attributes every LogRecord has; anything else on a record came from extra={...}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str, style: Literal["text", "json"] = "text") -> None:
    handler = logging.StreamHandler()
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # the Azure SDK logs every HTTP request and response at INFO
    logging.getLogger("azure").setLevel(max(root.level, logging.WARNING))
