"""Every sample event kind (tests/events: all that ``sam local generate-event`` renders, and
a function URL event) fed to every handler, plus non-object and malformed payloads: each
handler scores its own kinds correctly and refuses every other one with
:class:`UnsupportedEventError` naming what arrived. No silent success, no crash, and
nothing written for a refused event (no row keyed by an empty id)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from amlproxy.errors import UnsupportedEventError
from amlproxy.proxy import Proxy
from amlproxy.triggers import api, chunks, s3, sns, sqs
from tests.events import LambdaContext, event_names, load_event, use_env
from tests.fixtures.aws import bucket_and_table
from tests.fixtures.emulator import HIGH_INCOME_ROW, LOW_INCOME_ROW, census_record

BUCKET = "amlproxy-routing"
TABLE = "amlproxy-routing-results"
CHUNK_TABLE = "amlproxy-routing-chunks"  # (not created: nothing may read it)
HANDLERS: dict[str, Callable[[Any, Any], Any]] = {
    "S3": s3.handler, "SNS": sns.handler, "SQS": sqs.handler, "API": api.handler,
    "chunk": chunks.handler,
}
OWN = {  # the S3 handler owns the SQS form only when the bodies are S3 notifications
    "S3": {"s3_put", "rekognition_s3_request", "sqs_s3_notification"},
    "SNS": {"sns_notification"},
    "SQS": {"sqs_receive_message", "sqs_s3_notification"},  # (an S3 notification: a pointer)
    "chunk": {"sqs_chunk_message"},
    "API": {"apigateway_aws_proxy", "apigateway_http_api_proxy", "function_url", "alb_request"},
}
RECORDS = [census_record(LOW_INCOME_ROW), census_record(HIGH_INCOME_ROW)]
NOT_EVENTS: list[Any] = [None, [], [{}], "x", "", 42, 1.5, True, {}, {"Records": None},
                         {"Records": []}, {"Records": "x"}, {"Records": {}}, {"Records": ["x"]},
                         {"Records": [{}]}, {"Records": [None]}, {"Records": [[]]}]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str) -> dict[str, Any]:
    s3_client, ddb = bucket_and_table(aws_client, BUCKET, TABLE)
    use_env(monkeypatch, backend="local", aws_endpoint_url=moto_reset, dynamodb_table=TABLE,
            output_bucket=BUCKET, region="us-east-1", chunk_table=CHUNK_TABLE)
    return {"s3": s3_client, "ddb": ddb}


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local model and no sinks: for what is refused or answered before any output."""
    use_env(monkeypatch, backend="local", chunk_table=CHUNK_TABLE, region="us-east-1")


def expected_labels() -> list[str]:
    with Proxy.from_env(backend="local") as proxy:
        return [proxy.predict(record).label for record in RECORDS]


def items(ddb: Any) -> dict[tuple[str, int], str]:
    """(source, line) -> label of the results table's items."""
    found = {}
    for item in ddb.scan(TableName=TABLE)["Items"]:
        found[(item["pk"]["S"], int(item["sk"]["N"]))] = item.get("label", {}).get("S", "")
    return found


def outcome(name: str, handler: Callable[[Any, Any], Any], event: Any) -> str:
    """"refused" (with a message naming the handler), "answered" or "crashed: ..."."""
    try:
        answer = handler(event, LambdaContext())
    except UnsupportedEventError as exc:
        assert str(exc).startswith(f"the {name} handler got ") and exc.arrived
        return "refused"
    except Exception as exc:
        return f"crashed: {type(exc).__name__}: {exc}"
    return f"answered: {str(answer)[:200]}"


# ------------------------------------------------------------------ foreign events


@pytest.mark.parametrize("name", list(HANDLERS))
def test_every_foreign_kind_and_non_event_is_refused_clearly(stack: dict[str, Any], name: str
                                                              ) -> None:
    handler = HANDLERS[name]
    kinds = [kind for kind in event_names() if kind not in OWN[name]]
    results = {kind: outcome(name, handler, load_event(kind)) for kind in kinds}
    results.update({f"payload {value!r}": outcome(name, handler, value) for value in NOT_EVENTS})
    wrong = {kind: result for kind, result in results.items() if result != "refused"}
    assert wrong == {}, f"{len(wrong)} of {len(results)} not refused"
    assert len(kinds) == 71 - len(OWN[name])
    assert items(stack["ddb"]) == {}  # nothing written, under no key
    assert stack["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


@pytest.mark.parametrize(("name", "event", "message"), [
    ("SQS", load_event("s3_put"),
     "the SQS handler got an S3 event (Records[0].eventSource 'aws:s3')"),
    ("SNS", load_event("sqs_receive_message"),
     "the SNS handler got an SQS event (Records[0].eventSource 'aws:sqs')"),
    ("S3", load_event("sns_notification"),
     "the S3 handler got an SNS event (Records[0].EventSource 'aws:sns')"),
    ("S3", load_event("s3_delete"), "the S3 handler got an S3 'ObjectRemoved:Delete' event "
     "(Records[0].eventName): only ObjectCreated events are scored"),
    ("SQS", load_event("cloudwatch_scheduled_event"),
     "the SQS handler got an EventBridge event (detail-type 'Scheduled Event')"),
    ("API", load_event("apigateway_authorizer"), "the API handler got an API Gateway TOKEN "
     "authorizer event (type 'TOKEN', methodArn)"),
    ("API", load_event("sqs_receive_message"),
     "the API handler got an SQS event (Records[0].eventSource 'aws:sqs')"),
    ("S3", load_event("sqs_receive_message"), "the S3 handler got an SQS event whose "
     "messages are not S3 event notifications (Records[0].body 'Hello from SQS!')"),
    ("SQS", load_event("sqs_chunk_message"), "the SQS handler got an SQS event of chunk "
     "messages (Records[0].body): they are the chunk worker's"),
    ("chunk", load_event("sqs_receive_message"), "the chunk handler got an SQS event whose "
     "messages are not chunk messages (Records[0].body 'Hello from SQS!')"),
    ("chunk", load_event("s3_put"),
     "the chunk handler got an S3 event (Records[0].eventSource 'aws:s3')"),
    ("SNS", None, "the SNS handler got JSON null, not an event object"),
    ("S3", [], "the S3 handler got a JSON array of 0 item(s), not an event object"),
    ("SQS", "hello", "the SQS handler got a JSON string ('hello'), not an event object"),
    ("SQS", {"Records": ["x"]},
     "the SQS handler got an object whose Records[0] is a string, not an object"),
    ("SQS", {"Records": [{}]},
     "the SQS handler got an object whose Records[0] has no eventSource (keys: none)"),
    ("S3", {"Records": []}, "the S3 handler got an event with an empty Records array"),
    ("SNS", load_event("codecommit_repository"),
     "the SNS handler got a CodeCommit event (Records[0].eventSource 'aws:codecommit')"),
    ("S3", load_event("batch_get_job"),
     "the S3 handler got an object with the keys 'jobName', 'jobQueue', 'jobDefinition'"),
])
def test_the_refusal_names_what_arrived(local: None, name: str, event: Any, message: str
                                        ) -> None:
    with pytest.raises(UnsupportedEventError) as raised:
        HANDLERS[name](event, LambdaContext())
    assert str(raised.value) == message


def malformed_own_events() -> list[tuple[str, Any, str]]:
    s3_record = load_event("s3_put")["Records"][0]
    sqs_record = load_event("sqs_receive_message")["Records"][0]
    sns_record = load_event("sns_notification")["Records"][0]
    no_key = json.loads(json.dumps(s3_record))
    del no_key["s3"]["object"]["key"]
    mixed = {"Records": [sqs_record, s3_record]}
    chunk_record = load_event("sqs_chunk_message")["Records"][0]
    old_chunk = json.dumps({**json.loads(chunk_record["body"]), "v": 2})
    queued = load_event("sqs_s3_notification")["Records"][0]
    return [
        ("S3", {"Records": [no_key]}, "Records[0].s3.object.key is missing"),
        ("S3", {"Records": [{**s3_record, "s3": "x"}]}, "Records[0].s3.bucket.name is missing"),
        ("SQS", {"Records": [{**sqs_record, "messageId": ""}]}, "Records[0].messageId is empty"),
        ("SQS", {"Records": [{k: v for k, v in sqs_record.items() if k != "body"}]},
         "Records[0].body is missing"),
        ("SQS", {"Records": [{**sqs_record, "body": {"a": 1}}]},
         "Records[0].body is an object, not a string"),
        ("SQS", mixed, "an SQS event mixed with another kind: an S3 event "
         "(Records[1].eventSource 'aws:s3')"),
        ("chunk", {"Records": [{**chunk_record, "body": old_chunk}]},
         "a malformed chunk message: Records[0].body: chunk message version 2"),
        ("chunk", {"Records": [chunk_record, sqs_record]},
         "an SQS event whose messages are not chunk messages (Records[1].body"),
        ("S3", {"Records": [queued, sqs_record]}, "an SQS event mixing S3 event "
         "notifications and other messages (Records[1].body 'Hello from SQS!')"),
        ("SNS", {"Records": [{**sns_record, "Sns": None}]}, "Records[0].Sns.MessageId is missing"),
        ("SNS", {"Records": [{**sns_record, "Sns": {**sns_record["Sns"], "MessageId": 7}}]},
         "Records[0].Sns.MessageId is a number, not a string"),
    ]


def test_a_malformed_own_event_is_refused_before_any_work(stack: dict[str, Any]) -> None:
    for name, event, problem in malformed_own_events():
        with pytest.raises(UnsupportedEventError) as raised:
            HANDLERS[name](event, LambdaContext())
        assert problem in str(raised.value) and raised.value.own_kind, raised.value
    assert items(stack["ddb"]) == {}  # the valid records before the bad ones: not scored


# ------------------------------------------------------------------ own events


@pytest.mark.parametrize("kind", sorted(OWN["S3"]))
def test_the_s3_handler_scores_its_own_kinds(stack: dict[str, Any], kind: str) -> None:
    body = ("\n".join(",".join(r.values()) for r in RECORDS) + "\n").encode()
    put = stack["s3"].put_object(Bucket=BUCKET, Key="input/my rows.csv", Body=body)
    event = load_event(kind)
    queued = kind == "sqs_s3_notification"  # S3 -> SQS -> the S3 handler
    notification = json.loads(event["Records"][0]["body"]) if queued else event
    record = notification["Records"][0]
    record["s3"]["bucket"]["name"] = BUCKET
    record["s3"]["object"]["key"] = "input/my+rows.csv"  # as S3 encodes a space
    record["s3"]["object"]["eTag"] = put["ETag"].strip('"')
    if queued:
        event["Records"][0]["body"] = json.dumps(notification)

    answer = s3.handler(event, LambdaContext())

    if queued:
        assert answer == {"batchItemFailures": []}
    else:
        assert answer["records"] == {"total": 2, "ok": 2, "rejected": 0, "failed": 0}
    source = f"s3://{BUCKET}/input/my rows.csv"
    assert items(stack["ddb"]) == {(source, 1): expected_labels()[0],
                                   (source, 2): expected_labels()[1]}


def test_the_sns_handler_scores_its_own_kind(stack: dict[str, Any]) -> None:
    event = load_event("sns_notification")
    event["Records"][0]["Sns"]["Message"] = json.dumps(RECORDS)
    message_id = event["Records"][0]["Sns"]["MessageId"]

    summary = sns.handler(event, LambdaContext())

    assert [(m["status"], m["ok"]) for m in summary["messages"]] == [("scored", 2)]
    labels = expected_labels()
    assert items(stack["ddb"]) == {(f"sns:{message_id}", 1): labels[0],
                                   (f"sns:{message_id}", 2): labels[1]}


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_sqs_handler_scores_its_own_kind(stack: dict[str, Any], wrapped: bool) -> None:
    event = load_event("sqs_receive_message")
    record = event["Records"][0]
    body = json.dumps(RECORDS)
    source = f"sqs:{record['messageId']}"
    if wrapped:  # an SNS notification delivered to SQS (raw message delivery off)
        notification = load_event("sns_notification")["Records"][0]["Sns"]
        body = json.dumps({**notification, "Message": body})
        source = f"sns:{notification['MessageId']}"
    record["body"] = body

    assert sqs.handler(event, LambdaContext()) == {"batchItemFailures": []}

    labels = expected_labels()
    assert items(stack["ddb"]) == {(source, 1): labels[0], (source, 2): labels[1]}


@pytest.mark.parametrize("kind", sorted(OWN["API"]))
def test_the_api_handler_scores_its_own_kinds(stack: dict[str, Any], kind: str) -> None:
    event = load_event(kind)
    body = json.dumps(RECORDS[1])
    if "rawPath" in event:
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/predict"
        event["requestContext"]["http"]["method"] = "POST"
    else:
        event["httpMethod"], event["path"] = "POST", "/predict"
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    event["headers"] = {**headers, "content-type": "application/json"}
    if kind == "alb_request":  # the sample's body is base64, as an ALB sends a binary one
        event["body"], event["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = body, False

    answer = api.handler(event, LambdaContext())

    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["prediction"]["label"] == expected_labels()[1]
    if kind == "alb_request":
        assert answer["statusDescription"] == "200 OK"
    else:  # API Gateway answers 502 to a member it does not know
        assert set(answer) == {"statusCode", "headers", "body", "isBase64Encoded"}


def test_the_alb_multi_value_form(local: None) -> None:
    event = load_event("alb_request")
    headers = event.pop("headers")
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["multiValueHeaders"]["content-type"] = ["application/json"]
    event["multiValueQueryStringParameters"] = {"header": ["x"]}
    event.pop("queryStringParameters")
    event.update(path="/schema", httpMethod="GET", body="", isBase64Encoded=False)

    answer = api.handler(event, LambdaContext())

    assert answer["statusCode"] == 200 and answer["statusDescription"] == "200 OK"
    assert answer["multiValueHeaders"]["content-type"] == ["application/json"]
    assert "headers" not in answer


@pytest.mark.parametrize(("change", "problem"), [
    ({"headers": ["content-type"]}, "headers is an array, not an object"),
    ({"headers": {"content-type": {"a": 1}}}, "headers['content-type'] is an object"),
    ({"body": {"age": 1}}, "body is an object, not a string"),
    ({"httpMethod": 5}, "httpMethod is a number"),
    ({"httpMethod": ""}, "httpMethod is empty"),
    ({"isBase64Encoded": "yes"}, "isBase64Encoded is a string, not a boolean"),
    ({"queryStringParameters": "header=true"}, "queryStringParameters is a string"),
    ({"requestContext": "x"}, "requestContext is a string, not an object"),
    ({"requestContext": {"http": None}, "version": "2.0"}, "requestContext.http is missing"),
    ({"requestContext": {"http": {"path": "/predict"}}}, "requestContext.http.method is missing"),
])
def test_a_malformed_http_event_is_a_400(local: None, change: dict[str, Any], problem: str
                                         ) -> None:
    event = {**load_event("apigateway_aws_proxy"), **change}
    if "requestContext" in change and isinstance(change["requestContext"], dict):
        event.pop("httpMethod")
        event["rawPath"] = "/predict"

    answer = api.handler(event, LambdaContext())

    assert answer["statusCode"] == 400
    error = json.loads(answer["body"])["error"]
    assert error["code"] == "BadRequest" and problem in error["reason"]
