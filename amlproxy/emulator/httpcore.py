"""The messages and the application interface of the dev HTTP servers (the endpoint
emulator, the local API): :class:`Request`, :class:`Response`, :data:`App`.

The application is a plain callable ``Request -> Response``; a response may ask to be sent
after a delay (``delay_s``) or to drop the connection instead of answering (``drop``).
Delays are timers on the event loop, so a slow answer never blocks other connections. An
app may also return an ``asyncio.Future`` of its response (e.g. work run on a thread pool
with ``loop.run_in_executor``): the connection answers when it resolves. The wire side is
:mod:`amlproxy.emulator.httpconnection` (parsing) and :mod:`amlproxy.emulator.httpserve`
(listening, limits).
"""


from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus

import orjson

_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


@dataclass(slots=True)
class Request:
    """A parsed request. Header names are lower-cased (repeated ones joined with ", ");
    ``path`` is percent-decoded."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    """What to answer. ``delay_s`` > 0 sends it later; ``drop`` closes without answering
    (after ``delay_s``)."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_s: float = 0.0
    drop: bool = False

    def encode(self, *, close: bool, head_only: bool = False) -> bytes:
        """The answer on the wire (``head_only``: for a HEAD request, without the body)."""
        lines = [b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n"
                 % (self.status, _REASONS.get(self.status, b"Error"), len(self.body))]
        lines.extend(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
                     for name, value in self.headers)
        lines.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
        if not head_only:
            lines.append(self.body)
        return b"".join(lines)


App = Callable[[Request], "Response | asyncio.Future[Response]"]
ErrorReply = Callable[[int, str], Response]
"""``error_reply(status, reason)``: the answer the server itself gives (400, 408, 413...)."""


def json_error(status: int, reason: str) -> Response:
    """The server's own error answers: ``{"message": reason}``, as API Gateway and the
    AWS JSON protocols word theirs."""
    return Response(status, orjson.dumps({"message": reason}),
                    [("Content-Type", "application/json")])


class Phase(Enum):
    """Where a connection is in its request cycle; each phase but BUSY has a timeout."""

    IDLE = "idle"  # between requests: no byte of the next one yet
    HEAD = "head"  # the head is arriving
    BODY = "body"  # the body is arriving
    BUSY = "busy"  # the app has the request (or its answer is delayed)
