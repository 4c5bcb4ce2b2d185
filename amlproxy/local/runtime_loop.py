"""A small pure-Python Lambda runtime client: ``python -m amlproxy.local.runtime_loop HANDLER``.

awslambdaric publishes Linux wheels only; on other platforms the local service runs its
workers on this loop, which speaks the same Runtime API (2018-06-01) with the same
conventions as awslambdaric:

- init: imports ``module.function``; a failure is posted to ``/runtime/init/error``
  (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``,
  ``Runtime.MalformedHandlerName``, ``Runtime.UserCodeSyntaxError``, or the exception's
  type) and the process exits 1;
- invocations: ``next``, the handler with a context (``aws_request_id``,
  ``invoked_function_arn``, ``get_remaining_time_in_millis()``...), ``_X_AMZN_TRACE_ID``
  set from the trace header, then ``/response`` or ``/error``;
- logs: the root logger gets one handler, formatted as Lambda's Text format
  (``[LEVEL]\\tTIMESTAMP\\tREQUEST_ID\\tMESSAGE``) or JSON format (``timestamp``, ``level``,
  ``message``, ``logger``, ``requestId`` and the record's extra attributes), per
  ``AWS_LAMBDA_LOG_FORMAT``, at ``AWS_LAMBDA_LOG_LEVEL``; written to stdout, or as frames
  to ``_LAMBDA_TELEMETRY_LOG_FD`` (see :mod:`amlproxy.local.worker_logs`).

It is not a copy of awslambdaric: it has no SnapStart hooks, no multi-concurrency mode,
no C extension. Tests run it on Linux beside awslambdaric.
"""

from __future__ import annotations

import http.client
import importlib
import json
import logging
import os
import struct
import sys
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any

API = "/2018-06-01/runtime"
_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "aws_request_id"}
_request_id = ""


class LambdaContext:
    """The context object a handler receives."""

    def __init__(self, headers: http.client.HTTPMessage) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        client_context = headers.get("Lambda-Runtime-Client-Context")
        identity = headers.get("Lambda-Runtime-Cognito-Identity")
        self.client_context = json.loads(client_context) if client_context else None
        self.identity = json.loads(identity) if identity else None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class TelemetryStream:
    """Writes each record as one frame (type, length, timestamp in µs, message)."""

    def __init__(self, fd: int, json_format: bool, with_level: bool) -> None:
        self.file: IO[bytes] = os.fdopen(fd, "wb", 0)
        self.base = 0xA55A0002 if json_format else 0xA55A0003
        self.with_level = with_level  # as awslambdaric: with JSON or a log level set

    def write(self, message: str, levelno: int = 0) -> None:
        data = message.encode("utf-8")
        level = min(50, max(0, levelno)) // 10 if self.with_level else 0
        frame_type = self.base + 4 * (level + 1) if level else self.base
        header = struct.pack(">IIQ", frame_type, len(data), time.time_ns() // 1000)
        self.file.write(header + data)


class _Handler(logging.Handler):
    def __init__(self, telemetry: TelemetryStream | None) -> None:
        super().__init__()
        self.telemetry = telemetry

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if self.telemetry is not None:
            self.telemetry.write(text, record.levelno)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()


class JsonFormatter(logging.Formatter):
    """Lambda's JSON log format: one object per record, its extra attributes included."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None) or None,
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["errorType"] = record.exc_info[0].__name__
            doc["errorMessage"] = str(record.exc_info[1])
            doc["stackTrace"] = traceback.format_tb(record.exc_info[2])
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in doc and not key.startswith("_"):
                doc[key] = value
        return json.dumps({k: v for k, v in doc.items() if v is not None},
                          default=str, ensure_ascii=False) + "\n"


def _add_request_id(record: logging.LogRecord) -> bool:
    record.aws_request_id = _request_id
    return True


def setup_logging() -> TelemetryStream | None:
    """The root handler, its format and level, and the output (telemetry fd or stdout)."""
    json_format = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    fd = os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    given_level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    telemetry = TelemetryStream(int(fd), json_format, json_format or bool(given_level)) \
        if fd else None
    handler = _Handler(telemetry)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    logging.Formatter.converter = time.gmtime
    handler.addFilter(_add_request_id)
    root = logging.getLogger()
    root.addHandler(handler)
    level = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(given_level,
                                                                          given_level)
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)
    return telemetry


class RuntimeApiClient:
    """The Runtime API over one keep-alive connection."""

    def __init__(self, address: str) -> None:
        self.connection = http.client.HTTPConnection(address)

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[bytes, http.client.HTTPMessage]:
        self.connection.request(method, API + path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data!r}")
        return data, response.headers


def load_handler(name: str) -> Callable[[Any, Any], Any]:
    """The handler function; raises :class:`_InitError` with Lambda's error type."""
    module_name, _, function = name.rpartition(".")
    if not module_name:
        raise _InitError("Runtime.MalformedHandlerName",
                         f"Bad handler '{name}': not module.function")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _InitError("Runtime.ImportModuleError",
                         f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        raise _InitError("Runtime.UserCodeSyntaxError",
                         f"Syntax error in module '{module_name}': {exc}") from exc
    handler = getattr(module, function, None)
    if handler is None:
        raise _InitError("Runtime.HandlerNotFound",
                         f"Handler '{function}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def error_document(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and frames[0].filename == __file__:  # the user's frames, as awslambdaric
        frames.pop(0)
    return {"errorMessage": str(exc), "errorType": error_type or type(exc).__name__,
            "requestId": _request_id, "stackTrace": traceback.format_list(frames)}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def main(argv: list[str]) -> int:
    global _request_id
    sys.stdout.reconfigure(write_through=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(write_through=True)  # type: ignore[union-attr]
    client = RuntimeApiClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    setup_logging()
    try:
        handler = load_handler(argv[1])
    except Exception as exc:  # the init phase failed: tell Lambda, then exit
        kind = exc.error_type if isinstance(exc, _InitError) else type(exc).__name__
        document = error_document(exc, kind)
        logging.getLogger().error("init error: %s: %s", kind, exc)
        client.call("POST", "/init/error", json.dumps(document).encode(),
                    {"Lambda-Runtime-Function-Error-Type": kind})
        return 1
    while True:
        body, headers = client.call("GET", "/invocation/next")
        context = LambdaContext(headers)
        _request_id = context.aws_request_id
        trace = headers.get("Lambda-Runtime-Trace-Id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            result = json.dumps(handler(json.loads(body), context), default=_json_default)
        except Exception as exc:
            document = error_document(exc)
            logging.getLogger().error("[ERROR] %s: %s", document["errorType"], exc)
            client.call("POST", f"/invocation/{_request_id}/error",
                        json.dumps(document).encode(),
                        {"Lambda-Runtime-Function-Error-Type": document["errorType"]})
            continue
        client.call("POST", f"/invocation/{_request_id}/response", result.encode(),
                    {"Content-Type": "application/json"})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
