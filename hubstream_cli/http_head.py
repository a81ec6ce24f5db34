"""uvicorn's httptools protocol with h11's bound on a request's head (its request line and headers).

h11 keeps at most ``h11_max_incomplete_event_size`` bytes of a head it has not finished reading, then answers
400; uvicorn's httptools protocol keeps any amount. This one counts the bytes a head has taken so far and answers
as h11 does ("Invalid HTTP request received.", 400, connection closed) once they pass the same bound. The count
is of whole reads in which no head or body ended, checked after each, so at most one read (64 KiB) more is held.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until a request's headers are complete, what arrives belongs to its head
        self._head_bytes = 0
        self._boundaries = 0  # heads and messages that ended

    def data_received(self, data: bytes) -> None:
        boundaries = self._boundaries
        super().data_received(data)
        if boundaries != self._boundaries:  # a head or a body ended in this read: count from the next one
            self._head_bytes = 0
            return
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._boundaries += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._boundaries += 1
