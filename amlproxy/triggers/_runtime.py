"""What every Lambda trigger shares: the runtime built once per cold start, and the
per-invocation bracket (deadline, log context, metrics flush).

The :class:`Runtime` (settings, schema, backend, pipeline, AWS clients, shared sinks,
tracer, metrics) is built once per process and kept for its life:

- under Lambda, in the init phase: each handler module calls :func:`init_trigger` when it
  is imported, which builds the runtime and checks the trigger's own configuration. A
  configuration problem raises one :class:`ConfigurationError` (listing every bad
  variable) out of the import, which the runtime interface client reports to
  ``/runtime/init/error``: the function fails to start instead of failing its first event;
- elsewhere (tests, a library user importing a handler, the in-process local stack) on the
  first invocation, by :func:`invocation`; the error is then raised at each invocation
  until the configuration is fixed.

"Under Lambda" means that ``AWS_LAMBDA_RUNTIME_API`` is set (Lambda, the Runtime Interface
Emulator, ``sam local`` and ``amlproxy local up``'s workers set it for the runtime client)
and that ``_HANDLER``, when set, names a handler of the importing module.

SnapStart: the init phase opens no connection (clients connect at their first call, and
botocore opens a new connection when a pooled one is dead) and keeps no random state that
a restored copy would share (the retry jitter and the metrics sampling draw from
``random.SystemRandom`` unless seeded).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from amlproxy.bootstrap import (
    AwsClients,
    build_chunk_room,
    build_pipeline,
    build_shared_sinks,
    instrument_sinks,
)
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Sink
from amlproxy.core.retry import Deadline
from amlproxy.core.schema import Schema
from amlproxy.errors import ConfigurationError, UnsupportedEventError
from amlproxy.observability.instrument import invocation_annotations
from amlproxy.observability.logs import configure_logging, set_log_context
from amlproxy.observability.metrics import EmfMetrics
from amlproxy.observability.tracing import (
    Carrier,
    SpanKindName,
    Tracer,
    make_tracer,
    records_nothing,
)
from amlproxy.settings import Settings, load_settings
from amlproxy.triggers import _snapstart
from amlproxy.triggers._collector import after_init

if TYPE_CHECKING:
    from amlproxy.chunks import ChunkRoom

log = logging.getLogger("amlproxy.triggers")
CarrierArg = Carrier | Callable[[], Carrier | None] | None


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
    chunks: ChunkRoom | None = None  # the chunk planner and worker (AMLPROXY_CHUNK_TABLE)
    time_left_at_start: float | None = None  # seconds, when the invocation started

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
_lock = threading.Lock()  # the in-process local stack invokes handlers from threads


def get_runtime() -> Runtime:
    """The process's runtime, built on first use."""
    global _runtime
    runtime = _runtime
    if runtime is not None:  # (built: no lock to take)
        return runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime()
        return _runtime


def reset_runtime() -> None:
    """Close and forget the runtime: the next invocation builds a new one from the
    environment (tests; a long-lived process after a configuration change)."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


def build_runtime(settings: Settings | None = None) -> Runtime:
    started = time.perf_counter()
    configure_logging()  # JSON lines from the first record on, a settings error's too
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
    runtime.chunks = build_chunk_room(settings, clients, pipeline, runtime.instrument)
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


def in_lambda_init(module: str) -> bool:
    """Whether ``module`` is being imported by a Lambda runtime client as the function's
    handler module (see the module docstring)."""
    if not os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        return False
    handler = os.environ.get("_HANDLER", "").replace("/", ".")
    return not handler or handler.rpartition(".")[0] == module


def init_trigger(trigger: str, module: str) -> None:
    """Called by each handler module at import: under Lambda, builds the runtime and checks
    ``trigger``'s configuration now, in the init phase (a bad setting fails the import);
    elsewhere does nothing, and the first invocation builds the runtime."""
    if not in_lambda_init(module):
        return
    set_log_context(function=os.environ.get("AWS_LAMBDA_FUNCTION_NAME"), trigger=trigger,
                    phase="init", cold_start=True)
    try:
        check_trigger(get_runtime(), trigger)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        raise
    finally:
        set_log_context()
    after_init()  # the collector: what init built frozen, fewer young collections


def check_trigger(runtime: Runtime, trigger: str) -> None:
    """Configuration that only a given trigger needs (checked once per trigger)."""
    if trigger in runtime.checked_triggers:
        return
    settings = runtime.settings
    if trigger in ("sns", "sqs") and "s3" in settings.sink_names() and not settings.output_bucket:
        raise ConfigurationError(
            "invalid configuration (1 problem(s)): AMLPROXY_SINKS names s3: the "
            f"{trigger} trigger needs AMLPROXY_OUTPUT_BUCKET for its output objects"
        )
    if trigger == "chunks" and runtime.chunks is None:
        raise ConfigurationError(
            "invalid configuration (1 problem(s)): the chunk worker needs "
            "AMLPROXY_CHUNK_TABLE (the plans and their completion)"
        )
    runtime.checked_triggers.add(trigger)


def invocation(trigger: str, context: Any, carrier: CarrierArg = None,
               links: Sequence[Carrier] = ()) -> Invocation:
    """The bracket of one invocation: the runtime (built now if the init phase did not),
    the retry deadline from the Lambda context, the log fields, the invocation's span
    (parent: ``carrier``'s trace headers, else Lambda's; ``links``: the traces of the
    messages of a batch), the metrics and spans flushed at the end. A refused event
    (:class:`UnsupportedEventError`) and any other error are logged and raised.

    ``carrier`` may be a function that returns it: it is then called only when the tracer
    records spans (with tracing off, an event's trace headers are not even looked for)."""
    return Invocation(trigger, context, carrier, links)


class Invocation:
    """The context manager :func:`invocation` returns (a class rather than a generator:
    it is entered on every request). With the no-op tracer no span is opened, nor its
    annotations built."""

    __slots__ = ("_carrier", "_context", "_links", "_runtime", "_span", "_trigger")

    def __init__(self, trigger: str, context: Any, carrier: CarrierArg,
                 links: Sequence[Carrier]) -> None:
        self._trigger = trigger
        self._context = context
        self._carrier = carrier
        self._links = links
        self._span: AbstractContextManager[Any] | None = None

    def __enter__(self) -> Runtime:
        runtime, cold_start = _begin(self._trigger, self._context)
        self._runtime = runtime
        if records_nothing(runtime.tracer):
            return runtime
        try:
            self._span = self._open_span(runtime.tracer, cold_start)
        except BaseException as exc:
            self._failed(exc)
            self._end(runtime)
            raise
        return runtime

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        runtime, span = self._runtime, self._span
        try:
            if span is not None:  # (a tracer's span never swallows an exception)
                try:
                    span.__exit__(exc_type, exc, tb)
                except BaseException as raised:
                    self._failed(raised)
                    raise
            if exc is not None:
                self._failed(exc)
        finally:
            self._end(runtime)

    def _open_span(self, tracer: Tracer, cold_start: bool) -> AbstractContextManager[Any]:
        context, trigger = self._context, self._trigger
        fields = {"request_id": getattr(context, "aws_request_id", None),
                  "function": getattr(context, "function_name", None), "trigger": trigger}
        kind: SpanKindName = "server" if trigger == "api" else "consumer"
        carrier = self._carrier() if callable(self._carrier) else self._carrier
        span = tracer.invocation(f"amlproxy {trigger}", carrier=carrier, links=self._links,
                                 kind=kind, **invocation_annotations(fields, cold_start))
        span.__enter__()
        return span

    def _failed(self, exc: BaseException) -> None:
        """Log an error leaving the invocation (as it propagates)."""
        if isinstance(exc, UnsupportedEventError):
            log.error("event refused: %s", exc, extra={"error_type": type(exc).__name__})
        elif isinstance(exc, Exception):
            log.error("%s invocation failed", self._trigger, exc_info=exc)

    def _end(self, runtime: Runtime) -> None:
        runtime.metrics.flush()
        if not records_nothing(runtime.tracer):
            runtime.tracer.flush(runtime.deadline.remaining())
        set_log_context()


def _begin(trigger: str, context: Any) -> tuple[Runtime, bool]:
    """Everything :func:`invocation` does before the handler runs; the runtime, and
    whether this is the process's first invocation (a cold start)."""
    first = _runtime is None or _runtime.invocations == 0
    set_log_context(
        request_id=getattr(context, "aws_request_id", None),
        function=getattr(context, "function_name", None),
        trigger=trigger,
        cold_start=first,
    )
    try:
        runtime = get_runtime()
        check_trigger(runtime, trigger)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        set_log_context()
        raise
    runtime.invocations += 1
    runtime.deadline.set_from_lambda_context(context, margin_s=runtime.settings.deadline_margin_s)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    runtime.time_left_at_start = remaining_ms() / 1000.0 if callable(remaining_ms) else None
    runtime.metrics.set_dimension("trigger", trigger)
    return runtime, first
