"""The X-Ray implementation of :class:`~amlproxy.observability.tracing.Tracer`.

Importing this module imports ``aws_xray_sdk`` (a few hundred milliseconds), so only
:func:`~amlproxy.observability.tracing.make_tracer` does, and only in Lambda. Inside
Lambda the SDK hangs subsegments under the function's segment (the "facade" segment built
from ``_X_AMZN_TRACE_ID``), also on worker threads, and sends them to the daemon address
the runtime provides (``AWS_XRAY_DAEMON_ADDRESS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from aws_xray_sdk.core import xray_recorder

from amlproxy.observability.tracing import AnnotationValue, Carrier, Span, SpanKindName

_BAD_KEY = re.compile(r"[^A-Za-z0-9_]")
_BAD_NAME = re.compile(r"[^\w.:/%&#=+\\\-@ ]")
_MAX_NAME = 200


class _XRaySpan:
    __slots__ = ("_entity",)

    def __init__(self, entity: Any) -> None:
        self._entity = entity

    def annotate(self, key: str, value: AnnotationValue) -> None:
        if self._entity is not None:
            self._entity.put_annotation(_BAD_KEY.sub("_", key), value)

    def fail(self, reason: str) -> None:
        if self._entity is not None:
            self._entity.add_fault_flag()
            self._entity.put_metadata("reason", reason, "amlproxy")


class XRayTracer:
    """Opens X-Ray subsegments with ``xray_recorder`` (or the ``recorder`` given).

    Annotation keys are reduced to what X-Ray indexes (letters, digits, underscore) and
    subsegment names to its allowed characters. A missing segment only logs an error
    (``context_missing="LOG_ERROR"``): tracing never breaks the work it observes.

    The X-Ray SDK cannot re-parent Lambda's segment: :meth:`invocation` is one more
    subsegment under it, whatever ``carrier`` says; links are not supported. Callback
    deliveries carry ``X-Amzn-Trace-Id``; botocore clients are not patched (the SDK's
    patching is process-wide).
    """

    name = "xray"

    def __init__(self, recorder: Any = None) -> None:
        self._recorder = recorder if recorder is not None else xray_recorder
        self._recorder.configure(context_missing="LOG_ERROR")

    def invocation(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        kind: SpanKindName = "internal",
        **annotations: AnnotationValue,
    ) -> AbstractContextManager[Span]:
        return self.subsegment(name, links=links, **annotations)

    def subsegment(
        self, name: str, *, links: Sequence[Carrier] = (), **annotations: AnnotationValue
    ) -> AbstractContextManager[Span]:
        return self._open(_BAD_NAME.sub("_", name)[:_MAX_NAME], annotations)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        entity = self._recorder.current_subsegment() or self._recorder.current_segment()
        if entity is None:
            return
        from aws_xray_sdk.core.models.trace_header import TraceHeader

        header = TraceHeader(root=entity.trace_id, parent=entity.id, sampled=int(entity.sampled))
        headers["X-Amzn-Trace-Id"] = header.to_header_str()

    def instrument_client(self, client: Any) -> None:
        return None

    def flush(self, timeout_s: float | None = None) -> None:
        return None  # subsegments are sent to the daemon as they end

    @contextmanager
    def _open(self, name: str, annotations: dict[str, AnnotationValue]) -> Iterator[Span]:
        entity = self._recorder.begin_subsegment(name)
        span = _XRaySpan(entity)
        for key, value in annotations.items():
            span.annotate(key, value)
        try:
            yield span
        except BaseException as exc:
            if entity is not None:
                entity.add_exception(exc, _stack(exc))
            raise
        finally:
            if entity is not None:
                self._recorder.end_subsegment()


def _stack(exc: BaseException) -> list[Any]:
    import traceback

    return list(traceback.extract_tb(exc.__traceback__))
