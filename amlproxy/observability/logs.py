"""Structured logs: one JSON object per line, carrying the Lambda request id, in both of
Lambda's log formats and on both of its outputs.

A small formatter on stdlib :mod:`logging` (Powertools' Logger would add ~10-20 ms to a
cold start and a dependency for the same result). Every line has ``timestamp``,
``level``, ``logger``, ``message``, the invocation fields set by :func:`set_log_context`
(``request_id``, ``function``, ``trigger``, ``cold_start``...), the ``extra={...}`` fields of
the call (None values left out, as Lambda's own formatter does), and ``exception`` when
there is one.

Under Lambda, :func:`configure_logging` works with the handler that the runtime interface
client (``awslambdaric``) puts on the root logger, whatever ``LoggingConfig`` chose:

- ``LogFormat: Text`` (``AWS_LAMBDA_LOG_FORMAT`` unset or ``Text``): the handler gets
  :class:`JsonFormatter`. awslambdaric's handler writes what its formatter returns as is
  (its own Text format ends in ``"\\n"``), to stdout or to the telemetry fd
  (``_LAMBDA_TELEMETRY_LOG_FD``, one frame per record), so the formatter ends each record
  with a newline itself: without it, on stdout (the Runtime Interface Emulator,
  ``sam local``), records and the EMF metrics line ran together on one line.
- ``LogFormat: JSON``: Lambda's own JSON formatter stays, and it keeps every attribute of
  a record; :class:`LogContextFilter` on the handler adds the invocation fields as record
  attributes, so they survive.

Either way :class:`LogContextFilter` also makes the ``extra`` values JSON-safe (Lambda's
formatter uses :mod:`json`, which fails on a set or a ``Path`` and writes ``NaN``).

The invocation fields are process-wide, not per thread: a Lambda process serves one
invocation at a time, and the pipeline's worker threads must log the same request id.
"""

from __future__ import annotations

import logging
import math
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
_SCALARS = (str, bool, type(None))


def set_log_context(**fields: Any) -> None:
    """Replace the invocation fields every log line carries (None values are dropped)."""
    _context.clear()
    for key, value in fields.items():
        if value is not None:
            _context[key] = value


def log_context() -> dict[str, Any]:
    """A copy of the current invocation fields."""
    return dict(_context)


def json_safe(value: Any) -> Any:
    """``value`` as JSON-native data (dicts, lists, strings, finite numbers, booleans,
    None); what JSON cannot hold becomes its ``str``."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int) and abs(value) < 2**63:
        return value
    try:  # orjson: NaN becomes null, unknown types their str, non-string keys strings
        return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


class LogContextFilter(logging.Filter):
    """Adds the invocation fields (:func:`set_log_context`) to every record as attributes
    (an attribute the record already has, from ``extra``, wins) and makes the record's own
    attributes JSON-safe. Put on a handler, it sees every record that handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__
        for key, value in _context.items():
            attributes.setdefault(key, value)
        for key, value in attributes.items():
            if key not in _STANDARD and not key.startswith("_"):
                safe = json_safe(value)
                if safe is not value:
                    attributes[key] = safe
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line (see the module docstring). ``terminator`` ends
    each record: ``"\\n"`` for a handler that writes the text as is (awslambdaric's), ""
    for a :class:`logging.StreamHandler`, which adds its own."""

    def __init__(self, *, terminator: str = "") -> None:
        super().__init__()
        self.terminator = terminator

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
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception_type"] = getattr(record.exc_info[0], "__name__", None)
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode() + self.terminator


def lambda_log_format() -> str:
    """``"JSON"`` or ``"Text"``: the function's ``LoggingConfig.LogFormat``."""
    return "JSON" if os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" else "Text"


def configure_logging(level: str | None = None) -> None:
    """Set up JSON logging for a Lambda function; harmless outside Lambda, and idempotent.

    Inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set) every handler of the root logger (the
    runtime's; a stdout handler when there is none) gets :class:`LogContextFilter`, and,
    unless the function uses Lambda's JSON log format, :class:`JsonFormatter`. Outside
    Lambda the root logger is left to the application. Either way the ``amlproxy`` loggers
    log at ``level`` when one is given.
    """
    if level is not None:
        logging.getLogger("amlproxy").setLevel(level)
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    own_format = lambda_log_format() == "Text"
    for handler in root.handlers:
        if not any(isinstance(f, LogContextFilter) for f in handler.filters):
            handler.addFilter(LogContextFilter())
        if own_format and not isinstance(handler.formatter, JsonFormatter):
            adds_newline = isinstance(handler, logging.StreamHandler) and (
                handler.terminator == "\n")
            handler.setFormatter(JsonFormatter(terminator="" if adds_newline else "\n"))
