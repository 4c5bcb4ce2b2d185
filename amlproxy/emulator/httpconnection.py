"""One connection of the dev HTTP servers (the endpoint emulator, the local API):
llhttp, Node.js's HTTP parser (through ``httptools``, uvicorn's), on ``asyncio.Protocol``.

llhttp frames every request as RFC 9112 says and refuses, with 400, what a front server
must not guess at: a malformed or repeated ``Content-Length`` (``+10``, ``1_0``, two header
lines), ``Content-Length`` together with ``Transfer-Encoding`` (request smuggling), bad
chunk sizes. Chunked bodies are decoded (``Transfer-Encoding`` is case-insensitive:
``Chunked`` is chunked), and ``Expect: 100-continue`` and keep-alive (HTTP/1.0 too) are
honoured.

Why llhttp rather than h11: the emulator carries the benchmarks, and on this core h11
tripled the emulator's CPU per request (``tests/functional/test_emulator_speed.py::
test_server_cpu_per_request``, side by side on a loaded 2-core machine: ~190 µs with the
former hand-written parser, ~500 µs with h11 parsing and writing, ~260 µs with h11 parsing
only, ~190 µs with llhttp; parsing one botocore request costs ~80 µs in h11, ~4 µs in
llhttp). h11 stays the client parser of the callback sink, which runs in Lambda, where a
pure-Python wheel matters more than microseconds.

Each connection buffers at most one head (``max_head_bytes``) and one body
(``max_body_bytes``, 413 beyond); it stops reading while its request is with the app.
Its timeouts (idle, head, body) and the server's connection cap are enforced by
:class:`amlproxy.emulator.httpserve.Connections`, which sheds idle connections first.
TCP_NODELAY is set on every accepted socket.

One request at a time per connection (HTTP/1.1 ordering): requests pipelined behind it are
parsed and queued, answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httptools

from amlproxy.emulator.httpcore import App, Phase, Request, Response

if TYPE_CHECKING:
    from amlproxy.emulator.httpserve import Connections

log = logging.getLogger(__name__)

_PAUSE_AFTER = 64 * 1024  # bytes read while the app works, before reading stops
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Refused(Exception):
    """A parser callback refuses the request (answered with ``status``, then closed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests with llhttp, hand them to the app one at a
    time, write the answers."""

    def __init__(self, app: App, connections: Connections) -> None:
        self._app = app
        self._connections = connections
        self._limits = connections.limits
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._paused = False
        self._busy = False  # a request is with the app (or its answer is delayed)
        self._parsing: Phase | None = None  # HEAD or BODY of a request still arriving
        self._head_bytes = 0
        self._read_while_busy = 0
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._queue: deque[tuple[Request, bool]] = deque()  # pipelined, complete requests
        self._keep_alive = True  # of the request being answered
        self._head_only = False  # it is a HEAD request: no body in the answer
        self._failure: _Refused | None = None  # refuse once the answers due are out
        self.phase = Phase.IDLE
        self.expires_at = 0.0  # loop time at which the current phase times out

    # asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._connections.admit(self):
            self._enter(Phase.IDLE)
        else:
            self.refuse(503, "the server has too many connections")

    def data_received(self, data: bytes) -> None:
        if self._failure is not None or self._closed:
            return
        if self._busy:
            self._read_while_busy += len(data)
            if self._read_while_busy > _PAUSE_AFTER and self._transport is not None:
                self._transport.pause_reading()  # resumed when the answer is out
                self._paused = True
        elif self.phase is Phase.IDLE:
            self._enter(Phase.HEAD)
        try:
            self._parser.feed_data(data)
        except _Refused as refusal:
            self._fail(refusal)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, _Refused):
                raise
            self._fail(cause)
        except httptools.HttpParserUpgrade:
            self._fail(_Refused(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._fail(_Refused(400, f"malformed request: {exc}"))
        else:
            if self._parsing is Phase.HEAD:
                self._head_bytes += len(data)
                if self._head_bytes > self._limits.max_head_bytes:
                    self._fail(_Refused(431, "the request head is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._connections.forget(self)

    # llhttp callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._parsing = Phase.HEAD
        self._head_bytes = 0
        self._url = b""
        self._headers = {}

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self._parsing = Phase.BODY
        length = self._headers.get("content-length")
        if length is not None and int(length) > self._limits.max_body_bytes:
            raise _Refused(413, "the request body is too large")
        if not self._busy:
            self._enter(Phase.BODY)
            if self._headers.get("expect", "").lower() == "100-continue":
                self._write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._limits.max_body_bytes:
            raise _Refused(413, "the request body is too large")

    def on_message_complete(self) -> None:
        self._parsing = None
        path, _, query = self._url.decode("latin-1").partition("?")
        if "%" in path:
            path = unquote(path)
        method = self._parser.get_method().decode("latin-1")
        request = Request(method, path, query, self._headers, bytes(self._body))
        self._body = bytearray()
        self._queue.append((request, self._parser.should_keep_alive()))
        if not self._busy:
            self._dispatch()

    # ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close now, abandoning any pending delayed answer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None and not self._closed:
            self._closed = True
            self._connections.forget(self)
            self._transport.close()

    def refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` (the server's own error reply) and close."""
        self._write(self._connections.error_reply(status, reason).encode(close=True))
        self.close()

    def _fail(self, refusal: _Refused) -> None:
        """Refuse now, or once the answers to the requests before the bad one are out (and
        stop reading meanwhile: nothing after the bad request will be used)."""
        if self._busy or self._queue:
            self._failure = refusal
            if not self._paused and self._transport is not None:
                self._transport.pause_reading()
                self._paused = True
        else:
            self.refuse(refusal.status, refusal.reason)

    def _enter(self, phase: Phase) -> None:
        was, self.phase = self.phase, phase
        self._connections.moved(self, was, phase)

    def _dispatch(self) -> None:
        request, self._keep_alive = self._queue.popleft()
        self._head_only = request.method == "HEAD"
        self._busy = True
        self._enter(Phase.BUSY)
        try:
            response = self._app(request)
        except Exception:  # the app must never kill the connection loop
            log.exception("app failed on %s %s", request.method, request.path)
            response = Response(500, b'{"message":"internal error"}')
        if isinstance(response, asyncio.Future):
            response.add_done_callback(self._resolved)
        else:
            self._answer(response)

    def _resolved(self, done: asyncio.Future[Response]) -> None:
        if done.cancelled() or done.exception() is not None:
            if not done.cancelled():
                log.error("app failed", exc_info=done.exception())
            response = Response(500, b'{"message":"internal error"}')
        else:
            response = done.result()
        self._answer(response)

    def _answer(self, response: Response) -> None:
        if response.delay_s > 0 or response.drop:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(response.delay_s, self._deliver, response)
        else:
            self._deliver(response)

    def _deliver(self, response: Response) -> None:
        self._timer = None
        if self._closed:
            return
        if response.drop:
            self.close()
            return
        close = not self._keep_alive
        self._write(response.encode(close=close, head_only=self._head_only))
        if close:
            self.close()
            return
        self._busy = False
        self._read_while_busy = 0
        if self._queue:
            self._dispatch()
            return
        if self._failure is not None:
            self.refuse(self._failure.status, self._failure.reason)
            return
        self._enter(self._parsing or Phase.IDLE)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
