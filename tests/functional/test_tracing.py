"""AMLPROXY_TRACING=otel through the handlers, over real HTTP (the endpoint emulator, moto
server, the callback receiver), with the SDK's in-memory exporter: one trace per
invocation, every endpoint call and sink write under the invocation's span (also on the
pipeline's worker threads), botocore calls as CLIENT spans carrying the X-Ray header, the
incoming context honoured; and with tracing off, no tracer package imported at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from amlproxy.bootstrap import prediction_clients
from amlproxy.observability.instrument import InstrumentedSink
from amlproxy.observability.metrics import EmfMetrics
from amlproxy.observability.otel import OtelTracer
from amlproxy.sinks.dynamodb import table_definition
from amlproxy.triggers import api, sqs
from amlproxy.triggers._runtime import get_runtime
from tests.events import LambdaContext, load_event, use_env
from tests.fixtures.emulator import census_record
from tests.fixtures.otel import Spans, memory_spans  # noqa: F401 (a fixture)
from tests.functional.test_sink_callback import (  # noqa: F401 (fixtures)
    Pki,
    Receiver,
    ok,
    pki,
    receiver,
    sink_for,
)
from tests.functional.test_trigger_api import http_event
from tests.functional.test_trigger_sqs import sqs_event

ROOT = Path(__file__).resolve().parents[2]
TABLE = "amlproxy-results"
SENDER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def capture_headers(client: Any) -> list[dict[str, str]]:
    """The headers of every request ``client`` sends (a botocore hook that runs after the
    tracer's, at the moment of sending)."""
    sent: list[dict[str, str]] = []

    def before_send(request: Any, **_: Any) -> None:
        sent.append({k: v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})

    client.meta.events.register("before-send", before_send)
    return sent


def descends(spans: Spans, span: ReadableSpan, ancestor: ReadableSpan) -> bool:
    return ancestor.context.span_id in {a.context.span_id for a in spans.ancestors(span)}


@pytest.fixture
def sqs_stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str, emu: Any
              ) -> Any:
    ddb = aws_client("dynamodb")
    ddb.create_table(**table_definition(TABLE))
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE, sinks="dynamodb",
            backend="aml", aml_model_id=emu.model_id, aml_predict_endpoint=emu.url,
            endpoint_url=emu.url, region="us-east-1", concurrency=3, tracing="otel")
    return ddb


def test_an_sqs_invocation_is_one_trace_under_the_senders(
    sqs_stack: Any, memory_spans: Spans  # noqa: F811
) -> None:
    sent = capture_headers(prediction_clients(get_runtime().pipeline.backend.inner)[0])
    event = sqs_event(("m1", [census_record()] * 6))
    event["Records"][0]["attributes"]["AWSTraceHeader"] = SENDER

    assert sqs.handler(event, LambdaContext()) == {"batchItemFailures": []}

    spans = memory_spans
    root = spans.one("amlproxy sqs")
    assert {s.context.trace_id for s in spans.all} == {root.context.trace_id}
    assert f"{root.context.trace_id:032x}" == "5759e988bd862e3fe1be46a994272793"
    assert root.parent is not None and f"{root.parent.span_id:016x}" == "53995c3f42cd8ad8"
    assert root.kind is SpanKind.CONSUMER and len(root.links) == 1
    attributes = dict(root.attributes or {})
    assert attributes["trigger"] == "sqs" and attributes["faas.trigger"] == "pubsub"
    assert attributes["cold_start"] is True and attributes["faas.invocation_id"]
    message = spans.one("message")
    assert dict(message.attributes or {})["messaging.message.id"] == "m1"
    assert dict(message.attributes or {})["records_ok"] == 6
    calls = spans.named("aml endpoint")
    assert len(calls) == 6 and all(descends(spans, c, message) for c in calls)
    predicts = spans.named("Machine Learning.Predict")
    assert len(predicts) == 6
    for predict in predicts:
        parent = spans.ancestors(predict)[0]
        assert parent.name == "aml endpoint" and predict.kind is SpanKind.CLIENT
        assert dict(predict.attributes or {})["rpc.system"] == "aws-api"
        assert dict(predict.attributes or {})["http.status_code"] == 200
    writes = [s for s in spans.all if s.name.startswith("sink dynamodb")]
    assert writes and all(descends(spans, w, root) for w in writes)
    batch_writes = spans.named("DynamoDB.BatchWriteItem")
    assert batch_writes and all(descends(spans, w, writes[0]) for w in batch_writes)
    # each Predict request carried its CLIENT span's context in X-Ray's format
    ids = {f"{p.context.span_id:016x}" for p in predicts}
    headers = [h["X-Amzn-Trace-Id"] for h in sent]
    assert len(headers) == 6
    assert all(h.startswith("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=")
               for h in headers)
    assert {h.split("Parent=")[1][:16] for h in headers} == ids


def test_an_endpoint_throttling_shows_on_the_call_and_its_attempts(
    sqs_stack: Any, memory_spans: Spans, emu: Any, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("AMLPROXY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AMLPROXY_RETRY_BASE_DELAY_S", "0.001")
    emu.set_faults(throttle_rate=1.0)
    answer = sqs.handler(sqs_event(("m1", census_record())), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    call = memory_spans.one("aml endpoint")
    assert call.status.status_code is StatusCode.ERROR
    assert dict(call.attributes or {})["outcome"] == "throttled"
    assert dict(call.attributes or {})["attempts"] == 2
    predicts = memory_spans.named("Machine Learning.Predict")
    assert len(predicts) == 2
    assert all(p.status.status_code is StatusCode.ERROR for p in predicts)
    # Amazon ML answers LimitExceededException with HTTP 417
    assert {dict(p.attributes or {})["http.status_code"] for p in predicts} == {417}


def test_an_api_request_continues_its_traceparent_on_worker_threads(
    monkeypatch: pytest.MonkeyPatch, emu: Any, memory_spans: Spans  # noqa: F811
) -> None:
    use_env(monkeypatch, backend="sagemaker", sagemaker_endpoint=emu.endpoint_name,
            endpoint_url=emu.url, region="us-east-1", concurrency=3, sagemaker_max_batch=2,
            tracing="otel")
    event = http_event("apigateway_aws_proxy", "POST", "/predict",
                       json.dumps([census_record()] * 6))
    event["headers"]["traceparent"] = TRACEPARENT
    answer = api.handler(event, LambdaContext())
    assert answer["statusCode"] == 200, answer

    root = memory_spans.one("amlproxy api")
    assert f"{root.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root.parent is not None and f"{root.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert root.kind is SpanKind.SERVER
    calls = memory_spans.named("sagemaker endpoint")
    assert len(calls) == 3
    assert all(memory_spans.ancestors(c)[0] is root or
               memory_spans.ancestors(c)[0].context.span_id == root.context.span_id
               for c in calls)
    invokes = memory_spans.named("SageMaker Runtime.InvokeEndpoint")
    assert len(invokes) == 3
    assert all(memory_spans.ancestors(i)[0].name == "sagemaker endpoint" for i in invokes)


def test_callback_deliveries_carry_the_traceparent_of_their_sink_span(
    receiver: Receiver, pki: Pki, memory_spans: Spans  # noqa: F811
) -> None:
    tracer = OtelTracer()
    receiver.script = [(503, {}), (204, {})]  # a retried delivery carries it again
    sink = InstrumentedSink(sink_for(receiver, pki, trace_headers=tracer.inject), tracer,
                            EmfMetrics("ns", {}, write=lambda line: None))
    with tracer.invocation("amlproxy s3"):
        sink.write([ok(1), ok(2)])
    (span,) = [s for s in memory_spans.all if s.name.startswith("sink callback")]
    expected = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
    assert len(receiver.requests) == 2
    assert all(r.headers["traceparent"].startswith(expected) for r in receiver.requests)


def test_without_a_tracer_deliveries_carry_no_traceparent(
    receiver: Receiver, pki: Pki  # noqa: F811
) -> None:
    sink_for(receiver, pki).write([ok(1)])
    assert "traceparent" not in receiver.requests[0].headers


NO_TRACER = textwrap.dedent("""
    import json, sys
    from amlproxy.triggers import api, sqs, sns, s3  # every handler
    from tests.events import LambdaContext
    event = json.loads(sys.argv[1])
    answer = api.handler(event, LambdaContext())
    assert answer["statusCode"] == 200, answer
    loaded = sorted({m.split(".")[0] for m in sys.modules
                     if m.split(".")[0] in ("opentelemetry", "aws_xray_sdk", "wrapt")})
    print(json.dumps(loaded))
""")


@pytest.mark.parametrize(("tracing", "lambda_env", "expected"), [
    ("off", True, []),
    ("xray", False, []),  # not in Lambda: the no-op tracer, and no import
    ("otel", False, ["opentelemetry"]),
    ("xray", True, ["aws_xray_sdk", "wrapt"]),
])
def test_only_the_chosen_tracers_packages_are_imported(
    tracing: str, lambda_env: bool, expected: list[str]
) -> None:
    event = http_event("function_url", "POST", "/predict", json.dumps(census_record()))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AMLPROXY_", "OTEL_", "AWS_LAMBDA", "_X_AMZN"))}
    env.update(PYTHONPATH=str(ROOT), AMLPROXY_BACKEND="local", AMLPROXY_TRACING=tracing,
               OTEL_TRACES_EXPORTER="none")
    if lambda_env:
        env.update(AWS_LAMBDA_FUNCTION_NAME="amlproxy-test", AWS_XRAY_CONTEXT_MISSING=
                   "IGNORE_ERROR", AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:9",
                   _X_AMZN_TRACE_ID=SENDER)
    answer = subprocess.run([sys.executable, "-c", NO_TRACER, json.dumps(event)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == expected


def test_otel_without_the_sdk_is_an_init_error(tmp_path: Path) -> None:
    """No provider configured and no SDK installed: the first invocation fails with a
    ConfigurationError that says what to install (the SDK is hidden from the import)."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                    raise ImportError(f"hidden: {name}")
                return None
        sys.meta_path.insert(0, _Hide())
    """))
    code = textwrap.dedent("""
        from amlproxy.errors import ConfigurationError
        from amlproxy.observability.tracing import make_tracer
        try:
            make_tracer("otel")
        except ConfigurationError as exc:
            print(exc)
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    answer = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert "install amlproxy[otel]" in answer.stdout and "ADOT" in answer.stdout


def test_events_without_trace_headers_start_new_traces(
    sqs_stack: Any, memory_spans: Spans  # noqa: F811
) -> None:
    event = sqs_event(("a", census_record()), ("b", census_record()))
    event["Records"][1]["attributes"]["AWSTraceHeader"] = "not an x-ray header"
    assert sqs.handler(event, LambdaContext()) == {"batchItemFailures": []}
    root = memory_spans.one("amlproxy sqs")
    assert root.parent is None and root.links == ()
    assert len(memory_spans.named("message")) == 2
    assert load_event("sqs_receive_message")["Records"][0]["attributes"].get(
        "AWSTraceHeader") is None


def test_no_hooks_when_the_botocore_instrumentation_is_active(
    emu: Any, memory_spans: Spans, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Under the ADOT layer, opentelemetry-instrument has wrapped botocore's API call with
    wrapt: amlproxy adds no second CLIENT span nor header."""
    import wrapt
    from botocore.client import BaseClient

    def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    tracer = OtelTracer()
    body = (b"39,State-gov,77516,Bachelors,13,Never-married,Adm-clerical,Not-in-family,"
            b"White,Male,2174,0,40,United-States")
    with monkeypatch.context() as patched:
        patched.setattr(BaseClient, "_make_api_call",
                        wrapt.FunctionWrapper(BaseClient.__dict__["_make_api_call"], passthrough))
        client = emu.sagemaker_client(read_timeout=30)  # its own client: hooks stay on it
        tracer.instrument_client(client)
        sent = capture_headers(client)
        client.invoke_endpoint(EndpointName=emu.endpoint_name, ContentType="text/csv",
                               Body=body)
    assert memory_spans.all == [] and "X-Amzn-Trace-Id" not in sent[0]
    tracer.instrument_client(client)  # not wrapped any more: hooked
    client.invoke_endpoint(EndpointName=emu.endpoint_name, ContentType="text/csv", Body=body)
    assert [s.name for s in memory_spans.all] == ["SageMaker Runtime.InvokeEndpoint"]
    assert "X-Amzn-Trace-Id" in sent[1]
