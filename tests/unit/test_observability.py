"""Tracing (no-op and X-Ray over a real UDP socket), JSON logs, EMF metrics, and the
Backend/Sink wrappers."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from amlproxy.backends.local import LocalBackend
from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.report import Report
from amlproxy.errors import BackendError, SinkError
from amlproxy.observability.instrument import InstrumentedBackend, InstrumentedSink
from amlproxy.observability.logs import JsonFormatter, log_context, set_log_context
from amlproxy.observability.metrics import MAX_SAMPLES, EmfMetrics
from amlproxy.observability.tracing import NoopTracer, Span, make_tracer
from amlproxy.sinks.file import FileSink
from tests.events import LambdaContext, load_event, use_env

ROOT = Path(__file__).resolve().parents[2]


class RecordingTracer:
    """A Tracer that remembers its spans (a test implementation of the protocol)."""

    name = "recording"

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    @contextmanager
    def subsegment(self, name: str, **annotations: Any) -> Iterator[Span]:
        span = {"name": name, **annotations}
        self.spans.append(span)

        class _Span:
            def annotate(self, key: str, value: Any) -> None:
                span[key] = value

        try:
            yield _Span()
        except BaseException as exc:
            span["error"] = type(exc).__name__
            raise


# ------------------------------------------------------------------------------ logs


def test_json_log_lines_carry_the_invocation_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("amlproxy.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        set_log_context(request_id="req-1", trigger="s3", cold_start=True, function=None)
        logger.info("scored %s", "s3://b/k", extra={"ok": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        set_log_context()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "scored s3://b/k" and first["level"] == "INFO"
    assert (first["request_id"], first["trigger"], first["ok"]) == ("req-1", "s3", 3)
    assert "function" not in first and first["timestamp"].endswith("Z")
    assert second["exception_type"] == "ValueError" and "boom" in second["exception"]


def test_configure_logging_in_lambda_formats_the_runtime_handler() -> None:
    code = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(stream=sys.stdout)  # stands for the Lambda runtime's handler
        from amlproxy.observability.logs import configure_logging, set_log_context
        configure_logging("INFO")
        set_log_context(request_id="abc-123")
        logging.getLogger("amlproxy.x").info("hello")
        logging.getLogger("botocore").info("not shown: other loggers keep their level")
    """)
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "f", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["message"], x["request_id"]) for x in lines] == [("hello", "abc-123")]


@contextmanager
def captured_amlproxy_logs() -> Iterator[io.StringIO]:
    """The ``amlproxy`` loggers' records as JSON lines, whatever earlier tests left: the
    handler, the level and the propagation are set here and restored after."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("amlproxy")
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    set_log_context()
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def test_trigger_logs_carry_each_invocations_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passes alone and in any order (it sets up every piece of logging state it reads),
    and fails when a field is lost, stale or wrong (request id, cold start, trigger...)."""
    from amlproxy.triggers import api

    use_env(monkeypatch, backend="local", log_level="INFO")
    event = load_event("function_url")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/schema"
    event["requestContext"]["http"]["method"] = "GET"
    first, second = LambdaContext(function_name="f-1"), LambdaContext(function_name="f-1")
    with captured_amlproxy_logs() as stream:
        api.handler(event, first)
        api.handler(event, second)
        logging.getLogger("amlproxy.test").info("between invocations")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_message = [(line["message"], line.get("request_id"), line.get("cold_start"))
                  for line in lines]
    assert by_message == [
        ("runtime ready", first.aws_request_id, True),  # built lazily, in the first call
        ("GET /schema -> 200", first.aws_request_id, True),
        ("GET /schema -> 200", second.aws_request_id, False),
        ("between invocations", None, None),  # the context ends with the invocation
    ]
    assert all((line["trigger"], line["function"]) == ("api", "f-1") for line in lines[:3])
    assert log_context() == {}


# ------------------------------------------------------------------------------ metrics


def test_emf_document_structure() -> None:
    written: list[str] = []
    metrics = EmfMetrics("amlproxy", {"function": "f", "trigger": "sqs"}, write=written.append)
    report = Report(source="x", total=10, ok=7, rejected=2, failed=1, retries=4, exhausted=1)
    metrics.add_report(report)
    metrics.add("BatchItemFailures", 1)
    for ms in range(250):
        metrics.observe_latency(float(ms))

    lines = metrics.flush()

    assert written == lines and len(lines) == 3  # 250 samples: 100 + 100 + 50
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "amlproxy"
        assert directive["Dimensions"] == [["function", "trigger"]]
        assert isinstance(doc["_aws"]["Timestamp"], int)
        assert (doc["function"], doc["trigger"]) == ("f", "sqs")
        for metric in directive["Metrics"]:
            assert metric["Name"] in doc  # every declared metric has its value at the root
        assert len(doc["EndpointLatency"]) <= 100
    first = docs[0]
    assert (first["RecordsScored"], first["RecordsRejected"], first["RecordsFailed"]) == (7, 2, 1)
    assert (first["Retries"], first["RetriesExhausted"], first["EndpointCalls"]) == (4, 1, 250)
    units = {m["Name"]: m["Unit"] for m in first["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["EndpointLatency"] == "Milliseconds" and units["RecordsScored"] == "Count"
    assert "RecordsScored" not in docs[1]
    assert sum(len(d["EndpointLatency"]) for d in docs) == 250
    assert metrics.flush() == []  # flushed once: nothing left


def test_latency_samples_are_bounded_and_unbiased() -> None:
    metrics = EmfMetrics("ns", {"function": "f"}, write=lambda line: None, seed=1)
    for i in range(20 * MAX_SAMPLES):
        metrics.observe_latency(float(i % 100))
    docs = [json.loads(line) for line in metrics.flush()]
    samples = [v for d in docs for v in d["EndpointLatency"]]
    assert len(samples) == MAX_SAMPLES and len(docs) == MAX_SAMPLES // 100
    assert docs[0]["EndpointCalls"] == 20 * MAX_SAMPLES
    assert 40 < sum(samples) / len(samples) < 59  # the population's mean is 49.5


def test_disabled_metrics_write_nothing() -> None:
    written: list[str] = []
    metrics = EmfMetrics("ns", {"function": "f"}, enabled=False, write=written.append)
    metrics.add("RecordsScored", 3)
    assert metrics.flush() == [] and written == []


# ------------------------------------------------------------------------------ tracing


def test_tracer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert isinstance(make_tracer("xray"), NoopTracer)  # not in Lambda
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "f")
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert isinstance(make_tracer("xray"), NoopTracer)  # no trace header
    assert isinstance(make_tracer("off"), NoopTracer)
    with NoopTracer().subsegment("x", a=1) as span:
        span.annotate("b", 2)


def test_xray_subsegments_reach_the_daemon() -> None:
    """A real X-Ray recorder in a Lambda-like process sends its subsegments over UDP to a
    'daemon' socket of this test."""
    pytest.importorskip("aws_xray_sdk", reason="the xray extra is not installed "
                        "(make test-lowest installs the test extra only)")
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(20)
    port = daemon.getsockname()[1]
    code = textwrap.dedent("""
        import aws_xray_sdk  # noqa: F401 (imported by make_tracer only in Lambda)
        from amlproxy.observability.tracing import make_tracer
        tracer = make_tracer("xray")
        assert tracer.name == "xray", tracer
        with tracer.subsegment("aml endpoint", backend="aml", records=3) as span:
            span.annotate("attempts", 2)
        try:
            with tracer.subsegment("sink dynamodb:t", **{"sink-name": "t"}):
                raise RuntimeError("table gone")
        except RuntimeError:
            pass
    """)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "amlproxy-test",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;"
                            "Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
    }
    try:
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
        documents = []
        for _ in range(2):
            header, _, body = daemon.recv(65536).decode().partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            documents.append(json.loads(body))
    finally:
        daemon.close()
    by_name = {d["name"]: d for d in documents}
    call = by_name["aml endpoint"]
    assert call["annotations"] == {"backend": "aml", "records": 3, "attempts": 2}
    assert call["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert call["parent_id"] == "53995c3f42cd8ad8" and call["type"] == "subsegment"
    sink = by_name["sink dynamodb:t"]
    assert sink["annotations"] == {"sink_name": "t"}
    assert sink["fault"] is True
    assert sink["cause"]["exceptions"][0]["message"] == "table gone"


# ------------------------------------------------------------------------------ wrappers


def test_instrumented_backend_traces_and_times_batches() -> None:
    tracer = RecordingTracer()
    metrics = EmfMetrics("ns", {"function": "f"}, write=lambda line: None)
    backend = InstrumentedBackend(LocalBackend(), tracer, metrics)
    assert isinstance(backend, Backend)
    assert (backend.name, backend.max_batch_size, backend.io_bound) == ("local", 512, False)
    record = {"age": 39.0, "education": "Bachelors", "sex": "Male", "hours-per-week": 40.0}

    assert len(backend.predict_batch([record, record])) == 2
    backend.predict(record)
    with pytest.raises(BackendError):
        backend.predict({"age": "not a number"})

    assert [s["records"] for s in tracer.spans] == [2, 1, 1]
    assert tracer.spans[0]["name"] == "local endpoint"
    assert tracer.spans[0]["model_id"] == backend.model_id
    assert "error" in tracer.spans[2] and "error" not in tracer.spans[0]
    doc = json.loads(metrics.flush()[0])
    assert (doc["EndpointCalls"], doc["EndpointErrors"]) == (3, 1)
    assert len(doc["EndpointLatency"]) == 3


def test_instrumented_sink_traces_writes_and_counts_errors(tmp_path: Path) -> None:
    tracer = RecordingTracer()
    metrics = EmfMetrics("ns", {"function": "f"}, write=lambda line: None)
    sink = InstrumentedSink(FileSink(str(tmp_path / "r.jsonl"), kind="rejects"), tracer, metrics)
    assert isinstance(sink, Sink)
    outcome = Outcome("src", 1, Status.REJECTED, {}, "raw")
    sink.write([outcome])
    sink.close()
    assert [(s["name"], s["operation"]) for s in tracer.spans] == [
        (f"sink {sink.name}", "write"), (f"sink {sink.name}", "close")]
    assert tracer.spans[0]["outcomes"] == 1
    assert (tmp_path / "r.jsonl").read_text().count("\n") == 1

    under_a_file = tmp_path / "r.jsonl" / "x.jsonl"  # r.jsonl is a file, not a folder
    broken = InstrumentedSink(FileSink(str(under_a_file), kind="results"), tracer, metrics)
    with pytest.raises((OSError, SinkError)):
        broken.write([Outcome("src", 1, Status.OK, {}, None)])
        broken.close()
    assert json.loads(metrics.flush()[0])["SinkErrors"] == 1
