"""AMLPROXY_TRACING=otel with the SDK's in-memory exporter: spans of worker threads nest
under the invocation's span, the attributes, ERROR status with the exception event, and
the incoming context (traceparent, X-Ray headers, Lambda's _X_AMZN_TRACE_ID)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed "
                    "(make test-lowest installs the test extra only)")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from amlproxy.core.outcome import Outcome, SourceRow, Status
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.schema import load_schema
from amlproxy.errors import (
    BackendError,
    EndpointServerError,
    InvalidRecordError,
    RetriesExhaustedError,
    SinkError,
    ThrottledError,
)
from amlproxy.observability.carriers import http_carrier, sqs_carriers, xray_root
from amlproxy.observability.instrument import (
    InstrumentedBackend,
    InstrumentedSink,
    outcome_class,
    record_input_summary,
)
from amlproxy.observability.metrics import EmfMetrics
from amlproxy.observability.otel import OtelTracer
from amlproxy.sinks.file import FileSink
from tests.fixtures.emulator import census_record
from tests.unit.test_pipeline import EchoBackend

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
XRAY_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
XRAY_HEADER = f"Root={XRAY_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
RECORD = census_record()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> OtelTracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracer(provider, owned=True)


def metrics() -> EmfMetrics:
    return EmfMetrics("ns", {"function": "f"}, write=lambda line: None)


def rows(count: int) -> list[SourceRow]:
    return [SourceRow(line=i, fields=dict(RECORD), raw="") for i in range(1, count + 1)]


# ------------------------------------------------------------------ threads and attributes


def test_endpoint_spans_on_worker_threads_are_children_of_the_invocation(
    tracer: OtelTracer, exporter: InMemorySpanExporter
) -> None:
    inner = EchoBackend(max_batch_size=2, jitter_s=0.02)
    backend = InstrumentedBackend(inner, tracer, metrics())
    pipeline = Pipeline(load_schema("census-income"), backend, concurrency=4)
    try:
        with tracer.invocation("amlproxy s3", kind="consumer", trigger="s3"):
            report = pipeline.run(rows(16), source="s3://b/k.csv")
    finally:
        pipeline.close()
    assert report.ok == 16
    assert len(inner.threads) > 1 and all(t.startswith("amlproxy") for t in inner.threads)
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "amlproxy s3"]
    calls = [s for s in spans if s.name == "echo endpoint"]
    assert len(calls) == 8  # 16 records, 2 per batch
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id
               for s in calls)
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert root.kind is SpanKind.CONSUMER and root.parent is None
    attributes = dict(calls[0].attributes or {})
    assert attributes == {"backend": "echo", "model_id": "echo-1", "records": 2,
                          "attempts": 1, "outcome": "ok"}


@pytest.mark.parametrize(("error", "outcome", "attempts"), [
    (RetriesExhaustedError(ThrottledError("slow down", code="ThrottlingException"),
                           attempts=3, why="max attempts"), "throttled", 3),
    (EndpointServerError("container failed", code="ModelError", attempts=1),
     "model_error", 1),
    (InvalidRecordError("bad", code="ValidationError", attempts=1), "invalid_record", 1),
])
def test_a_failed_endpoint_call_has_error_status_its_outcome_and_the_exception(
    tracer: OtelTracer, exporter: InMemorySpanExporter, error: BackendError, outcome: str,
    attempts: int,
) -> None:
    backend = InstrumentedBackend(EchoBackend(fail_ages={39.0: error}), tracer, metrics())
    with pytest.raises(BackendError):
        backend.predict_batch([{"age": 39.0}])
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert type(error).__name__ in (span.status.description or "")
    assert (span.attributes or {})["outcome"] == outcome
    assert (span.attributes or {})["attempts"] == attempts
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"].endswith(type(error).__name__)


def test_outcome_classes() -> None:
    deadline = RetriesExhaustedError(BackendError("no time", code="DeadlineExceeded",
                                                  attempts=0), attempts=0, why="deadline")
    assert outcome_class(None) == "ok"
    assert outcome_class(deadline) == "deadline"
    assert outcome_class(ThrottledError("x", code="ModelNotReadyException")) == "throttled"
    assert outcome_class(InvalidRecordError("x", code="ModelError")) == "model_error"
    assert outcome_class(BackendError("x")) == "error"


def test_a_failed_sink_write_has_error_status_and_the_exception_event(
    tracer: OtelTracer, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    under_a_file = tmp_path / "r.jsonl"
    under_a_file.write_text("")
    sink = InstrumentedSink(FileSink(str(under_a_file / "x.jsonl"), kind="results"), tracer,
                            metrics())
    with pytest.raises((OSError, SinkError)), tracer.invocation("amlproxy sns"):
        sink.write([Outcome("src", 1, Status.OK, {}, None)])
        sink.close()
    failed = [s for s in exporter.get_finished_spans() if s.name.startswith("sink ")]
    assert failed[-1].status.status_code is StatusCode.ERROR
    assert [e.name for e in failed[-1].events] == ["exception"]
    root = next(s for s in exporter.get_finished_spans() if s.name == "amlproxy sns")
    assert root.status.status_code is StatusCode.ERROR  # the error left the invocation too


def test_an_input_that_could_not_be_scored_marks_its_span_failed(
    tracer: OtelTracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.subsegment("s3 object", **{"aws.s3.bucket": "b"}) as span:
        record_input_summary(span, {"status": "error", "reason": "cannot read the object"})
    with tracer.subsegment("message") as span:
        record_input_summary(span, {"status": "scored", "total": 3, "ok": 2, "rejected": 1,
                                    "failed": 0})
    failed, scored = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "cannot read the object"
    assert scored.status.status_code is StatusCode.UNSET
    assert dict(scored.attributes or {}) == {"status": "scored", "records_total": 3,
                                             "records_ok": 2, "records_rejected": 1,
                                             "records_failed": 0}


# ------------------------------------------------------------------ context in and out


def test_an_incoming_traceparent_is_the_invocations_parent(
    tracer: OtelTracer, exporter: InMemorySpanExporter
) -> None:
    carrier = http_carrier({"TraceParent": TRACEPARENT, "Content-Type": "application/json"})
    assert carrier == {"traceparent": TRACEPARENT}
    with tracer.invocation("amlproxy api", carrier=carrier, kind="server"), \
            tracer.subsegment("sagemaker endpoint"):
        pass
    call, root = exporter.get_finished_spans()
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    assert root.parent is not None and f"{root.parent.span_id:016x}" == PARENT_ID
    assert root.parent.is_remote and root.kind is SpanKind.SERVER
    assert call.parent is not None and call.parent.span_id == root.context.span_id


def test_the_xray_header_and_then_lambdas_trace_id_are_the_fallbacks(
    tracer: OtelTracer, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    xray_trace_id = XRAY_ROOT.replace("1-", "").replace("-", "")
    with tracer.invocation("a", carrier={"X-Amzn-Trace-Id": XRAY_HEADER}):
        pass
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "f")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", XRAY_HEADER.replace("Parent=5", "Parent=6")
                       + ";Lineage=a87bd80c:0")
    with tracer.invocation("b", carrier={"traceparent": "00-not-a-valid-header-01"}):
        pass
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    with tracer.invocation("c"):  # not in Lambda: the variable is not Lambda's
        pass
    a, b, c = exporter.get_finished_spans()
    assert f"{a.context.trace_id:032x}" == xray_trace_id
    assert a.parent is not None and f"{a.parent.span_id:016x}" == "53995c3f42cd8ad8"
    assert f"{b.context.trace_id:032x}" == xray_trace_id
    assert b.parent is not None and f"{b.parent.span_id:016x}" == "63995c3f42cd8ad8"
    assert c.parent is None


def test_a_span_already_open_wins_over_the_carrier(
    tracer: OtelTracer, exporter: InMemorySpanExporter
) -> None:
    """A wrapper (the ADOT layer's Lambda instrumentation) opened the invocation's span:
    ours nests under it, whatever the event carries."""
    with tracer.subsegment("handler (layer)"), \
            tracer.invocation("amlproxy api", carrier={"traceparent": TRACEPARENT}):
        pass
    ours, layer = exporter.get_finished_spans()
    assert ours.parent is not None and ours.parent.span_id == layer.context.span_id
    assert ours.kind is SpanKind.INTERNAL


def test_inject_gives_the_current_spans_traceparent(tracer: OtelTracer,
                                                    exporter: InMemorySpanExporter) -> None:
    headers: dict[str, str] = {}
    tracer.inject(headers)
    assert headers == {}  # no span, no header
    with tracer.subsegment("sink callback:hooks.example.com"):
        tracer.inject(headers)
    (span,) = exporter.get_finished_spans()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00", f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


def test_an_sqs_batch_links_every_message_and_continues_a_single_senders_trace(
    tracer: OtelTracer, exporter: InMemorySpanExporter
) -> None:
    other = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1"
    one = [{"attributes": {"AWSTraceHeader": XRAY_HEADER}}, {"attributes": {}}]
    two = [*one, {"attributes": {"AWSTraceHeader": other}}, "not a record"]
    parent, links = sqs_carriers(one)
    assert parent == {"X-Amzn-Trace-Id": XRAY_HEADER} and links == [parent]
    with tracer.invocation("amlproxy sqs", carrier=parent, links=links):
        pass
    parent, links = sqs_carriers(two)
    assert parent is None and len(links) == 2
    with tracer.invocation("amlproxy sqs", carrier=parent, links=links):
        pass
    single, batch = exporter.get_finished_spans()
    assert single.parent is not None and f"{single.parent.span_id:016x}" == "53995c3f42cd8ad8"
    assert batch.parent is None
    assert [f"{link.context.span_id:016x}" for link in batch.links] == [
        "53995c3f42cd8ad8", "463ac35c9f6413ad"]
    assert xray_root(other) == "1-67891233-abcdef012345678912345678"
    assert xray_root("Parent=1") is None


def test_flush_only_flushes_a_provider_amlproxy_configured() -> None:
    class Provider(TracerProvider):
        flushed = 0

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            Provider.flushed += 1
            return True

    OtelTracer(Provider(), owned=False).flush(1.0)
    assert Provider.flushed == 0
    OtelTracer(Provider(), owned=True).flush(1.0)
    assert Provider.flushed == 1



def test_the_default_install_has_no_tracer_package() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                            .read_text())["project"]
    names = {d.split(">")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert not {n for n in names if n.startswith(("aws-xray-sdk", "opentelemetry", "wrapt"))}
    extras = project["optional-dependencies"]
    assert any(d.startswith("aws-xray-sdk") for d in extras["xray"])
    assert {d.split(">")[0] for d in extras["otel"]} >= {
        "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-propagator-aws-xray"}
