"""The trace headers an event carries in, picked out for the tracer (pure: imports no
tracer, so that the triggers call it whatever ``AMLPROXY_TRACING`` says).

- API requests: ``traceparent`` / ``tracestate`` (W3C), and ``X-Amzn-Trace-Id`` (API
  Gateway adds it when its own tracing is on): :func:`http_carrier`;
- SQS messages: the ``AWSTraceHeader`` system attribute (X-Ray format), which SQS sets
  from the sender's trace: :func:`sqs_carriers`.

Lambda's own ``_X_AMZN_TRACE_ID`` is read by the tracer itself, as the fallback parent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from amlproxy.observability.tracing import Carrier

XRAY_HEADER = "X-Amzn-Trace-Id"
_HTTP_NAMES = {"traceparent": "traceparent", "tracestate": "tracestate",
               "x-amzn-trace-id": XRAY_HEADER}
MAX_HEADER_CHARS = 1024  # longer values are not trace headers; they are not parsed


def http_carrier(headers: Any) -> Carrier | None:
    """The trace headers of an HTTP event's ``headers`` (any case), or None."""
    if not isinstance(headers, Mapping):
        return None
    found = {}
    for key, value in headers.items():
        name = _HTTP_NAMES.get(str(key).lower())
        if name is not None and isinstance(value, str) and len(value) <= MAX_HEADER_CHARS:
            found[name] = value
    return found or None


def xray_root(header: str) -> str | None:
    """The ``Root=`` trace id of an X-Ray trace header, or None."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


def sqs_carriers(records: Iterable[Any]) -> tuple[Carrier | None, list[Carrier]]:
    """``(parent, links)`` of an SQS batch from its messages' ``AWSTraceHeader``.

    Each message's header becomes a link of the invocation's span (OpenTelemetry's
    messaging conventions for a batch). When every header names the same trace (one
    message, or messages sent within one traced request), the first is also the parent,
    so the processing continues the sender's trace; otherwise the parent is Lambda's.
    """
    links: list[Carrier] = []
    roots = set()
    for record in records:
        if not isinstance(record, Mapping):
            continue
        attributes = record.get("attributes")
        header = attributes.get("AWSTraceHeader") if isinstance(attributes, Mapping) else None
        if not isinstance(header, str) or len(header) > MAX_HEADER_CHARS:
            continue
        root = xray_root(header)
        if root is None:
            continue
        roots.add(root)
        links.append({XRAY_HEADER: header})
    parent = links[0] if len(roots) == 1 else None
    return parent, links
