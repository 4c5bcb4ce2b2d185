"""The tracing interface, the tracer that does nothing, and the choice of a tracer.

A :class:`Tracer` opens named spans ("subsegments" in X-Ray's words) as context managers::

    with tracer.invocation("amlproxy s3", carrier=None, kind="consumer", trigger="s3"):
        with tracer.subsegment("sagemaker endpoint", backend="sagemaker", records=500) as span:
            span.annotate("attempts", 2)

The interface is the common ground of OpenTelemetry and X-Ray:

============================  =============================================================
this interface                OpenTelemetry (:mod:`~amlproxy.observability.otel`)
============================  =============================================================
``invocation(name, ...)``     a span whose parent is the span already open (a wrapper such
                              as the ADOT layer's), else the incoming ``carrier``
                              (``traceparent``, ``X-Amzn-Trace-Id``), else Lambda's
                              ``_X_AMZN_TRACE_ID``
``subsegment(name, **a)``     ``tracer.start_as_current_span(name, attributes=a)``;
                              ``links``: carriers of other traces (SQS messages)
``Span.annotate(k, v)``       ``span.set_attribute(k, v)``
``Span.fail(reason)``         ``span.set_status(StatusCode.ERROR, reason)``
an exception leaving the      ``span.record_exception(exc)`` and
``with`` block                ``span.set_status(StatusCode.ERROR)``
``inject(headers)``           the W3C ``traceparent`` of the current span
``instrument_client(c)``      a CLIENT span and the X-Ray header on each botocore call
``flush(timeout_s)``          ``force_flush`` of the provider amlproxy configured
============================  =============================================================

Annotation values are ``str``, ``int``, ``float`` or ``bool`` (both systems index them).
Spans may be opened on worker threads (the pipeline runs its work in a copy of the
submitting thread's :mod:`contextvars` context, so they nest under the invocation's span).

This module imports neither tracer's packages: with ``AMLPROXY_TRACING=off`` no
``opentelemetry`` nor ``aws_xray_sdk`` module is loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal, Protocol

from amlproxy.errors import ConfigurationError

log = logging.getLogger(__name__)

AnnotationValue = str | int | float | bool
Carrier = Mapping[str, str]
"""Trace headers of an incoming request or message: ``traceparent`` (and ``tracestate``),
or ``X-Amzn-Trace-Id`` (X-Ray's format), with those exact names."""
SpanKindName = Literal["server", "consumer", "internal"]


class Span(Protocol):
    """An open span: the code inside it can add annotations, or mark it failed."""

    def annotate(self, key: str, value: AnnotationValue) -> None: ...

    def fail(self, reason: str) -> None:
        """Mark the span as an error when no exception leaves it (an object that could not
        be read, reported in a summary rather than raised)."""
        ...


class Tracer(Protocol):
    """Opens spans around units of work (an invocation, an input, an endpoint call, a sink
    write) and carries the trace context in and out of the process.

    ``subsegment`` and ``invocation`` return context managers; an exception raised inside
    one is recorded on the span (ERROR status and an exception event) and propagates
    unchanged.
    """

    name: str

    def invocation(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        kind: SpanKindName = "internal",
        **annotations: AnnotationValue,
    ) -> AbstractContextManager[Span]: ...

    def subsegment(
        self, name: str, *, links: Sequence[Carrier] = (), **annotations: AnnotationValue
    ) -> AbstractContextManager[Span]: ...

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Add the current span's context to outgoing HTTP headers (a callback delivery)."""
        ...

    def instrument_client(self, client: Any) -> None:
        """Trace the calls of a botocore client and carry the context on its requests."""
        ...

    def flush(self, timeout_s: float | None = None) -> None:
        """Export what was recorded (the end of an invocation: Lambda may freeze next)."""
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

    def fail(self, reason: str) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class NoopTracer:
    """A :class:`Tracer` that records nothing (tracing off, or X-Ray outside Lambda)."""

    name = "off"

    def invocation(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        kind: SpanKindName = "internal",
        **annotations: AnnotationValue,
    ) -> AbstractContextManager[Span]:
        return _NOOP_SPAN

    def subsegment(
        self, name: str, *, links: Sequence[Carrier] = (), **annotations: AnnotationValue
    ) -> AbstractContextManager[Span]:
        return _NOOP_SPAN

    def inject(self, headers: MutableMapping[str, str]) -> None:
        return None

    def instrument_client(self, client: Any) -> None:
        return None

    def flush(self, timeout_s: float | None = None) -> None:
        return None


def records_nothing(tracer: Tracer) -> bool:
    """Whether ``tracer`` is the no-op tracer (exactly: not a subclass, which may record):
    its callers may then skip building what its spans would be given."""
    return type(tracer) is NoopTracer


def xray_available() -> bool:
    """Whether X-Ray can work here: inside Lambda, with a trace header set by the runtime."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("_X_AMZN_TRACE_ID"))


def make_tracer(mode: str) -> Tracer:
    """The tracer for ``mode`` (``AMLPROXY_TRACING``), built at cold start.

    - ``otel``: :class:`~amlproxy.observability.otel.OtelTracer` on the process's tracer
      provider (configured from the ``OTEL_*`` variables when nothing else did);
    - ``xray``: :class:`~amlproxy.observability.xray.XRayTracer`, inside Lambda only
      (elsewhere there is no daemon nor segment: the no-op tracer, and a log line);
    - ``off``: :class:`NoopTracer`.

    A tracer's packages are imported only when it is chosen. A missing package is a
    :class:`ConfigurationError` (an init error in Lambda), naming what to install.
    """
    if mode == "otel":
        try:
            from amlproxy.observability.otel import OtelTracer
        except ImportError as exc:
            raise ConfigurationError(
                f"AMLPROXY_TRACING=otel needs opentelemetry-api ({exc}): install "
                "amlproxy[otel], or add the ADOT Lambda layer"
            ) from exc
        return OtelTracer.from_environment()
    if mode == "xray":
        if not xray_available():
            log.info("AMLPROXY_TRACING=xray ignored: not running in Lambda with a trace header")
            return NoopTracer()
        try:
            from amlproxy.observability.xray import XRayTracer
        except ImportError as exc:
            raise ConfigurationError(
                f"AMLPROXY_TRACING=xray needs the X-Ray SDK ({exc}): stage the function "
                "with the xray extra (AMLPROXY_EXTRAS=xray sam/stage_function.sh), or move "
                "to AMLPROXY_TRACING=otel (docs/observability.md)"
            ) from exc
        return XRayTracer()
    return NoopTracer()
