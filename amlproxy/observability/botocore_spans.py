"""What ``opentelemetry-instrumentation-botocore`` records and carries, for the clients
amlproxy makes, with three botocore event hooks instead of the instrumentation itself.

For each API call (each attempt: amlproxy's clients make one botocore attempt per call):

- a CLIENT span ``"<service id>.<operation>"`` (``SageMaker Runtime.InvokeEndpoint``,
  ``Machine Learning.Predict``, ``S3.GetObject``...) with the instrumentation's attributes:
  ``rpc.system="aws-api"``, ``rpc.service``, ``rpc.method``, ``cloud.region``,
  ``server.address``/``server.port``, then ``aws.request_id``, ``retry_attempts`` and
  ``http.status_code``; ERROR status for an HTTP status >= 400 or an exception;
- the request carries that span's context in X-Ray's format (``X-Amzn-Trace-Id``, the one
  header AWS services propagate), unless the request already has that header: inside
  Lambda botocore itself adds the function's own trace header (its recursion detection),
  which the instrumentation leaves in place too.

Why not the instrumentation: it patches every botocore client of the process (wrapt on
``BaseClient._make_api_call`` and ``Endpoint.prepare_request``) and its import (wrapt,
``opentelemetry-instrumentation``, the semantic conventions, its service extensions)
adds ~80 ms to a cold start beyond what these hooks import (the API and the X-Ray
propagator, ~25 ms over botocore): median of 7 fresh processes each, side by side, 0.66b2.
The hooks cover exactly the clients amlproxy builds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode

XRAY_HEADER = "X-Amzn-Trace-Id"
_SPAN_KEY = "amlproxy.otel_span"  # in botocore's per-call request context dict
_XRAY = AwsXRayPropagator()


def instrument_client(client: Any, tracer: trace.Tracer) -> None:
    """Register the hooks on ``client`` (once; a second call changes nothing), unless an
    instrumentation already patched botocore in this process (:func:`botocore_instrumented`):
    it then traces every call itself."""
    if botocore_instrumented():
        return
    meta = client.meta
    base = {"rpc.system": "aws-api", "cloud.region": meta.region_name or ""}
    endpoint = urlsplit(meta.endpoint_url or "")
    if endpoint.hostname:
        base["server.address"] = endpoint.hostname
        base["server.port"] = endpoint.port or 443

    def before_call(model: Any, params: dict[str, Any], context: dict[str, Any],
                    **_: Any) -> None:
        service_id = str(model.service_model.service_id)
        span = tracer.start_span(
            f"{service_id}.{model.name}", kind=SpanKind.CLIENT,
            attributes={**base, "rpc.service": service_id, "rpc.method": model.name},
        )
        context[_SPAN_KEY] = span
        headers = params.setdefault("headers", {})
        if not any(key.lower() == XRAY_HEADER.lower() for key in headers):
            _XRAY.inject(headers, context=trace.set_span_in_context(span))

    def after_call(http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                   **_: Any) -> None:
        span = context.pop(_SPAN_KEY, None)
        if span is None:
            return
        metadata = parsed.get("ResponseMetadata") or {}
        request_id = metadata.get("RequestId") or (metadata.get("HTTPHeaders") or {}).get(
            "x-amzn-requestid")
        if request_id:
            span.set_attribute("aws.request_id", str(request_id))
        if metadata.get("RetryAttempts") is not None:
            span.set_attribute("retry_attempts", int(metadata["RetryAttempts"]))
        status = int(getattr(http_response, "status_code", 0) or 0)
        span.set_attribute("http.status_code", status)
        if status >= 400:
            error = parsed.get("Error") or {}
            reason = f"{error.get('Code', 'HTTP ' + str(status))}: {error.get('Message', '')}"
            span.set_status(Status(StatusCode.ERROR, reason.strip()))
            span.add_event("exception", {"exception.type": "botocore.exceptions.ClientError",
                                         "exception.message": reason.strip()})
        span.end()

    def after_call_error(exception: BaseException, context: dict[str, Any],
                         **_: Any) -> None:
        span = context.pop(_SPAN_KEY, None)
        if span is None:
            return
        span.record_exception(exception)
        span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        span.end()

    events = meta.events
    events.register("before-call", before_call, unique_id="amlproxy-otel-before-call")
    events.register("after-call", after_call, unique_id="amlproxy-otel-after-call")
    events.register("after-call-error", after_call_error,
                    unique_id="amlproxy-otel-after-call-error")


def botocore_instrumented() -> bool:
    """Whether an instrumentation wrapped ``BaseClient._make_api_call`` with wrapt
    (opentelemetry-instrumentation-botocore, as the ADOT layer's ``opentelemetry-instrument``
    applies it; the X-Ray SDK's ``patch``): it then traces the calls and carries the
    header. (botocore's own decorator leaves a plain function, with ``__wrapped__``.)"""
    import sys

    from botocore.client import BaseClient

    if "wrapt" not in sys.modules:  # nothing wrapped anything with it
        return False
    attribute = BaseClient.__dict__.get("_make_api_call")
    # wrapt's proxies, pure Python or C, wrapt 1 or 2, all derive from an ObjectProxy
    return any(kind.__name__ == "ObjectProxy" for kind in type(attribute).__mro__)
