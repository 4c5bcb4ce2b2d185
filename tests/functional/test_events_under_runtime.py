"""Event routing under the local Lambda service and awslambdaric: every handler (S3, SNS,
SQS, API) in its own worker, fed every sample event kind (tests/events) and the
non-object and malformed payloads of :mod:`test_event_routing`, as Lambda would deliver
them (the payload over the Runtime API, the answer or error posted back).

- Own events are scored: items in the moto server's table, keyed by source and line.
- Every foreign or malformed event is an invocation error of type
  ``UnsupportedEventError`` whose message names what arrived (the API answers a
  malformed HTTP request 400); 0 silent successes, nothing written.
- 0 crashes: one worker per function served every event (no kill, no cold start, no
  other error type).
- Every log record is one JSON line, in each of the four log modes (Text or JSON format,
  on stdout or the telemetry fd); awslambdaric's own report of a raised error is the only
  other record (``[ERROR] UnsupportedEventError: ...`` in the Text format, as Lambda
  prints it), one per refusal.

One service per log mode serves the module; its workers are reused between invocations.
The default run takes the Text format on stdout (what the Runtime Interface Emulator and
``sam local`` show); the other three modes are in the slow suite.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from amlproxy.local.functions import FunctionSpec
from amlproxy.local.pool import ServiceSettings
from amlproxy.local.runtime_api import Outcome
from amlproxy.local.service import LambdaService
from amlproxy.local.worker_logs import LogRecord
from amlproxy.local.workers import WorkerSettings, awslambdaric_available
from tests.events import event_names, load_event
from tests.fixtures.aws import bucket_and_table
from tests.functional.test_event_routing import (
    NOT_EVENTS,
    OWN,
    RECORDS,
    expected_labels,
    malformed_own_events,
)

pytestmark = pytest.mark.skipif(not awslambdaric_available(), reason="awslambdaric: Linux only")

BUCKET = "amlproxy-routing-runtime"
TABLE = "amlproxy-routing-runtime-results"
FUNCTIONS = {"S3": "amlproxy.triggers.s3.handler", "SNS": "amlproxy.triggers.sns.handler",
             "SQS": "amlproxy.triggers.sqs.handler", "API": "amlproxy.triggers.api.handler",
             "chunk": "amlproxy.triggers.chunks.handler"}
CHUNK_TABLE = "amlproxy-routing-runtime-chunks"  # (not created: nothing may read it)
LOG_MODES = [("Text", "stdout"),
             pytest.param(("Text", "telemetry"), marks=pytest.mark.slow),
             pytest.param(("JSON", "stdout"), marks=pytest.mark.slow),
             pytest.param(("JSON", "telemetry"), marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=LOG_MODES, ids=lambda mode: "-".join(mode))
def service(request: pytest.FixtureRequest, moto_server: str) -> Iterator[LambdaService]:
    log_format, output = request.param
    environment = {"AMLPROXY_BACKEND": "local", "AMLPROXY_AWS_ENDPOINT_URL": moto_server,
                   "AMLPROXY_DYNAMODB_TABLE": TABLE, "AMLPROXY_OUTPUT_BUCKET": BUCKET,
                   "AMLPROXY_REGION": "us-east-1", "AMLPROXY_CHUNK_TABLE": CHUNK_TABLE}
    specs = [FunctionSpec(name, handler, timeout_s=30, environment=environment)
             for name, handler in FUNCTIONS.items()]
    running = LambdaService(specs, ServiceSettings(workers=WorkerSettings(
        runtime_client="awslambdaric", log_format=log_format, log_output=output)))
    failures = running.prewarm()  # the init phase of each: one worker per function
    try:
        assert failures == {}, {name: o.json() for name, o in failures.items()}
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(aws_client: Any) -> dict[str, Any]:
    s3_client, ddb = bucket_and_table(aws_client, BUCKET, TABLE)
    return {"s3": s3_client, "ddb": ddb}


def items(ddb: Any) -> dict[tuple[str, int], str]:
    """(source, line) -> label of the results table's items."""
    return {(i["pk"]["S"], int(i["sk"]["N"])): i.get("label", {}).get("S", "")
            for i in ddb.scan(TableName=TABLE)["Items"]}


def refusal(name: str, outcome: Outcome) -> str:
    """"refused", or what happened instead (an answer, another error, a kill)."""
    error = outcome.json()
    if outcome.kind == "error" and outcome.error_type == "UnsupportedEventError":
        message = error.get("errorMessage", "")
        return "refused" if message.startswith(f"the {name} handler got ") and \
            len(message) > len(f"the {name} handler got ") else f"unclear: {message}"
    return f"{outcome.kind}: {outcome.payload[:200]!r}"


def refusals(service: LambdaService, name: str, events: dict[str, Any]) -> dict[str, str]:
    return {label: refusal(name, service.invoke(name, event)) for label, event in events.items()}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_foreign_kind_and_non_event_is_an_unsupported_event_error(
        service: LambdaService, stack: dict[str, Any], name: str) -> None:
    events = {kind: load_event(kind) for kind in event_names() if kind not in OWN[name]}
    events.update({f"payload {value!r}": value for value in NOT_EVENTS})

    results = refusals(service, name, events)

    wrong = {label: result for label, result in results.items() if result != "refused"}
    assert wrong == {}, f"{len(wrong)} of {len(results)} not refused"
    assert len(results) == len(event_names()) - len(OWN[name]) + len(NOT_EVENTS)
    assert items(stack["ddb"]) == {}  # nothing written, under no key
    assert stack["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_a_malformed_own_event_is_refused_before_any_work(service: LambdaService,
                                                         stack: dict[str, Any]) -> None:
    for name, event, problem in malformed_own_events():
        outcome = service.invoke(name, event)
        assert refusal(name, outcome) == "refused"
        assert problem in outcome.json()["errorMessage"]
    assert items(stack["ddb"]) == {}


def test_a_malformed_http_event_is_a_400(service: LambdaService) -> None:
    for change in ({"headers": ["content-type"]}, {"body": {"age": 1}}, {"httpMethod": 5},
                   {"isBase64Encoded": "yes"}, {"requestContext": "x"}):
        outcome = service.invoke("API", {**load_event("apigateway_aws_proxy"), **change})
        assert outcome.kind == "ok", outcome.payload
        answer = outcome.json()
        assert answer["statusCode"] == 400, answer
        assert json.loads(answer["body"])["error"]["code"] == "BadRequest"


@pytest.mark.parametrize("kind", sorted(OWN["S3"]))
def test_the_s3_function_scores_its_own_kinds(service: LambdaService, stack: dict[str, Any],
                                               kind: str) -> None:
    body = ("\n".join(",".join(r.values()) for r in RECORDS) + "\n").encode()
    put = stack["s3"].put_object(Bucket=BUCKET, Key="input/my rows.csv", Body=body)
    event = load_event(kind)
    queued = kind == "sqs_s3_notification"  # S3 -> SQS -> the S3 function
    notification = json.loads(event["Records"][0]["body"]) if queued else event
    record = notification["Records"][0]
    record["s3"]["bucket"]["name"] = BUCKET
    record["s3"]["object"]["key"] = "input/my+rows.csv"  # as S3 encodes a space
    record["s3"]["object"]["eTag"] = put["ETag"].strip('"')
    if queued:
        event["Records"][0]["body"] = json.dumps(notification)

    outcome = service.invoke("S3", event)

    assert outcome.kind == "ok", outcome.payload
    if queued:
        assert outcome.json() == {"batchItemFailures": []}
    else:
        assert outcome.json()["records"] == {"total": 2, "ok": 2, "rejected": 0, "failed": 0}
    source = f"s3://{BUCKET}/input/my rows.csv"
    labels = expected_labels()
    assert items(stack["ddb"]) == {(source, 1): labels[0], (source, 2): labels[1]}


def test_the_sns_function_scores_its_own_kind(service: LambdaService, stack: dict[str, Any]
                                              ) -> None:
    event = load_event("sns_notification")
    event["Records"][0]["Sns"]["Message"] = json.dumps(RECORDS)
    message_id = event["Records"][0]["Sns"]["MessageId"]

    outcome = service.invoke("SNS", event)

    assert outcome.kind == "ok", outcome.payload
    assert [(m["status"], m["ok"]) for m in outcome.json()["messages"]] == [("scored", 2)]
    labels = expected_labels()
    assert items(stack["ddb"]) == {(f"sns:{message_id}", 1): labels[0],
                                   (f"sns:{message_id}", 2): labels[1]}


def test_the_sqs_function_scores_its_own_kind(service: LambdaService, stack: dict[str, Any]
                                              ) -> None:
    event = load_event("sqs_receive_message")
    plain = event["Records"][0]
    notification = load_event("sns_notification")["Records"][0]["Sns"]
    wrapped = {**plain, "messageId": "wrapped-1",  # an SNS notification delivered to SQS
               "body": json.dumps({**notification, "Message": json.dumps(RECORDS)})}
    plain["body"] = json.dumps(RECORDS)
    event["Records"].append(wrapped)

    outcome = service.invoke("SQS", event)

    assert (outcome.kind, outcome.json()) == ("ok", {"batchItemFailures": []})
    labels = expected_labels()
    assert items(stack["ddb"]) == {
        (source, line): labels[line - 1]
        for source in (f"sqs:{plain['messageId']}", f"sns:{notification['MessageId']}")
        for line in (1, 2)}


def http_request(kind: str, request_id: str) -> dict[str, Any]:
    """The sample event of ``kind`` as a POST /predict of one record."""
    event = load_event(kind)
    body = json.dumps(RECORDS[1])
    if "rawPath" in event:
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/predict"
        event["requestContext"]["http"]["method"] = "POST"
    else:
        event["httpMethod"], event["path"] = "POST", "/predict"
    if "requestContext" in event and "elb" not in event["requestContext"]:
        event["requestContext"]["requestId"] = request_id
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    event["headers"] = {**headers, "content-type": "application/json"}
    if kind == "alb_request":  # the sample's body is base64, as an ALB sends a binary one
        event["body"], event["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = body, False
    return event


def test_the_api_function_scores_its_own_kinds(service: LambdaService, stack: dict[str, Any]
                                               ) -> None:
    label = expected_labels()[1]
    for kind in sorted(OWN["API"]):
        outcome = service.invoke("API", http_request(kind, f"req-{kind}"))
        assert outcome.kind == "ok", outcome.payload
        answer = outcome.json()
        assert answer["statusCode"] == 200, answer["body"]
        assert json.loads(answer["body"])["prediction"]["label"] == label
    found = items(stack["ddb"])
    assert len(found) == len(OWN["API"]) and set(found.values()) == {label}
    gateway = {kind for kind in OWN["API"] if kind != "alb_request"}  # an ALB sends no id
    assert {(f"api:req-{kind}", 1) for kind in gateway} <= set(found)


# ------------------------------------------------------------------ logs


def settled_records(service: LambdaService, function: str) -> list[LogRecord]:
    """The records of ``function`` once its log readers have caught up."""
    count = -1
    while True:
        records = service.logs.records(function)
        if len(records) == count:
            return records
        count = len(records)
        time.sleep(0.2)


def runtime_report(record: LogRecord, log_format: str) -> bool:
    """Is ``record`` awslambdaric's own report of an error the handler raised?"""
    if log_format == "Text":  # "[ERROR] Type: message\rTraceback ...": one line on stdout,
        # one frame (the traceback's newlines inside) on the telemetry fd
        return record.text.startswith("[ERROR] UnsupportedEventError: ") and \
            (record.output == "telemetry" or "\n" not in record.text)
    doc = json.loads(record.text)
    return doc.get("errorType") == "UnsupportedEventError" and "message" not in doc


def test_no_worker_died_and_every_record_is_one_json_line(service: LambdaService) -> None:
    """Last in the module: what every invocation above left behind."""
    for name in FUNCTIONS:  # at least one refusal each, whatever ran before
        assert refusal(name, service.invoke(name, load_event("cloudwatch_logs"))) == "refused"
    for name in FUNCTIONS:  # 0 crashes: the first worker served every event
        status = service.pool(name).status()
        assert (status["cold_starts"], status["timeouts"], status["crashes"]) == (1, 0, 0)
        assert len(status["workers"]) == 1 and status["errors"] >= 1, status
    log_format = service.settings.workers.log_format or "Text"
    for function in FUNCTIONS:
        records = settled_records(service, function)
        reports = [r for r in records if runtime_report(r, log_format)]
        ours = [r for r in records if r not in reports]
        broken = []
        for record in ours:
            try:
                doc = json.loads(record.text)
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or "\n" in record.text.rstrip("\n"):
                broken.append(record.text[:300])
        assert broken == [], f"{function}: {len(broken)} of {len(ours)} records not one JSON line"
        refused = [json.loads(r.text) for r in ours if "event refused" in r.text]
        assert len(refused) == len(reports) > 0  # one record of ours per raised refusal
        assert all(doc["level"] == "ERROR" and doc["request_id"] for doc in refused)
        assert all(doc["function"] == function for doc in refused)
