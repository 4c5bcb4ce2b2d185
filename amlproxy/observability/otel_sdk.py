"""Wiring the OpenTelemetry SDK from the standard ``OTEL_*`` variables, for a process in
which nothing else configured a tracer provider (no ADOT layer, no
``opentelemetry-instrument``): the ``otel`` extra's SDK and OTLP/HTTP exporter.

The only amlproxy module that imports the SDK; :class:`~amlproxy.observability.otel.OtelTracer`
calls it at cold start when the global provider is still the API's proxy. What it reads,
all standard (the SDK and the exporter read most of them themselves):

- ``OTEL_SDK_DISABLED=true``: no provider (spans are not recorded);
- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``: the resource (service name
  defaults to the Lambda function's name, else ``amlproxy``);
- ``OTEL_TRACES_SAMPLER`` (``parentbased_always_on`` by default), ``OTEL_TRACES_SAMPLER_ARG``;
- ``OTEL_TRACES_EXPORTER``: ``otlp`` (default), ``console`` or ``none``;
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
  ``..._HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``; ``OTEL_EXPORTER_OTLP_PROTOCOL``
  must be ``http/protobuf`` (the default; gRPC would pull grpcio into the package);
- ``OTEL_BSP_*``: the batch span processor. The triggers flush it at the end of every
  invocation, since Lambda may freeze the process right after.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from opentelemetry import trace

from amlproxy.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

_configured: trace.TracerProvider | None = None


def configured_provider() -> trace.TracerProvider | None:
    """The provider :func:`configure_from_environment` set up in this process, if any."""
    return _configured


def configure_from_environment() -> trace.TracerProvider:
    """Build the SDK's tracer provider from the ``OTEL_*`` variables, make it the global
    one, and return it. :class:`ConfigurationError` when the SDK is not installed or a
    variable names something this wiring does not support."""
    global _configured
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("OTEL_SDK_DISABLED=true: OpenTelemetry spans are not recorded")
        _configured = trace.NoOpTracerProvider()
        return _configured
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(
            f"AMLPROXY_TRACING=otel: no tracer provider is configured in this process and "
            f"the OpenTelemetry SDK is missing ({exc}): install amlproxy[otel], or add the "
            "ADOT Lambda layer (AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument)"
        ) from exc
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "amlproxy"
        resource = resource.merge(Resource({SERVICE_NAME: name}))
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = provider
    log.info("OpenTelemetry configured from the OTEL_* variables",
             extra={"otel_exporter": type(exporter).__name__ if exporter else "none"})
    return provider


def _exporter() -> SpanExporter | None:
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={kind!r}: amlproxy wires otlp, console or none (configure "
            "other exporters with opentelemetry-instrument or the ADOT layer)"
        )
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol.strip().lower() != "http/protobuf":
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: amlproxy exports OTLP over "
            "http/protobuf (port 4318), the default"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http ({exc}): "
            "install amlproxy[otel]"
        ) from exc
    return OTLPSpanExporter()
