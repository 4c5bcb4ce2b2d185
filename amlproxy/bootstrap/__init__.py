"""The composition root: builds the pipeline from settings, once per cold start.

Handlers and the CLI call :func:`build_pipeline` (or :func:`build_backend`) and keep the
result; nothing else in amlproxy decides which adapter to use. Adapters are imported
lazily, so a function that only uses the local model never imports boto3.

- :mod:`amlproxy.bootstrap.backends`: the retry policy and the backend the settings name
  (local, SageMaker, Amazon ML, shadow);
- :mod:`amlproxy.bootstrap.aws`, for the Lambda triggers: the AWS clients
  (:class:`AwsClients`, one boto3 session, each client made once), the shared sinks
  (:func:`build_shared_sinks`: DynamoDB, callback) and the chunk room;
- here: the pipeline, with backend and sinks wrapped for tracing and metrics
  (:mod:`amlproxy.observability.instrument`) when given a tracer and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from amlproxy.bootstrap.aws import (
    AwsClients,
    build_chunk_room,
    build_shared_sinks,
    callback_secrets,
)
from amlproxy.bootstrap.backends import (
    aml_rate_cap,
    build_backend,
    build_retry_policy,
    build_shadow_backend,
)
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.retry import Deadline
from amlproxy.core.schema import load_schema
from amlproxy.settings import Settings

if TYPE_CHECKING:
    from amlproxy.observability.metrics import EmfMetrics
    from amlproxy.observability.tracing import Tracer

__all__ = [
    "AwsClients",
    "aml_rate_cap",
    "build_backend",
    "build_chunk_room",
    "build_pipeline",
    "build_retry_policy",
    "build_shadow_backend",
    "build_shared_sinks",
    "callback_secrets",
    "instrument_sinks",
    "prediction_clients",
]


def build_pipeline(
    settings: Settings,
    sinks: Sequence[Sink] = (),
    *,
    deadline: Deadline | None = None,
    tracer: Tracer | None = None,
    metrics: EmfMetrics | None = None,
) -> Pipeline:
    """Schema + backend + sinks, wired. Call once and reuse across inputs/invocations.

    With ``tracer`` and ``metrics`` the backend and the sinks are instrumented.
    """
    schema = load_schema(settings.schema_name)
    deadline = deadline if deadline is not None else Deadline()
    backend = build_backend(settings, schema, deadline=deadline)
    if tracer is not None and metrics is not None:
        from amlproxy.observability.instrument import InstrumentedBackend

        for client in prediction_clients(backend):
            tracer.instrument_client(client)
        backend = InstrumentedBackend(backend, tracer, metrics)
        sinks = instrument_sinks(sinks, tracer, metrics)
    return Pipeline(
        schema, backend, sinks, concurrency=settings.concurrency, deadline=deadline
    )


def prediction_clients(backend: Backend) -> list[Any]:
    """The botocore clients of ``backend`` (of both sides of a shadow backend), for the
    tracer to hook: the backends make their own clients (``_client``), configured for
    the one retry layer."""
    found = []
    for side in (getattr(backend, "primary", None), getattr(backend, "shadow", None)):
        if side is not None:
            found.extend(prediction_clients(side))
    client = getattr(backend, "_client", None)
    if client is not None and hasattr(client, "meta"):
        found.append(client)
    return found


def instrument_sinks(
    sinks: Sequence[Sink], tracer: Tracer | None, metrics: EmfMetrics | None
) -> list[Sink]:
    """The sinks wrapped for tracing and metrics (unchanged without both)."""
    if tracer is None or metrics is None:
        return list(sinks)
    from amlproxy.observability.instrument import InstrumentedSink

    return [InstrumentedSink(s, tracer, metrics) for s in sinks]
