"""Handlers run with AMLPROXY_TRACING=otel, the otel extra and OTEL_EXPORTER_OTLP_ENDPOINT
pointing at an OTLP/HTTP receiver this test runs on 127.0.0.1: the real SDK and exporter
send one trace per invocation, which the test decodes (opentelemetry-proto).

The handlers run in a fresh process (a cold start: amlproxy configures the SDK from the
OTEL_* variables), which ends with ``os._exit`` right after its last invocation, as a
frozen Lambda sandbox would give no chance to export: what arrived was flushed by the
invocations themselves (the batch processor's own schedule is set to 10 minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from amlproxy.sinks.dynamodb import table_definition
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_api import http_event
from tests.functional.test_trigger_sqs import sqs_event

ROOT = Path(__file__).resolve().parents[2]
TABLE = "amlproxy-results"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SENDER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

RUN = textwrap.dedent("""
    import json, os, sys
    from amlproxy.triggers import api, sqs
    from tests.events import LambdaContext
    events = json.loads(sys.argv[1])
    answer = api.handler(events["api"], LambdaContext())
    assert answer["statusCode"] == 200, answer
    assert sqs.handler(events["sqs"], LambdaContext()) == {"batchItemFailures": []}
    sys.stdout.flush()
    os._exit(0)  # no exit handlers: only what each invocation flushed has been exported
""")


class OtlpReceiver:
    """An OTLP/HTTP trace receiver: keeps every decoded export request."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append(request)
                receiver.paths.append(self.path)
                receiver.content_types.append(self.headers.get("content-type", ""))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """(resource attributes, span) of everything received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope.spans)
        return found


def attributes(pairs: Any) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def descendants_of(root: Span, spans: list[Span]) -> set[bytes]:
    """The span ids under ``root`` (itself included)."""
    found = {root.span_id}
    grew = True
    while grew:
        grew = False
        for span in spans:
            if span.parent_span_id in found and span.span_id not in found:
                found.add(span.span_id)
                grew = True
    return found


def test_each_invocation_exports_one_trace_over_otlp_http(
    otlp: OtlpReceiver, emu: Any, aws_client: Any, moto_reset: str
) -> None:
    aws_client("dynamodb").create_table(**table_definition(TABLE))
    api_event = http_event("apigateway_http_api_proxy", "POST", "/predict",
                           json.dumps([census_record()] * 6))
    api_event["headers"]["traceparent"] = TRACEPARENT
    queue_event = sqs_event(("m1", [census_record()] * 4))
    queue_event["Records"][0]["attributes"]["AWSTraceHeader"] = SENDER
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AMLPROXY_", "OTEL_", "AWS_LAMBDA", "_X_AMZN"))}
    env.update(
        PYTHONPATH=str(ROOT), AMLPROXY_TRACING="otel", AMLPROXY_BACKEND="sagemaker",
        AMLPROXY_SAGEMAKER_ENDPOINT=emu.endpoint_name, AMLPROXY_ENDPOINT_URL=emu.url,
        AMLPROXY_REGION="us-east-1", AMLPROXY_CONCURRENCY="3",
        AMLPROXY_SAGEMAKER_MAX_BATCH="2", AMLPROXY_SINKS="dynamodb",
        AMLPROXY_DYNAMODB_TABLE=TABLE, AMLPROXY_AWS_ENDPOINT_URL=moto_reset,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url, OTEL_SERVICE_NAME="amlproxy-otlp-test",
        OTEL_BSP_SCHEDULE_DELAY="600000",
    )
    events = json.dumps({"api": api_event, "sqs": queue_event})
    run = subprocess.run([sys.executable, "-c", RUN, events], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr

    assert otlp.paths and set(otlp.paths) == {"/v1/traces"}
    assert set(otlp.content_types) == {"application/x-protobuf"}
    received = otlp.spans()
    assert {r["service.name"] for r, _ in received} == {"amlproxy-otlp-test"}
    spans = [span for _, span in received]
    by_trace: dict[bytes, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == 2, [s.name for s in spans]  # one trace per invocation

    api_trace = by_trace[bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")]
    (api_root,) = [s for s in api_trace if s.name == "amlproxy api"]
    assert api_root.parent_span_id == bytes.fromhex("00f067aa0ba902b7")  # the traceparent
    assert api_root.kind == Span.SpanKind.SPAN_KIND_SERVER
    assert attributes(api_root.attributes)["faas.trigger"] == "http"
    under = descendants_of(api_root, api_trace)
    assert under == {s.span_id for s in api_trace}
    calls = [s for s in api_trace if s.name == "sagemaker endpoint"]
    assert len(calls) == 3 and all(attributes(c.attributes)["outcome"] == "ok" for c in calls)
    assert len([s for s in api_trace if s.name == "SageMaker Runtime.InvokeEndpoint"]) == 3

    sqs_trace = by_trace[bytes.fromhex("5759e988bd862e3fe1be46a994272793")]
    (sqs_root,) = [s for s in sqs_trace if s.name == "amlproxy sqs"]
    assert sqs_root.parent_span_id == bytes.fromhex("53995c3f42cd8ad8")  # AWSTraceHeader
    assert descendants_of(sqs_root, sqs_trace) == {s.span_id for s in sqs_trace}
    names = {s.name for s in sqs_trace}
    assert {"message", "sagemaker endpoint", "SageMaker Runtime.InvokeEndpoint",
            "DynamoDB.BatchWriteItem"} <= names
    writes = [s for s in sqs_trace if s.name.startswith("sink dynamodb")]
    assert writes and all(s.status.code != Status.STATUS_CODE_ERROR for s in sqs_trace)
