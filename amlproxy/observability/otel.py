"""The OpenTelemetry implementation of :class:`~amlproxy.observability.tracing.Tracer`
(``AMLPROXY_TRACING=otel``), on ``opentelemetry-api`` only.

Spans go to the process's tracer provider: the one the ADOT Lambda layer (or
``opentelemetry-instrument``) configured, else the one
:func:`~amlproxy.observability.otel_sdk.configure_from_environment` builds from the
``OTEL_*`` variables with the ``otel`` extra's SDK and OTLP/HTTP exporter. Only that one
is flushed by amlproxy at the end of each invocation (a layer flushes its own).

Incoming context: the X-Ray header format (``_X_AMZN_TRACE_ID``, ``X-Amzn-Trace-Id``, an
SQS message's ``AWSTraceHeader``) is read by ``opentelemetry-propagator-aws-xray``; W3C
``traceparent`` by the API's TraceContext propagator. Outgoing: callback deliveries carry
``traceparent`` (and ``tracestate``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from amlproxy import __version__
from amlproxy.observability.tracing import AnnotationValue, Carrier, Span, SpanKindName

log = logging.getLogger(__name__)

XRAY_HEADER = "X-Amzn-Trace-Id"
_W3C = TraceContextTextMapPropagator()
_XRAY = AwsXRayPropagator()
_EMPTY = otel_context.Context()
_KINDS = {"server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER,
          "internal": SpanKind.INTERNAL}


class _OtelSpan:
    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def annotate(self, key: str, value: AnnotationValue) -> None:
        self._span.set_attribute(key, value)

    def fail(self, reason: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, reason))


def span_context_of(carrier: Carrier) -> trace.SpanContext | None:
    """The remote span context ``carrier`` names (``traceparent`` first, then
    ``X-Amzn-Trace-Id``), or None when it names none validly."""
    for key, propagator in (("traceparent", _W3C), (XRAY_HEADER, _XRAY)):
        if key in carrier:
            span = trace.get_current_span(propagator.extract(carrier, context=_EMPTY))
            found = span.get_span_context()
            if found.is_valid:
                return found
    return None


def incoming_context(carrier: Carrier | None) -> otel_context.Context | None:
    """The parent of an invocation's span: what ``carrier`` names, else Lambda's
    ``_X_AMZN_TRACE_ID`` (inside Lambda); None for a new trace."""
    found = span_context_of(carrier) if carrier else None
    lambda_header = os.environ.get("_X_AMZN_TRACE_ID")
    if found is None and lambda_header and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        found = span_context_of({XRAY_HEADER: lambda_header})
    if found is None:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(found), _EMPTY)


def _links(carriers: Sequence[Carrier]) -> list[Link]:
    return [Link(found) for found in map(span_context_of, carriers) if found is not None]


class OtelTracer:
    """Opens OpenTelemetry spans on ``provider`` (default: the global tracer provider).

    ``owned``: amlproxy configured ``provider`` itself, so :meth:`flush` flushes it.
    """

    name = "otel"

    def __init__(self, provider: trace.TracerProvider | None = None, *, owned: bool = False
                 ) -> None:
        self.provider = provider if provider is not None else trace.get_tracer_provider()
        self.owned = owned
        self._tracer = self.provider.get_tracer("amlproxy", __version__)

    @classmethod
    def from_environment(cls) -> OtelTracer:
        """On the process's provider; configured from the ``OTEL_*`` variables first when
        nothing configured one (see :mod:`~amlproxy.observability.otel_sdk`)."""
        from amlproxy.observability import otel_sdk

        provider = otel_sdk.configured_provider()
        if provider is not None:
            return cls(provider, owned=True)
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            provider = otel_sdk.configure_from_environment()
            return cls(provider, owned=True)
        log.debug("AMLPROXY_TRACING=otel: using the tracer provider already configured")
        return cls(provider)

    def invocation(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        kind: SpanKindName = "internal",
        **annotations: AnnotationValue,
    ) -> AbstractContextManager[Span]:
        if trace.get_current_span().get_span_context().is_valid:
            # a wrapper (the ADOT layer's Lambda instrumentation) opened the invocation's
            # span and chose its parent: ours nests under it
            return self._open(name, None, SpanKind.INTERNAL, annotations, links)
        return self._open(name, incoming_context(carrier), _KINDS[kind], annotations, links)

    def subsegment(
        self, name: str, *, links: Sequence[Carrier] = (), **annotations: AnnotationValue
    ) -> AbstractContextManager[Span]:
        return self._open(name, None, SpanKind.INTERNAL, annotations, links)

    @contextmanager
    def _open(
        self,
        name: str,
        parent: otel_context.Context | None,
        kind: SpanKind,
        annotations: dict[str, AnnotationValue],
        links: Sequence[Carrier],
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=annotations,
            links=_links(links) if links else None,
        ) as span:
            yield _OtelSpan(span)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        _W3C.inject(headers)

    def instrument_client(self, client: Any) -> None:
        from amlproxy.observability.botocore_spans import instrument_client

        instrument_client(client, self._tracer)

    def flush(self, timeout_s: float | None = None) -> None:
        if not self.owned:
            return
        force_flush = getattr(self.provider, "force_flush", None)
        if callable(force_flush):
            millis = 30_000 if timeout_s is None else max(1, int(timeout_s * 1000))
            if not force_flush(millis):
                log.warning("OpenTelemetry: spans not exported within %d ms", millis)
