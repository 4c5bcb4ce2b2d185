"""Observability of the Lambda triggers: tracing, structured logs and EMF metrics.

- :mod:`~amlproxy.observability.tracing`: the :class:`Tracer` interface (subsegments/spans),
  its no-op implementation and :func:`make_tracer`, which picks X-Ray
  (:mod:`~amlproxy.observability.xray`) only when asked to AND running in Lambda;
- :mod:`~amlproxy.observability.instrument`: Backend and Sink wrappers that add spans and
  metrics at the composition root, so that the core never imports a tracer;
- :mod:`~amlproxy.observability.logs`: JSON log lines carrying the Lambda request id;
- :mod:`~amlproxy.observability.metrics`: CloudWatch Embedded Metric Format, flushed once
  per invocation.

Nothing here is imported by ``import amlproxy`` or by the core.
"""
