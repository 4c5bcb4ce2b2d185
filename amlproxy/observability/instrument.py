"""Backend and Sink wrappers that add spans and metrics, applied by the composition root.

The core (:mod:`amlproxy.core.pipeline`) never imports a tracer: :mod:`amlproxy.bootstrap`
wraps the backend and the sinks in these classes, which implement the same ports. The
cost is one span and one clock read per backend *batch* or sink *chunk*, never per record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from amlproxy.core.outcome import Outcome
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.prediction import Prediction
from amlproxy.observability.metrics import EmfMetrics
from amlproxy.observability.tracing import Tracer

A = TypeVar("A")
R = TypeVar("R")


class InstrumentedBackend:
    """A :class:`~amlproxy.core.ports.Backend` that traces and times another one.

    Each ``predict``/``predict_batch`` runs in a span named ``"<backend> endpoint"``
    (annotated with backend, model_id and records) and adds its wall time, retries
    included, to the ``EndpointLatency`` metric; a :class:`BackendError` adds one to
    ``EndpointErrors``. Other attributes (``summary``, ``report``...) are the inner
    backend's.
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

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        return self._call(1, self.inner.predict, record)

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return self._call(len(records), self.inner.predict_batch, records)

    def _call(self, count: int, fn: Callable[[A], R], arg: A) -> R:
        started = time.perf_counter()
        try:
            with self._tracer.subsegment(
                self._span_name, backend=self.name, model_id=self.model_id, records=count
            ):
                return fn(arg)
        except Exception:
            self._metrics.add("EndpointErrors")
            raise
        finally:
            self._metrics.observe_latency((time.perf_counter() - started) * 1000.0)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"InstrumentedBackend({self.inner!r})"


class InstrumentedSink:
    """A :class:`~amlproxy.core.ports.Sink` that traces another one's ``write`` and
    ``close`` (spans ``"sink <name>"``) and counts its failures in ``SinkErrors``."""

    def __init__(self, inner: Sink, tracer: Tracer, metrics: EmfMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self._tracer = tracer
        self._metrics = metrics
        self._span_name = f"sink {inner.name}"

    def write(self, outcomes: Sequence[Outcome]) -> None:
        try:
            with self._tracer.subsegment(
                self._span_name, sink=self.name, operation="write", outcomes=len(outcomes)
            ):
                self.inner.write(outcomes)
        except Exception:
            self._metrics.add("SinkErrors")
            raise

    def close(self) -> None:
        try:
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
