"""The SNS trigger: one record, a list, {"records": [...]}, S3 pointers; outputs in moto's
S3 and DynamoDB over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amlproxy.errors import EventIncompleteError
from amlproxy.sinks.dynamodb import table_definition
from amlproxy.triggers import sns
from tests.events import LambdaContext, load_event, use_env
from tests.fixtures.emulator import HIGH_INCOME_ROW, census_record

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
BUCKET = "amlproxy-out"
TABLE = "amlproxy-results"


def sns_event(*messages: tuple[str, Any]) -> dict[str, Any]:
    """An SNS event (SAM-generated shape) with (MessageId, message) notifications;
    a message that is not a str is sent as its JSON."""
    template = load_event("sns_notification")["Records"][0]
    records = []
    for message_id, message in messages:
        record = json.loads(json.dumps(template))
        record["Sns"]["MessageId"] = message_id
        record["Sns"]["Message"] = message if isinstance(message, str) else json.dumps(message)
        records.append(record)
    return {"Records": records}


def lines(s3: Any, key: str) -> list[dict[str, Any]]:
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in text.splitlines()]


def items(ddb: Any, source: str) -> list[dict[str, Any]]:
    answer = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                       ExpressionAttributeValues={":pk": {"S": source}})
    return list(answer["Items"])


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str) -> dict[str, Any]:
    s3, ddb = aws_client("s3"), aws_client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(**table_definition(TABLE))
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE,
            output_bucket=BUCKET, backend="local")
    return {"s3": s3, "ddb": ddb}


def test_one_record_a_list_and_wrapped_records(stack: dict[str, Any]) -> None:
    s3, ddb = stack["s3"], stack["ddb"]
    high = census_record(HIGH_INCOME_ROW)
    event = sns_event(
        ("m-one", census_record()),
        ("m-list", [census_record(), {**high, "age": "?"}]),
        ("m-wrapped", {"records": [high, high, "not a record"]}),
    )

    summary = sns.handler(event, LambdaContext())

    got = {m["source"]: (m["ok"], m["rejected"], m["failed"]) for m in summary["messages"]}
    assert got == {"sns:m-one": (1, 0, 0), "sns:m-list": (1, 1, 0), "sns:m-wrapped": (2, 1, 0)}
    assert [r["line"] for r in lines(s3, "output/sns/m-wrapped.predictions.jsonl")] == [1, 2]
    reject = lines(s3, "rejects/sns/m-wrapped.rejects.jsonl")[0]
    assert reject["line"] == 3 and "not a JSON object" in reject["reasons"][0]
    assert lines(s3, "rejects/sns/m-list.rejects.jsonl")[0]["reasons"][0].startswith("age")
    assert [i["sk"]["N"] for i in items(ddb, "sns:m-list")] == ["1", "2"]

    sns.handler(event, LambdaContext())  # a redelivery rewrites the same keys
    assert len(items(ddb, "sns:m-list")) == 2
    assert len(s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == 6


def test_an_s3_pointer_is_scored_like_the_s3_trigger(stack: dict[str, Any]) -> None:
    s3 = stack["s3"]
    s3.put_object(Bucket=BUCKET, Key="batches/census.csv", Body=SAMPLE.read_bytes())
    event = sns_event(
        ("m-ptr", {"s3": {"bucket": BUCKET, "key": "batches/census.csv"}}),
        ("m-uri", f"s3://{BUCKET}/batches/census.csv"),
    )

    summary = sns.handler(event, LambdaContext())

    for message in summary["messages"]:
        assert (message["status"], message["ok"], message["rejected"]) == ("scored", 327, 8)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    outputs = {k for k in keys if k.startswith("output/")}
    assert len(outputs) == 1 and next(iter(outputs)).startswith("output/batches/census.csv.")
    assert len(items(stack["ddb"], f"s3://{BUCKET}/batches/census.csv")) == 335


def test_bad_messages_are_rejected_not_retried(stack: dict[str, Any]) -> None:
    event = sns_event(("m-text", "hello"), ("m-num", "42"), ("m-bad-ptr", {"s3": {"key": 1}}))
    summary = sns.handler(event, LambdaContext())
    assert [m["rejected"] for m in summary["messages"]] == [1, 1, 1]
    reason = lines(stack["s3"], "rejects/sns/m-text.rejects.jsonl")[0]["reasons"][0]
    assert reason.startswith("the message is not JSON")


def test_failed_records_raise_for_a_retry(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, moto_reset: str, emu: Any
) -> None:
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE, sinks="dynamodb",
            backend="sagemaker", sagemaker_endpoint=emu.endpoint_name, endpoint_url=emu.url,
            max_attempts=1, region="us-east-1")
    emu.set_faults(error_rate=1.0)
    with pytest.raises(EventIncompleteError, match="sns:m-1"):
        sns.handler(sns_event(("m-1", census_record())), LambdaContext())
    assert items(stack["ddb"], "sns:m-1")[0]["status"]["S"] == "failed"


def test_s3_output_needs_an_output_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from amlproxy.errors import ConfigurationError

    use_env(monkeypatch, sinks="s3", backend="local")
    with pytest.raises(ConfigurationError, match="AMLPROXY_OUTPUT_BUCKET"):
        sns.handler(sns_event(("m", census_record())), LambdaContext())
