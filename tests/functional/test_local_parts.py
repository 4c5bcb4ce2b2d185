"""The parts of the local stack: the functions and resources read from the SAM template,
the Lambda event shapes (against the SAM-generated events of tests/events), the config
file, and the local API server (concurrency, keep-alive, payload 2.0 responses)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import re
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from amlproxy.core.schema import load_schema
from amlproxy.emulator.httpcore import Request, Response
from amlproxy.errors import ConfigurationError
from amlproxy.local.api_server import ApiServerThread, LocalApi, http_response
from amlproxy.local.config import load_config
from amlproxy.local.events import http_api_event, sns_record, sqs_record
from amlproxy.local.functions import read_functions
from amlproxy.local.resources import LocalResolver
from amlproxy.local.runtime_api import Outcome
from amlproxy.local.template import read_template, template_defaults
from amlproxy.triggers._http import parse_http_event
from tests.events import load_event


def _shape(value: Any) -> Any:
    """The nested key structure of a JSON value."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list) and value:
        return [_shape(value[0])]
    return type(value).__name__ if value is not None else "str"


def _functions(config_path: Path | None = None, **overrides: Any) -> dict[str, Any]:
    config = load_config(config_path, **overrides)
    template = read_template()
    resolver = LocalResolver(template, config.template_parameters(set(template["Parameters"])),
                             "http://127.0.0.1:1")
    return {spec.name: spec for spec in read_functions(resolver)}


def test_functions_and_their_event_sources_come_from_the_template() -> None:
    functions = _functions()
    assert set(functions) == {"S3Function", "SnsFunction", "SqsFunction", "ChunkFunction",
                              "ApiFunction"}
    defaults = template_defaults()
    s3, sqs, api = functions["S3Function"], functions["SqsFunction"], functions["ApiFunction"]
    assert s3.handler == "amlproxy.triggers.s3.handler"
    assert s3.timeout_s == float(defaults["FunctionTimeout"]) and api.timeout_s == 29
    assert s3.reserved_concurrency == int(defaults["ReservedConcurrency"])
    assert s3.memory_mb == int(defaults["FunctionMemorySize"])
    # S3 reaches the planner through IngestQueue: an SQS mapping, no S3 event of its own
    (ingest,) = s3.sqs
    assert s3.s3 == () and ingest.queue_arn.endswith(":amlproxy-ingest")
    assert ingest.report_batch_item_failures and ingest.batch_size == 1
    chunks = functions["ChunkFunction"]
    assert chunks.handler == "amlproxy.triggers.chunks.handler"
    (work,) = chunks.sqs
    assert work.queue_arn.endswith(":amlproxy-chunks") and work.batch_size == 1
    assert work.maximum_concurrency == chunks.reserved_concurrency == int(
        defaults["ChunkMaxConcurrency"])
    assert s3.environment["AMLPROXY_CHUNK_QUEUE_URL"] == "http://127.0.0.1:1/123456789012/" \
        "amlproxy-chunks"
    assert chunks.environment["AMLPROXY_CHUNK_TABLE"] == "amlproxy-chunks"
    assert chunks.environment["AMLPROXY_COMPLETION_TOPIC_ARN"].endswith(":amlproxy-completion")
    sns = functions["SnsFunction"]
    assert sns.async_config.maximum_retry_attempts == int(defaults["AsyncMaxRetryAttempts"])
    assert sns.async_config.on_failure_arn == "arn:aws:sqs:us-east-1:123456789012:amlproxy-failures"
    (mapping,) = sqs.sqs
    assert mapping.queue_arn.endswith(":amlproxy-work") and mapping.report_batch_item_failures
    assert mapping.batch_size == int(defaults["SqsBatchSize"])
    assert mapping.maximum_concurrency == int(defaults["ReservedConcurrency"])
    assert functions["SnsFunction"].sns[0].topic_arn.endswith(":amlproxy-predict")
    # each function gets its own variables from the template, resolved
    assert s3.environment["AMLPROXY_SINKS"] == "s3,dynamodb"
    assert api.environment["AMLPROXY_SINKS"] == "dynamodb"
    assert s3.environment["AMLPROXY_DYNAMODB_TABLE"] == "amlproxy-results"
    assert s3.environment["AMLPROXY_SAGEMAKER_ENDPOINT"] == "census-income"


def test_config_file_overrides_template_parameters(tmp_path: Path) -> None:
    path = tmp_path / "local.toml"
    path.write_text('api_port = 0\ntimeout = 5\nchaos = 0.25\nseed = 3\n'
                    '[parameters]\nInputBucketName = "my-in"\n'
                    'OutputBucketName = "my-out"\nOutputPrefix = "results/"\nBackend = "aml"\n')
    config = load_config(path, moto_port=0)
    assert (config.api_port, config.moto_port) == (0, 0)
    assert (config.timeout, config.chaos, config.seed) == (5, 0.25, 3)
    assert (config.input_bucket, config.output_bucket) == ("my-in", "my-out")
    functions = _functions(path)
    env = functions["SnsFunction"].environment
    assert env["AMLPROXY_OUTPUT_BUCKET"] == "my-out"
    assert env["AMLPROXY_OUTPUT_PREFIX"] == "results/"
    assert env["AMLPROXY_INPUT_PREFIX"] == "input/"  # the template's default
    assert env["AMLPROXY_AML_MODEL_ID"] == "census-income"
    assert functions["ChunkFunction"].environment["AMLPROXY_OUTPUT_BUCKET"] == "my-out"
    overrides = config.function_overrides(moto_url="http://m", emulator_url="http://e")
    assert overrides["AMLPROXY_AML_PREDICT_ENDPOINT"] == "http://e"
    assert overrides["AMLPROXY_AWS_ENDPOINT_URL"] == "http://m"
    assert _functions()["S3Function"].environment["AMLPROXY_OUTPUT_BUCKET"] == "amlproxy-input"
    for bad, message in (('[parameters]\nNoSuchParameter = "x"\n', "NoSuchParameter"),
                         ("chaos = 2\n", "probability"), ("timeout = 0\n", "timeout"),
                         ('log_format = "xml"\n', "log_format"),
                         ('[parameters]\nInputBucketName = "x"\n', "InputBucketName")):
        path.write_text(bad)
        with pytest.raises(ConfigurationError, match=message):
            _functions(path)


def test_sns_record_has_the_lambda_shape() -> None:
    envelope = {
        "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Subject": "s", "Message": '{"a": 1}', "Timestamp": "2026-01-01T00:00:00.000Z",
        "SignatureVersion": "1", "Signature": "sig", "SigningCertURL": "https://cert",
        "UnsubscribeURL": "https://unsub",
        "MessageAttributes": {"k": {"Type": "String", "Value": "v"}},
    }
    record = sns_record(envelope, "arn:aws:sns:us-east-1:1:t:sub")
    expected = load_event("sns_notification")["Records"][0]
    assert _shape(record) == _shape(expected) | {"Sns": _shape(expected["Sns"]) | {
        "MessageAttributes": {"k": {"Type": "str", "Value": "str"}}}}
    assert record["Sns"]["SigningCertUrl"] == "https://cert"
    assert record["Sns"]["UnsubscribeUrl"] == "https://unsub"


def test_sqs_record_has_the_lambda_shape() -> None:
    message = {
        "MessageId": "id-1", "ReceiptHandle": "rh", "MD5OfBody": "md5", "Body": "hello",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1",
                       "SenderId": "x", "ApproximateFirstReceiveTimestamp": "2"},
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"}},
    }
    record = sqs_record(message, "arn:aws:sqs:us-east-1:1:q")
    expected = load_event("sqs_receive_message")["Records"][0]
    assert set(record) == set(expected)
    assert set(record["attributes"]) == set(expected["attributes"])
    assert record["messageAttributes"] == {"a": {"stringValue": "v", "stringListValues": [],
                                                 "binaryListValues": [], "dataType": "String"}}


def test_http_api_event_has_the_payload_2_shape_and_parses_back() -> None:
    request = Request("POST", "/predict", "header=false&x=1&x=2",
                      {"content-type": "text/csv", "host": "127.0.0.1:8080",
                       "cookie": "a=1; b=2"}, b"1,2,3\n")
    event = http_api_event(request)
    expected = load_event("apigateway_http_api_proxy")
    assert set(event) | {"pathParameters", "stageVariables"} == set(expected)
    assert set(event["requestContext"]) | {"authentication", "authorizer"} == set(
        expected["requestContext"])
    assert event["cookies"] == ["a=1", "b=2"] and event["body"] == "1,2,3\n"
    parsed = parse_http_event(event)
    assert (parsed.method, parsed.path, parsed.kind) == ("POST", "/predict", "http-api")
    assert parsed.query == {"header": "false", "x": "1,2"}
    assert parsed.body(100) == b"1,2,3\n"
    binary = http_api_event(Request("POST", "/p", "", {"content-type": "image/png"}, b"\xff"))
    assert binary["isBase64Encoded"] is True and binary["body"] == base64.b64encode(
        b"\xff").decode()


def test_http_response_maps_a_function_result() -> None:
    answer = http_response({"statusCode": 503, "headers": {"retry-after": "1"},
                            "body": base64.b64encode(b"{}").decode(), "isBase64Encoded": True,
                            "cookies": ["c=1"]})
    assert answer.status == 503 and answer.body == b"{}"
    assert ("retry-after", "1") in answer.headers and ("Set-Cookie", "c=1") in answer.headers
    inferred = http_response({"hello": "world"})
    assert inferred.status == 200 and inferred.body == b'{"hello":"world"}'


@pytest.fixture
def slow_api() -> Iterator[tuple[ApiServerThread, list[str]]]:
    """The local API server in front of an invoker that takes 0.3 s per request."""
    seen: list[str] = []
    lock = threading.Lock()

    def invoke(event: Mapping[str, Any]) -> Outcome:
        time.sleep(0.3)
        with lock:
            seen.append(event["requestContext"]["http"]["path"])
        return Outcome("ok", orjson.dumps({"statusCode": 200, "body": event["rawPath"],
                                           "headers": {"content-type": "text/plain"}}))

    pool = ThreadPoolExecutor(32)
    server = ApiServerThread(LocalApi(invoke, pool, load_schema("census-income")),
                             "127.0.0.1", 0)
    server.start()
    try:
        yield server, seen
    finally:
        server.stop()
        pool.shutdown()


def test_api_server_serves_requests_concurrently_and_keeps_connections_alive(
        slow_api: tuple[ApiServerThread, list[str]]) -> None:
    server, seen = slow_api

    def client(index: int) -> list[bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        bodies = []
        for n in range(2):
            conn.request("POST", f"/r{index}-{n}", body=b"{}",
                         headers={"Content-Type": "application/json"})
            bodies.append(conn.getresponse().read())
        port = conn.sock.getsockname()[1]
        conn.close()
        return [*bodies, str(port).encode()]

    started = time.perf_counter()
    with ThreadPoolExecutor(20) as clients:
        results = list(clients.map(client, range(20)))
    elapsed = time.perf_counter() - started
    assert [r[:2] for r in results] == [[f"/r{i}-0".encode(), f"/r{i}-1".encode()]
                                        for i in range(20)]
    assert len(seen) == 40
    assert elapsed < 2.0, f"40 requests of 0.3 s each took {elapsed:.2f} s: not concurrent"
    page = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    page.request("GET", "/")
    answer = page.getresponse()
    assert answer.status == 200 and answer.getheader("content-type").startswith("text/html")
    html = answer.read().decode()
    assert '<select id="field-workclass"' in html and 'max="150"' in html
    fields = re.findall(r'data-field="([^"]+)"', html)
    assert fields == list(load_schema("census-income").feature_names)
    assert "income" not in fields
    assert len(seen) == 40  # the page is not a function invocation


def test_http_core_answers_500_when_a_deferred_answer_fails() -> None:
    """An app's future that raises becomes a 500, and the connection keeps working."""
    pool = ThreadPoolExecutor(2)

    def app(request: Request) -> Any:
        def work() -> Response:
            if request.path == "/boom":
                raise RuntimeError("boom")
            return Response(200, b"fine")
        return asyncio.get_running_loop().run_in_executor(pool, work)

    server = ApiServerThread(app, "127.0.0.1", 0)  # type: ignore[arg-type]
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/boom")
        first = conn.getresponse()
        assert (first.status, first.read()) == (500, b'{"message":"internal error"}')
        conn.request("GET", "/ok")
        second = conn.getresponse()
        assert (second.status, second.read()) == (200, b"fine")
        conn.close()
    finally:
        server.stop()
        pool.shutdown()


def test_up_flags_reach_the_service_settings() -> None:
    from amlproxy.local.cli import build_parser
    from amlproxy.local.stack import service_settings

    args = build_parser().parse_args(["up", "--timeout", "10", "--chaos", "0.2", "--seed",
                                      "7", "--log-format", "json", "--log-output",
                                      "telemetry", "--runtime-client", "builtin", "--quiet"])
    config = load_config(None, timeout=args.timeout, chaos=args.chaos, seed=args.seed,
                         log_format=args.log_format, log_output=args.log_output,
                         runtime_client=args.runtime_client, echo_logs=args.echo_logs)
    settings = service_settings(config)
    assert settings.timeout_s == 10 and settings.chaos.probability == 0.2
    assert settings.chaos.seed == 7 and config.echo_logs is False
    assert settings.workers.log_format == "JSON"
    assert settings.workers.log_output == "telemetry"
    assert settings.workers.runtime_client == "builtin"
    default = service_settings(load_config())
    assert default.workers.runtime_client in ("awslambdaric", "builtin")
    assert default.timeout_s is None and default.chaos.probability == 0
