"""Lambda's ``Invoke`` API over HTTP, so that real clients drive the local functions:

    boto3.client("lambda", endpoint_url=stack.endpoints["lambda"]).invoke(
        FunctionName="ApiFunction", Payload=b"{...}")
    aws lambda invoke --endpoint-url http://127.0.0.1:PORT --function-name S3Function out.json

``POST /2015-03-31/functions/{FunctionName}/invocations`` with ``X-Amz-Invocation-Type``:
``RequestResponse`` (200, the function's answer; ``X-Amz-Function-Error: Unhandled`` when
it failed, timed out or crashed; ``X-Amz-Log-Result`` with the last 4 KB of its log
records for ``X-Amz-Log-Type: Tail``), ``Event`` (202; queued with Lambda's retries and
OnFailure) or ``DryRun`` (204). ``X-Amz-Client-Context`` (base64 JSON) reaches the
handler's ``context.client_context``. Errors as Lambda's REST-JSON: 404
``ResourceNotFoundException``, 413 ``RequestTooLargeException``, 429
``TooManyRequestsException`` (the function's reserved concurrency is in use).

``GET /local/status`` answers the service's status (``amlproxy local status``).
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from amlproxy.errors import ConfigurationError
from amlproxy.local.pool import function_arn
from amlproxy.local.service import LambdaService

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"


class InvokeApi:
    """The Invoke API of ``service`` on ``host:port`` (0: a free port), on its own threads."""

    def __init__(self, service: LambdaService, host: str, port: int,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.service = service
        self.status = status or service.status
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.invoke_api = self  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="amlproxy-local-lambda")

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    @property
    def api(self) -> InvokeApi:
        return self.server.invoke_api  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/local/status":
            self._send(200, orjson.dumps(self.api.status(), default=str))
        else:
            self._error(404, "UnknownOperationException", f"no such route: GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b"{}"
        path = self.path.split("?")[0]
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            self._error(404, "UnknownOperationException", f"no such route: POST {path}")
            return
        name = _function_name(path[len(_PREFIX):-len(_SUFFIX)])
        try:
            pool = self.api.service.pool(name)
        except ConfigurationError:
            self._error(404, "ResourceNotFoundException",
                        f"Function not found: {function_arn(name)}")
            return
        kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        request_id = str(uuid.uuid4())
        if kind == "DryRun":
            self._send(204, b"", [("x-amzn-RequestId", request_id)])
        elif kind == "Event":
            request_id = self.api.service.invoke_async(pool.spec.name, payload)
            self._send(202, b"", [("x-amzn-RequestId", request_id)])
        elif kind != "RequestResponse":
            self._error(400, "InvalidParameterValueException",
                        f"invalid X-Amz-Invocation-Type {kind!r}")
        elif len(payload) > MAX_SYNC_PAYLOAD:
            self._error(413, "RequestTooLargeException",
                        f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the "
                        "InvokeFunction operation")
        else:
            self._invoke(pool.spec.name, payload, request_id)

    def _invoke(self, name: str, payload: bytes, request_id: str) -> None:
        context = self.headers.get("X-Amz-Client-Context")
        try:
            client_context = base64.b64decode(context).decode() if context else None
        except ValueError:
            self._error(400, "InvalidRequestContentException", "bad X-Amz-Client-Context")
            return
        outcome = self.api.service.invoke(name, payload, wait_s=0, request_id=request_id,
                                          client_context=client_context)
        if outcome.kind == "throttled":
            self._error(429, "TooManyRequestsException", "Rate Exceeded.",
                        Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        headers = [("x-amzn-RequestId", request_id), ("X-Amz-Executed-Version", "$LATEST")]
        if outcome.failed:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        if (self.headers.get("X-Amz-Log-Type") or "").lower() == "tail":
            headers.append(("X-Amz-Log-Result", base64.b64encode(
                self._tail(name, outcome.worker, outcome.started)).decode()))
        self._send(200, outcome.payload, headers)

    def _tail(self, name: str, worker: int | None, started: float) -> bytes:
        """The last 4 KB of what the worker logged during the invocation."""
        if worker is None:
            return b""
        time.sleep(0.05)  # the log readers may trail the answer by a moment
        records = self.api.service.logs.of_worker(name, worker, started)
        return ("".join(r.text.rstrip("\n") + "\n" for r in records)).encode()[-4096:]

    def _error(self, status: int, error_type: str, message: str, **extra: str) -> None:
        body = orjson.dumps({"Type": "User", "message": message, **extra})
        self._send(status, body, [("x-amzn-ErrorType", error_type)])

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers or ():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _function_name(given: str) -> str:
    """``Name``, ``Name:qualifier`` or an ARN (``arn:aws:lambda:...:function:Name[:q]``)."""
    from urllib.parse import unquote

    given = unquote(given)
    if given.startswith("arn:"):
        parts = given.split(":")
        return parts[6] if len(parts) > 6 else given
    return given.split(":")[0]
