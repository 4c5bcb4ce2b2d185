"""The local API: HTTP requests -> API Gateway HTTP API (payload 2.0) events -> the API
function, invoked synchronously on the local Lambda service -> HTTP responses.

It runs on the emulator's asyncio HTTP/1.1 core (llhttp's parser, keep-alive, TCP_NODELAY,
many connections on one event loop, with idle, head and body timeouts, a body cap and a
connection cap: :class:`~amlproxy.emulator.httpserve.HttpLimits`); each invocation waits
for its worker on a thread pool and the connection answers when it is done. ``GET /``
(and ``/playground``) serves the playground page instead of invoking the function, as a
separate static route would.

What API Gateway answers when the function does not: 500 ``Internal Server Error`` for a
function error, a crash or an init error; 504 ``Endpoint request timed out`` when the
function was killed at its timeout; 429 ``Too Many Requests`` when no worker came free
(the local API waits for one as long as the function's timeout, where API Gateway would
answer 429 at once).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from amlproxy.core.schema import Schema
from amlproxy.emulator.httpcore import App, Request, Response
from amlproxy.emulator.httpserve import HttpLimits, HttpServer
from amlproxy.local.events import http_api_event
from amlproxy.local.playground import playground_page
from amlproxy.local.runtime_api import Outcome

log = logging.getLogger("amlproxy.local")
PLAYGROUND_PATHS = ("/", "/playground")
Invoker = Callable[[dict[str, Any]], Outcome]  # a synchronous invocation of the function
_JSON = [("Content-Type", "application/json")]
_GATEWAY_ANSWERS = {
    "timeout": Response(504, b'{"message":"Endpoint request timed out"}', _JSON),
    "throttled": Response(429, b'{"message":"Too Many Requests"}', _JSON),
}
_INTERNAL_ERROR = Response(500, b'{"message":"Internal Server Error"}', _JSON)


class LocalApi:
    """The HTTP app: routes ``GET /`` to the playground, the rest to the API function."""

    def __init__(self, invoke: Invoker, pool: ThreadPoolExecutor, schema: Schema,
                 example: Mapping[str, Any] | None = None) -> None:
        self.invoke_function = invoke
        self.pool = pool
        self._page = Response(200, playground_page(schema, example), [("Content-Type",
                                                        "text/html; charset=utf-8")])

    def __call__(self, request: Request) -> Response | asyncio.Future[Response]:
        if request.method == "GET" and request.path in PLAYGROUND_PATHS:
            return self._page
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.pool, self.invoke, request)

    def invoke(self, request: Request) -> Response:
        """One synchronous invocation of the API function (on a pool thread)."""
        outcome = self.invoke_function(http_api_event(request))
        if outcome.failed:
            log.warning("the API function failed on %s %s: %s %s", request.method,
                        request.path, outcome.kind, outcome.payload[:500])
            return _GATEWAY_ANSWERS.get(outcome.kind, _INTERNAL_ERROR)
        return http_response(outcome.json())


def http_response(result: Any) -> Response:
    """The HTTP answer API Gateway makes of a payload 2.0 function result."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # HTTP API infers a 200 JSON answer from anything else
        return Response(200, orjson.dumps(result), [("Content-Type", "application/json")])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()
               if str(k).lower() not in ("content-length", "connection")]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or ())
    return Response(int(result["statusCode"]), raw, headers)


def api_limits(max_body_bytes: int = 1_048_576) -> HttpLimits:
    """The local API's limits: the defaults, and the API's body cap
    (``AMLPROXY_API_MAX_BODY_BYTES``) as the most a connection buffers."""
    return HttpLimits(max_body_bytes=max_body_bytes)


class ApiServerThread:
    """The local API on its own event loop thread; :meth:`stop` closes it.

    ``limits`` (:func:`api_limits` by default: a 1 MiB body cap) bound what clients can
    hold; the server's own refusals are API Gateway's ``{"message": ...}`` answers.
    """

    def __init__(self, app: App, host: str, port: int,
                 limits: HttpLimits | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.http = HttpServer(app, limits or api_limits())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="amlproxy-local-api",
                                        daemon=True)
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the local API did not start")
        if self._failure is not None:
            raise self._failure
        return self.url

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self.port = loop.run_until_complete(self.http.start(self.host, self.port))
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.http.close())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
