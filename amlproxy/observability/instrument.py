"""Backend and Sink wrappers that add spans and metrics, applied by the composition root,
and the span of one input (an S3 object, a message) for the triggers.

The core (:mod:`amlproxy.core.pipeline`) never imports a tracer: :mod:`amlproxy.bootstrap`
wraps the backend and the sinks in these classes, which implement the same ports. The
cost is one span and one clock read per backend *batch* or sink *chunk*, never per record.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from amlproxy.core.outcome import Outcome
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.prediction import Prediction
from amlproxy.errors import (
    BackendError,
    EndpointConnectionError,
    EndpointNotFoundError,
    EndpointServerError,
    InvalidRecordError,
    ModelResponseError,
    RetriesExhaustedError,
    ThrottledError,
)
from amlproxy.observability.metrics import EmfMetrics
from amlproxy.observability.tracing import AnnotationValue, Span, Tracer, records_nothing

A = TypeVar("A")
R = TypeVar("R")


class InstrumentedBackend:
    """A :class:`~amlproxy.core.ports.Backend` that traces and times another one.

    Each ``predict``/``predict_batch`` runs in a span named ``"<backend> endpoint"``,
    annotated with ``backend``, ``model_id`` (the endpoint or model), ``records``,
    ``attempts`` (calls made, retries included: the most any request of the batch took)
    and ``outcome`` (:func:`outcome_class`), and adds its wall time, retries included, to
    the ``EndpointLatency`` metric; a :class:`BackendError` adds one to
    ``EndpointErrors``. Other attributes (``summary``, ``report``...) are the inner
    backend's. With a tracer that records nothing (tracing off) the calls open no span:
    only the metrics are kept.
    """

    def __init__(self, inner: Backend, tracer: Tracer, metrics: EmfMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.max_batch_size = inner.max_batch_size
        self.io_bound = inner.io_bound
        self._tracer = tracer
        self._metrics = metrics
        self._span_name = f"{inner.name} endpoint"
        self._traced = not records_nothing(tracer)  # decided once: no span per call when off

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        return self._call(1, self.inner.predict, record)

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return self._call(len(records), self.inner.predict_batch, records)

    def _call(self, count: int, fn: Callable[[A], R], arg: A) -> R:
        started = time.perf_counter()
        try:
            return self._in_span(count, fn, arg) if self._traced else fn(arg)
        except Exception:
            self._metrics.add("EndpointErrors")
            raise
        finally:
            self._metrics.observe_latency((time.perf_counter() - started) * 1000.0)

    def _in_span(self, count: int, fn: Callable[[A], R], arg: A) -> R:
        """The call in its span, annotated with its attempts and outcome."""
        with self._tracer.subsegment(
            self._span_name, backend=self.name, model_id=self.model_id, records=count
        ) as span:
            try:
                result = fn(arg)
            except BackendError as exc:
                span.annotate("attempts", exc.attempts)
                span.annotate("outcome", outcome_class(exc))
                raise
            _annotate_success(span, result)
            return result

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"InstrumentedBackend({self.inner!r})"


def outcome_class(error: BackendError | None) -> str:
    """What became of an endpoint call: ``ok``, ``throttled`` (429, throttling codes,
    ModelNotReady, also when the retries ran out on it), ``model_error`` (the model
    container failed: SageMaker's ModelError, an answer that cannot be read),
    ``invalid_record``, ``not_found``, ``server_error``, ``connection_error``,
    ``deadline`` (no attempt left before the deadline) or ``error``."""
    if error is None:
        return "ok"
    if isinstance(error, RetriesExhaustedError):
        if error.attempts == 0:
            return "deadline"
        return outcome_class(error.last)
    if error.code == "ModelError" or isinstance(error, ModelResponseError):
        return "model_error"
    for kind, name in _OUTCOMES:
        if isinstance(error, kind):
            return name
    return "error"


_OUTCOMES: tuple[tuple[type[BackendError], str], ...] = (
    (ThrottledError, "throttled"),
    (InvalidRecordError, "invalid_record"),
    (EndpointNotFoundError, "not_found"),
    (EndpointServerError, "server_error"),
    (EndpointConnectionError, "connection_error"),
)


def _annotate_success(span: Span, result: object) -> None:
    predictions = result if isinstance(result, list) else [result]
    attempts = max((p.attempts for p in predictions if isinstance(p, Prediction)), default=0)
    span.annotate("attempts", attempts)
    span.annotate("outcome", "ok")


class InstrumentedSink:
    """A :class:`~amlproxy.core.ports.Sink` that traces another one's ``write`` and
    ``close`` (spans ``"sink <name>"``, none when the tracer records nothing) and counts
    its failures in ``SinkErrors``."""

    def __init__(self, inner: Sink, tracer: Tracer, metrics: EmfMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self._tracer = tracer
        self._metrics = metrics
        self._span_name = f"sink {inner.name}"
        self._traced = not records_nothing(tracer)

    def write(self, outcomes: Sequence[Outcome]) -> None:
        try:
            if not self._traced:
                self.inner.write(outcomes)
                return
            with self._tracer.subsegment(
                self._span_name, sink=self.name, operation="write", outcomes=len(outcomes)
            ):
                self.inner.write(outcomes)
        except Exception:
            self._metrics.add("SinkErrors")
            raise

    def close(self) -> None:
        try:
            if not self._traced:
                self.inner.close()
                return
            with self._tracer.subsegment(self._span_name, sink=self.name, operation="close"):
                self.inner.close()
        except Exception:
            self._metrics.add("SinkErrors")
            raise

    def abort(self) -> None:
        self.inner.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"InstrumentedSink({self.inner!r})"


INPUT_COUNTS = ("total", "ok", "rejected", "failed")


def record_input_summary(span: Span, summary: Mapping[str, Any]) -> None:
    """Annotate the span of one input (an S3 object, a message) with its summary:
    ``status`` and the record counts; an input that could not be scored (status
    ``error``) marks the span failed with its reason."""
    status = summary.get("status")
    if isinstance(status, str):
        span.annotate("status", status)
    for key in INPUT_COUNTS:
        value = summary.get(key)
        if isinstance(value, int):
            span.annotate(f"records_{key}", value)
    if status == "error":
        span.fail(str(summary.get("reason") or "the input could not be scored"))


# OpenTelemetry's FaaS conventions: what kind of event started the invocation
_FAAS_TRIGGER = {"api": "http", "s3": "datasource", "sns": "pubsub", "sqs": "pubsub"}


def invocation_annotations(fields: Mapping[str, Any], cold_start: bool
                           ) -> dict[str, AnnotationValue]:
    """The annotations of an invocation's span from its log fields (``trigger``,
    ``function``, ``request_id``): ours, and OpenTelemetry's ``faas.*`` names."""
    trigger = str(fields.get("trigger") or "")
    annotations: dict[str, AnnotationValue] = {
        "trigger": trigger, "cold_start": cold_start, "faas.coldstart": cold_start,
        "faas.trigger": _FAAS_TRIGGER.get(trigger, "other"),
    }
    for ours, theirs in (("function", "faas.name"), ("request_id", "faas.invocation_id")):
        value = fields.get(ours)
        if value:
            annotations[ours] = annotations[theirs] = str(value)
    return annotations


Summary = dict[str, Any]
SummaryFn = TypeVar("SummaryFn", bound=Callable[..., Summary])


def traced_input(
    name: str, describe: Callable[..., dict[str, AnnotationValue]]
) -> Callable[[SummaryFn], SummaryFn]:
    """Run a trigger's per-input function ``fn(runtime, ...) -> summary`` in a span
    ``name``, annotated with ``describe(runtime, ...)`` (called with ``fn``'s arguments)
    and then with the summary (:func:`record_input_summary`). ``runtime``, the first
    argument, has the tracer."""

    def decorate(fn: SummaryFn) -> SummaryFn:
        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Summary:
            tracer: Tracer = args[0].tracer
            with tracer.subsegment(name, links=(), **describe(*args, **kwargs)) as span:
                summary: Summary = fn(*args, **kwargs)
                record_input_summary(span, summary)
                return summary

        return traced  # type: ignore[return-value]

    return decorate


def message_annotations(source: str) -> dict[str, AnnotationValue]:
    """A message span's annotations from its source id (``sns:<id>``, ``sqs:<id>``)."""
    system, _, message_id = source.partition(":")
    return {"source": source, "messaging.system": f"aws_{system}",
            "messaging.message.id": message_id}
