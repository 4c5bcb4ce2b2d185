"""The SQS trigger: partial batch failures with the endpoint emulator injecting faults,
bad input rejected (not retried), SNS-wrapped bodies, FIFO order; outputs in moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amlproxy.triggers import sqs
from amlproxy.triggers._runtime import reset_runtime
from tests.events import LambdaContext, load_event, use_env
from tests.fixtures.aws import bucket_and_table
from tests.fixtures.emulator import census_record

BUCKET = "amlproxy-out"
TABLE = "amlproxy-results"


def sqs_event(*messages: tuple[str, Any], queue: str = "amlproxy-records") -> dict[str, Any]:
    """An SQS event (SAM-generated shape) with (messageId, body) messages."""
    template = load_event("sqs_receive_message")["Records"][0]
    records = []
    for message_id, body in messages:
        record = json.loads(json.dumps(template))
        record["messageId"] = message_id
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
        records.append(record)
    return {"Records": records}


def statuses(ddb: Any) -> dict[str, set[str]]:
    """source -> the statuses of its items."""
    found: dict[str, set[str]] = {}
    for item in ddb.scan(TableName=TABLE)["Items"]:
        found.setdefault(item["pk"]["S"], set()).add(item["status"]["S"])
    return found


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str, emu: Any
          ) -> dict[str, Any]:
    s3, ddb = bucket_and_table(aws_client, BUCKET, TABLE)
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE,
            output_bucket=BUCKET, backend="aml", aml_model_id=emu.model_id,
            aml_predict_endpoint=emu.url, endpoint_url=emu.url, region="us-east-1",
            max_attempts=1, concurrency=1)
    return {"s3": s3, "ddb": ddb}


def test_partial_batch_failure(stack: dict[str, Any], emu: Any) -> None:
    emu.set_faults(error_rate=0.5, seed=7)
    messages = [(f"m{i}", census_record()) for i in range(12)]
    messages.append(("m-bad", {**census_record(), "age": "old"}))  # bad input: rejected

    answer = sqs.handler(sqs_event(*messages), LambdaContext())

    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    found = statuses(stack["ddb"])
    expected = {mid for mid, _ in messages if found[f"sqs:{mid}"] == {"failed"}}
    assert failed == expected
    assert 0 < len(failed) < 12  # some failed (reported), some did not (not reported)
    assert "m-bad" not in failed and found["sqs:m-bad"] == {"rejected"}
    body = stack["s3"].get_object(Bucket=BUCKET, Key="rejects/sqs/m-bad.rejects.jsonl")["Body"]
    assert "age" in json.loads(body.read())["reasons"][0]

    emu.reset()  # the redelivered messages succeed and overwrite their items
    retry = [(mid, body) for mid, body in messages if mid in failed]
    assert sqs.handler(sqs_event(*retry), LambdaContext()) == {"batchItemFailures": []}
    assert all(statuses(stack["ddb"])[f"sqs:{mid}"] == {"ok"} for mid in failed)


def test_bad_bodies_are_not_failures(stack: dict[str, Any]) -> None:
    event = sqs_event(("a", "not json"), ("b", "[]"), ("c", {"records": "x"}), ("d", "[1, 2]"))
    assert sqs.handler(event, LambdaContext()) == {"batchItemFailures": []}
    found = statuses(stack["ddb"])
    assert all(found[f"sqs:{m}"] == {"rejected"} for m in "abcd")


def test_sns_wrapped_body(stack: dict[str, Any]) -> None:
    notification = load_event("sns_notification")["Records"][0]["Sns"]
    wrapped = {
        "Type": "Notification",
        "MessageId": "sns-123",
        "TopicArn": notification["TopicArn"],
        "Message": json.dumps([census_record(), census_record()]),
        "Timestamp": notification["Timestamp"],
    }
    answer = sqs.handler(sqs_event(("q-1", wrapped)), LambdaContext())
    assert answer == {"batchItemFailures": []}
    assert statuses(stack["ddb"]) == {"sns:sns-123": {"ok"}}
    keys = [o["Key"] for o in stack["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "output/sns/sns-123.predictions.jsonl" in keys


def test_fifo_stops_at_the_first_failure(stack: dict[str, Any], emu: Any) -> None:
    emu.set_faults(error_rate=1.0)
    event = sqs_event(("f1", census_record()), ("f2", census_record()), ("f3", "bad"),
                      queue="amlproxy-records.fifo")
    answer = sqs.handler(event, LambdaContext())
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == ["f1", "f2", "f3"]
    assert emu.endpoint_counts(emu.model_id)["requests"] == 1  # f2 and f3 left for later


def test_deadline_reports_unprocessed_messages(stack: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMLPROXY_DEADLINE_MARGIN_S", "10")  # more than the time left
    reset_runtime()
    answer = sqs.handler(sqs_event(("d1", census_record()), ("d2", census_record())),
                         LambdaContext(timeout_s=5.0))
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == ["d1", "d2"]
    assert "sqs:d1" not in statuses(stack["ddb"])  # not attempted: nothing written


def test_the_default_margin_fits_a_short_timeout(stack: dict[str, Any]) -> None:
    answer = sqs.handler(sqs_event(("d1", census_record()), ("d2", census_record())),
                         LambdaContext(timeout_s=5.0))  # margin: 1 s, a fifth of it
    assert answer == {"batchItemFailures": []}
    assert statuses(stack["ddb"]) == {"sqs:d1": {"ok"}, "sqs:d2": {"ok"}}
