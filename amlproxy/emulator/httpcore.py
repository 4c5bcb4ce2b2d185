"""A small, fast HTTP/1.1 server core on ``asyncio.Protocol``.

Just what AWS SDK clients need: keep-alive, ``Content-Length`` bodies (no chunked request
bodies), ``Expect: 100-continue``, TCP_NODELAY on every accepted socket. The application is
a plain callable ``Request -> Response``; a response may ask to be sent after a delay
(``delay_s``) or to drop the connection instead of answering (``drop``). Delays are timers
on the event loop, so a slow answer never blocks other connections. An app may also return
an ``asyncio.Future`` of its response (e.g. work run on a thread pool with
``loop.run_in_executor``): the connection answers when it resolves.

One request at a time per connection: while a delayed answer is pending, further bytes
from that client are buffered and parsed once the answer is out (HTTP/1.1 ordering).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import unquote

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(slots=True)
class Request:
    """A parsed request. Header names are lower-cased; ``path`` is percent-decoded."""

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

    def encode(self, close: bool) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
        ]
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        lines.append("Connection: close\r\n\r\n" if close else "\r\n")
        return "".join(lines).encode("latin-1") + self.body


App = Callable[[Request], "Response | asyncio.Future[Response]"]
_Head = tuple[str, str, str, dict[str, str], int]  # method, target, version, headers, length


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests, hand them to the app, write answers."""

    def __init__(self, app: App, registry: set[HttpConnection]) -> None:
        self._app = app
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._head: _Head | None = None  # parsed head of a request whose body is incomplete

    # asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._registry.discard(self)

    # ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close now, abandoning any pending delayed answer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None and not self._closed:
            self._transport.close()

    def _process(self) -> None:
        buf = self._buf
        while not self._closed and not self._busy:
            head = self._head
            if head is None:
                head = self._read_head()
                if head is None:
                    return
            method, target, version, headers, length = head
            if len(buf) < length:
                self._head = head  # the body is still on its way
                return
            self._head = None
            body = bytes(buf[:length])
            del buf[:length]
            path, _, query = target.partition("?")
            if "%" in path:
                path = unquote(path)
            close = _wants_close(version, headers)
            try:
                response = self._app(Request(method, path, query, headers, body))
            except Exception:  # the app must never kill the connection loop
                log.exception("emulator app failed on %s %s", method, path)
                response = Response(500, b'{"message":"emulator internal error"}')
            if isinstance(response, asyncio.Future):
                self._busy = True
                response.add_done_callback(functools.partial(self._resolved, close=close))
                return
            if response.delay_s > 0 or response.drop:
                self._busy = True
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(response.delay_s, self._deliver, response, close)
                return
            self._send(response, close)

    def _read_head(self) -> _Head | None:
        """Parse and consume the head at the start of the buffer (None: incomplete or bad;
        a bad one is answered and the connection closed)."""
        buf = self._buf
        end_of_head = buf.find(b"\r\n\r\n")
        if end_of_head < 0:
            if len(buf) > MAX_HEAD_BYTES:
                self._fail(431)
            return None
        try:
            method, target, version, headers = _parse_head(bytes(buf[:end_of_head]))
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError("negative Content-Length")
        except (ValueError, UnicodeDecodeError):
            self._fail(400)
            return None
        if "chunked" in headers.get("transfer-encoding", ""):
            self._fail(411)
            return None
        if length > MAX_BODY_BYTES:
            self._fail(413)
            return None
        del buf[: end_of_head + 4]
        if len(buf) < length and headers.get("expect", "").lower() == "100-continue":
            self._write(_CONTINUE)
        return method, target, version, headers, length

    def _resolved(self, done: asyncio.Future[Response], close: bool) -> None:
        if done.cancelled() or done.exception() is not None:
            if not done.cancelled():
                log.error("app failed", exc_info=done.exception())
            response = Response(500, b'{"message":"internal error"}')
        else:
            response = done.result()
        if response.delay_s > 0 or response.drop:
            self._timer = asyncio.get_running_loop().call_later(
                response.delay_s, self._deliver, response, close
            )
            return
        self._deliver(response, close)

    def _deliver(self, response: Response, close: bool) -> None:
        self._timer = None
        self._busy = False
        if self._closed:
            return
        self._send(response, close)
        if not self._closed and self._buf:
            self._process()

    def _send(self, response: Response, close: bool) -> None:
        if response.drop:
            self.close()
            return
        self._write(response.encode(close))
        if close:
            self.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    def _fail(self, status: int) -> None:
        self._send(Response(status), close=True)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


def _wants_close(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection != "keep-alive"
    return connection == "close"
