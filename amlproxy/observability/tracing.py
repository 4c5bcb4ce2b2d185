"""The tracing interface, and the tracer that does nothing.

A :class:`Tracer` opens named spans ("subsegments" in X-Ray's words) as context managers::

    with tracer.subsegment("sagemaker endpoint", backend="sagemaker", records=500) as span:
        span.annotate("attempts", 2)
        ...

The interface is deliberately the common ground of X-Ray and OpenTelemetry, so that the
X-Ray SDK (end of support: February 2027) can be replaced without touching the callers:

============================  =============================================================
this interface                OpenTelemetry
============================  =============================================================
``subsegment(name, **a)``     ``tracer.start_as_current_span(name, attributes=a)``
``Span.annotate(k, v)``       ``span.set_attribute(k, v)``
an exception leaving the      ``span.record_exception(exc)`` and
``with`` block                ``span.set_status(StatusCode.ERROR)`` (done by OTel itself)
============================  =============================================================

Annotation values are ``str``, ``int``, ``float`` or ``bool`` (both systems index them).
Spans may be opened on worker threads; an implementation must not assume one thread.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol

log = logging.getLogger(__name__)

AnnotationValue = str | int | float | bool


class Span(Protocol):
    """An open span: the code inside it can add annotations."""

    def annotate(self, key: str, value: AnnotationValue) -> None: ...


class Tracer(Protocol):
    """Opens spans around units of work (an endpoint call, a sink write).

    ``subsegment`` returns a context manager; an exception raised inside it is recorded on
    the span as a fault and propagates unchanged.
    """

    name: str

    def subsegment(self, name: str, **annotations: AnnotationValue) -> AbstractContextManager[Span]:
        ...


class _NoopSpan(AbstractContextManager["_NoopSpan"]):
    """One shared, stateless span: entering and leaving it costs two method calls."""

    __slots__ = ()

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def annotate(self, key: str, value: AnnotationValue) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class NoopTracer:
    """A :class:`Tracer` that records nothing (tracing off, or not in Lambda)."""

    name = "off"

    def subsegment(self, name: str, **annotations: AnnotationValue) -> AbstractContextManager[Span]:
        return _NOOP_SPAN


def xray_available() -> bool:
    """Whether X-Ray can work here: inside Lambda, with a trace header set by the runtime."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("_X_AMZN_TRACE_ID"))


def make_tracer(mode: str) -> Tracer:
    """The tracer for ``mode`` (``AMLPROXY_TRACING``): X-Ray only when ``mode == "xray"``
    AND running in Lambda; the X-Ray SDK is imported only then (it is slow to import)."""
    if mode == "xray":
        if xray_available():
            from amlproxy.observability.xray import XRayTracer

            return XRayTracer()
        log.info("AMLPROXY_TRACING=xray ignored: not running in Lambda with a trace header")
    return NoopTracer()
