"""What every Lambda trigger shares: the runtime built once per cold start, and the
per-invocation bracket (deadline, log context, metrics flush).

:func:`get_runtime` builds the :class:`Runtime` on the first invocation (settings, schema,
backend, pipeline, AWS clients, shared sinks, tracer, metrics) and keeps it for the life of
the process. A configuration problem raises one :class:`ConfigurationError` there, listing
every bad variable, and again on each invocation until the configuration is fixed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from amlproxy.bootstrap import AwsClients, build_pipeline, build_shared_sinks, instrument_sinks
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Sink
from amlproxy.core.retry import Deadline
from amlproxy.core.schema import Schema
from amlproxy.errors import ConfigurationError
from amlproxy.observability.instrument import invocation_annotations
from amlproxy.observability.logs import configure_logging, set_log_context
from amlproxy.observability.metrics import EmfMetrics
from amlproxy.observability.tracing import Carrier, SpanKindName, Tracer, make_tracer
from amlproxy.settings import Settings, load_settings
from amlproxy.triggers import _snapstart

log = logging.getLogger("amlproxy.triggers")


@dataclass
class Runtime:
    """Everything a trigger needs, built once per cold start by :func:`get_runtime`."""

    settings: Settings
    pipeline: Pipeline
    deadline: Deadline
    clients: AwsClients
    tracer: Tracer
    metrics: EmfMetrics
    build_ms: float = 0.0
    invocations: int = 0
    checked_triggers: set[str] = field(default_factory=set)
    cache: dict[str, Any] = field(default_factory=dict)  # per-trigger things built once

    @property
    def schema(self) -> Schema:
        return self.pipeline.schema

    @property
    def shared_sinks(self) -> list[Sink]:
        """DynamoDB / callback sinks (instrumented), written by every input."""
        return self.pipeline.sinks

    def instrument(self, sinks: list[Sink]) -> list[Sink]:
        return instrument_sinks(sinks, self.tracer, self.metrics)

    def uses_s3_output(self, *, s3_trigger: bool) -> bool:
        return "s3" in self.settings.sink_names(s3_trigger=s3_trigger)

    def close(self) -> None:
        """Stop worker threads and close the backend (trigger pipelines share it)."""
        for item in self.cache.values():
            if isinstance(item, Pipeline) and item is not self.pipeline:
                item.close()
        self.pipeline.close()


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, built on first use."""
    global _runtime
    if _runtime is None:
        _runtime = build_runtime()
    return _runtime


def reset_runtime() -> None:
    """Close and forget the runtime: the next invocation builds a new one from the
    environment (tests; a long-lived process after a configuration change)."""
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


def build_runtime(settings: Settings | None = None) -> Runtime:
    started = time.perf_counter()
    settings = settings if settings is not None else load_settings()
    configure_logging(settings.log_level)
    tracer = make_tracer(settings.tracing)
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    metrics = EmfMetrics(
        settings.metrics_namespace,
        {"function": function, "trigger": "none"},
        enabled=settings.metrics,
    )
    deadline = Deadline()
    clients = AwsClients(settings, deadline=deadline, instrument=tracer.instrument_client)
    shared = build_shared_sinks(settings, clients, tracer)
    pipeline = build_pipeline(settings, shared, deadline=deadline, tracer=tracer, metrics=metrics)
    runtime = Runtime(settings, pipeline, deadline, clients, tracer, metrics)
    _snapstart.register(lambda: _runtime)  # SnapStart: renew randomness and connections
    runtime.build_ms = (time.perf_counter() - started) * 1000.0
    log.info(
        "runtime ready",
        extra={
            "build_ms": round(runtime.build_ms, 1),
            "backend": settings.backend,
            "sinks": [s.name for s in shared],
            "tracer": tracer.name,
        },
    )
    return runtime


def _check_trigger(runtime: Runtime, trigger: str) -> None:
    """Configuration that only a given trigger needs, checked at its first invocation."""
    if trigger in runtime.checked_triggers:
        return
    settings = runtime.settings
    if trigger in ("sns", "sqs") and "s3" in settings.sink_names() and not settings.output_bucket:
        raise ConfigurationError(
            "invalid configuration (1 problem(s)): AMLPROXY_SINKS names s3: the "
            f"{trigger} trigger needs AMLPROXY_OUTPUT_BUCKET for its output objects"
        )
    runtime.checked_triggers.add(trigger)


@contextmanager
def invocation(trigger: str, context: Any, carrier: Carrier | None = None,
               links: Sequence[Carrier] = ()) -> Iterator[Runtime]:
    """The bracket of one invocation: builds the runtime if needed, sets the retry
    deadline from the Lambda context and the log fields, opens the invocation's span
    (parent: ``carrier``'s trace headers, else Lambda's; ``links``: the traces of the
    messages of a batch), flushes metrics and spans."""
    fields = {
        "request_id": getattr(context, "aws_request_id", None),
        "function": getattr(context, "function_name", None),
        "trigger": trigger,
    }
    set_log_context(**fields, cold_start=_runtime is None)
    try:
        runtime = get_runtime()
        _check_trigger(runtime, trigger)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        raise
    cold_start = runtime.invocations == 0
    set_log_context(**fields, cold_start=cold_start)
    runtime.invocations += 1
    runtime.deadline.set_from_lambda_context(context, margin_s=runtime.settings.deadline_margin_s)
    runtime.metrics.set_dimension("trigger", trigger)
    kind: SpanKindName = "server" if trigger == "api" else "consumer"
    try:
        with runtime.tracer.invocation(f"amlproxy {trigger}", carrier=carrier, links=links,
                                       kind=kind, **invocation_annotations(fields, cold_start)):
            yield runtime
    except Exception:
        log.exception("%s invocation failed", trigger)
        raise
    finally:
        runtime.metrics.flush()
        runtime.tracer.flush(runtime.deadline.remaining())
