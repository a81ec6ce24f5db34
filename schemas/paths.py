"""Where in a value a problem is, as the producer API and the serde report it.

Paths run from the root: ``sections[2].order``, ``metadata.lang``, ``metadata["x-trace"]``; a key that is
not an identifier is quoted as JSON; the value itself is ``$``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

ROOT = "$"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def join_path(path: str, segment: str | int) -> str:
    """``path`` ("" at the root) one step further down: ``.name``, ``[3]`` or ``["odd key"]``."""
    if isinstance(segment, int):
        return f"{path}[{segment}]"
    if _IDENTIFIER.match(segment):
        return f"{path}.{segment}" if path else segment
    return f"{path}[{json.dumps(segment, ensure_ascii=False)}]"


def format_path(path: Iterable[str | int]) -> str:
    """The path of a list of steps (field names, map keys, array indexes); ``$`` for none."""
    text = ""
    for segment in path:
        text = join_path(text, segment)
    return text or ROOT
