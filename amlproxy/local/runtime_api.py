"""Lambda's Runtime API (version 2018-06-01), served to one worker process.

Each worker gets its own server on a free port of 127.0.0.1, as each Lambda execution
environment has its own Runtime API endpoint (``AWS_LAMBDA_RUNTIME_API``):

=====================================================  ==================================
``GET  /2018-06-01/runtime/invocation/next``           blocks until an invocation is
                                                       handed over; 200, the event as the
                                                       body, and the ``Lambda-Runtime-*``
                                                       headers
``POST /2018-06-01/runtime/invocation/{id}/response``  202; the function's result
``POST /2018-06-01/runtime/invocation/{id}/error``     202; its error (errorType in the
                                                       ``Lambda-Runtime-Function-Error-Type``
                                                       header and the body)
``POST /2018-06-01/runtime/init/error``                202; the init phase failed
=====================================================  ==================================

The first ``next`` ends the init phase. A response larger than 6 MB is refused with 413
and the invocation fails with ``Function.ResponseSizeTooLarge``, as Lambda does. The
worker (:mod:`amlproxy.local.workers`) hands invocations over with :meth:`RuntimeApi.dispatch`
and waits on :attr:`Invocation.done`; it completes them itself on a kill or a crash.

http.server rather than the emulator's asyncio core: a worker's ``next`` is a long poll
that holds a thread anyway, and each server has one client.
"""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import orjson

API_VERSION = "2018-06-01"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # Lambda's 6,291,556-byte synchronous payload
_INVOCATION_PATH = re.compile(rf"/{API_VERSION}/runtime/invocation/([^/]+)/(response|error)")

OutcomeKind = Literal["ok", "error", "timeout", "crash", "init_error", "throttled"]


@dataclass(frozen=True)
class Outcome:
    """How an invocation ended: the payload the invoker gets, and why.

    ``ok``: the function's response. ``error``: its error document (``errorType``,
    ``errorMessage``...). ``timeout``/``crash``: the worker was killed at the deadline /
    died. ``init_error``: the init phase failed. ``throttled``: no concurrency was left.
    """

    kind: OutcomeKind
    payload: bytes
    error_type: str | None = None
    duration_ms: float = 0.0
    worker: int | None = None  # the worker that ran it
    started: float = 0.0  # monotonic

    @property
    def failed(self) -> bool:
        return self.kind != "ok"

    def json(self) -> Any:
        """The payload parsed as JSON (None when it is not JSON)."""
        try:
            return orjson.loads(self.payload)
        except orjson.JSONDecodeError:
            return None


def error_outcome(kind: OutcomeKind, error_type: str, message: str,
                  duration_ms: float = 0.0) -> Outcome:
    """An outcome whose payload is Lambda's error document."""
    payload = orjson.dumps({"errorType": error_type, "errorMessage": message})
    return Outcome(kind, payload, error_type, duration_ms)


@dataclass
class Invocation:
    """One invocation handed to a worker, with the headers Lambda sends for it."""

    request_id: str
    payload: bytes
    function_arn: str
    deadline_ms: int  # epoch milliseconds
    trace_id: str
    client_context: str | None = None  # JSON, as Lambda passes it to the runtime
    cognito_identity: str | None = None
    started: float = field(default_factory=time.perf_counter)
    fetched: bool = False  # the runtime's `next` returned it
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def complete(self, outcome: Outcome) -> bool:
        """Record how it ended; the first outcome wins (a response racing a kill)."""
        with self._lock:
            if self.outcome is not None:
                return False
            elapsed = (time.perf_counter() - self.started) * 1000.0
            self.outcome = Outcome(outcome.kind, outcome.payload, outcome.error_type,
                                   outcome.duration_ms or elapsed)
        self.done.set()
        return True

    def headers(self) -> list[tuple[str, str]]:
        found = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        if self.client_context:
            found.append(("Lambda-Runtime-Client-Context", self.client_context))
        if self.cognito_identity:
            found.append(("Lambda-Runtime-Cognito-Identity", self.cognito_identity))
        return found


class RuntimeApi:
    """The Runtime API of one worker: a server thread and the worker's state."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._pending: queue.Queue[Invocation | None] = queue.Queue()
        self.current: Invocation | None = None
        self.ready = threading.Event()  # the runtime asked for its first invocation
        self.init_error: bytes | None = None
        self.changed = threading.Event()  # ready, init error, or the process exited
        self.closed = False
        self._server = _Server((host, 0), _Handler)
        self._server.api = self
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name=f"runtime-api-{self.address}", daemon=True)
        self._thread.start()

    def dispatch(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime's (pending or next) ``next`` call."""
        self.current = invocation
        self._pending.put(invocation)

    def next_invocation(self) -> Invocation | None:
        """Blocks until an invocation is dispatched; None once closed."""
        self.ready.set()
        self.changed.set()
        if self.closed:
            return None
        invocation = self._pending.get()
        if invocation is not None:
            invocation.fetched = True
        return invocation

    def post_init_error(self, body: bytes) -> None:
        self.init_error = body
        self.changed.set()

    def close(self) -> None:
        """Stop serving (without waiting: the serve loop ends within 0.1 s)."""
        if self.closed:
            return
        self.closed = True
        self._pending.put(None)
        self.changed.set()
        threading.Thread(target=self._shutdown, daemon=True).start()

    def _shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: RuntimeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A worker killed mid-request resets its connection: not worth a traceback."""

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the service logs what matters."""

    def do_GET(self) -> None:
        if self.path != f"/{API_VERSION}/runtime/invocation/next":
            self._reply(404, _error("UnknownEndpoint", f"no such endpoint: GET {self.path}"))
            return
        invocation = self.server.api.next_invocation()
        if invocation is None:  # the worker is being stopped
            self._reply(500, _error("ServiceStopped", "the local service is stopping"))
            self.close_connection = True
            return
        self._reply(200, invocation.payload, [("Content-Type", "application/json"),
                                              *invocation.headers()])

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api = self.server.api
        if self.path == f"/{API_VERSION}/runtime/init/error":
            api.post_init_error(body)
            self._reply(202, b'{"status":"OK"}')
            return
        match = _INVOCATION_PATH.fullmatch(self.path)
        if match is None:
            self._reply(404, _error("UnknownEndpoint", f"no such endpoint: POST {self.path}"))
            return
        request_id, what = match.groups()
        current = api.current
        if current is None or current.request_id != request_id:
            self._reply(400, _error("InvalidRequestID", f"no invocation {request_id}"))
            return
        if current.outcome is not None:
            self._reply(403, _error("InvalidStateTransition", "already answered"))
            return
        self._reply(*self._complete(current, what, body))

    def _complete(self, current: Invocation, what: str, body: bytes) -> tuple[int, bytes]:
        if what == "error":
            error_type = (self.headers.get("Lambda-Runtime-Function-Error-Type")
                          or error_type_of(body) or "Unhandled")
            current.complete(Outcome("error", body, error_type))
            return 202, b'{"status":"OK"}'
        if len(body) > MAX_RESPONSE_BYTES:
            current.complete(error_outcome(
                "error", "Function.ResponseSizeTooLarge", "Response payload size exceeded "
                f"maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."))
            return 413, _error("RequestEntityTooLarge", "Exceeded maximum allowed payload "
                               f"size ({MAX_RESPONSE_BYTES} bytes).")
        current.complete(Outcome("ok", body))
        return 202, b'{"status":"OK"}'

    def _reply(self, status: int, body: bytes,
               headers: list[tuple[str, str]] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        given = headers or [("Content-Type", "application/json")]
        lines += [f"{name}: {value}" for name, value in given]
        lines.append(f"Content-Length: {len(body)}")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def error_type_of(body: bytes) -> str | None:
    """The ``errorType`` of an error document (awslambdaric's C client sends no header)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return str(doc["errorType"]) if isinstance(doc, dict) and doc.get("errorType") else None


def _error(error_type: str, message: str) -> bytes:
    return orjson.dumps({"errorMessage": message, "errorType": error_type})
