"""Structured logs: one JSON object per line, carrying the Lambda request id.

A small formatter on stdlib :mod:`logging` (Powertools' Logger would add ~10-20 ms to a
cold start and a dependency for the same result). Every line has ``timestamp``,
``level``, ``logger``, ``message``, the invocation fields set by :func:`set_log_context`
(``request_id``, ``function``, ``trigger``, ``cold_start``...), the ``extra={...}`` fields of
the call, and ``exception`` when there is one.

The invocation fields are process-wide, not per thread: a Lambda process serves one
invocation at a time, and the pipeline's worker threads must log the same request id.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

_context: dict[str, Any] = {}
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def set_log_context(**fields: Any) -> None:
    """Replace the invocation fields every log line carries (None values are dropped)."""
    _context.clear()
    _context.update({k: v for k, v in fields.items() if v is not None})


def log_context() -> dict[str, Any]:
    """A copy of the current invocation fields."""
    return dict(_context)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        doc: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
            + f".{int(created % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception_type"] = getattr(record.exc_info[0], "__name__", None)
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Set up JSON logging for a Lambda function; harmless outside Lambda.

    Inside Lambda the runtime's handlers on the root logger get :class:`JsonFormatter`
    (unless the function already uses Lambda's own JSON log format,
    ``AWS_LAMBDA_LOG_FORMAT=JSON``); outside Lambda the root logger is left to the
    application. Either way the ``amlproxy`` loggers log at ``level``.
    """
    logging.getLogger("amlproxy").setLevel(level)
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    if os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
