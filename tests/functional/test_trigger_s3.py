"""The S3 trigger end to end: moto server (S3, DynamoDB) over HTTP, the local backend or
the endpoint emulator, and events in the shape S3 sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from amlproxy.errors import EventIncompleteError
from amlproxy.sinks.dynamodb import table_definition
from amlproxy.triggers import s3 as s3_trigger
from tests.events import LambdaContext, load_event, use_env
from tests.fixtures.emulator import census_record

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
BUCKET = "amlproxy-test"
TABLE = "amlproxy-results"
REJECTED_LINES = [12, 40, 77, 120, 166, 213, 260, 301]


def s3_event(*objects: dict[str, Any], event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 event (the SAM-generated shape) announcing ``objects``."""
    template = load_event("s3_put")["Records"][0]
    records = []
    for obj in objects:
        record = json.loads(json.dumps(template))
        record["eventName"] = event_name
        record["s3"]["bucket"]["name"] = obj.get("bucket", BUCKET)
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{obj.get('bucket', BUCKET)}"
        record["s3"]["object"]["key"] = quote_plus(obj["key"], safe="/")  # as S3 encodes it
        record["s3"]["object"]["eTag"] = obj.get("etag", "")
        record["s3"]["object"]["size"] = obj.get("size", 0)
        if obj.get("version_id"):
            record["s3"]["object"]["versionId"] = obj["version_id"]
        records.append(record)
    return {"Records": records}


def upload(s3: Any, key: str, body: bytes | None = None) -> dict[str, Any]:
    data = SAMPLE.read_bytes() if body is None else body
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return {"key": key, "etag": answer["ETag"].strip('"'), "size": len(data),
            "version_id": answer.get("VersionId")}


def all_keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def read_lines(s3: Any, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line]


def item_count(ddb: Any) -> int:
    return int(ddb.scan(TableName=TABLE, Select="COUNT")["Count"])


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str) -> dict[str, Any]:
    s3, ddb = aws_client("s3"), aws_client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(**table_definition(TABLE))
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE, backend="local")
    return {"s3": s3, "ddb": ddb}


def test_scores_an_object_and_a_replay_adds_nothing(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3, ddb = stack["s3"], stack["ddb"]
    obj = upload(s3, "input/census-income-sample.csv")
    event = s3_event(obj)

    summary = s3_trigger.handler(event, LambdaContext())

    emf = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    assert len(emf) == 1  # metrics flushed once per invocation
    assert (emf[0]["RecordsScored"], emf[0]["RecordsRejected"], emf[0]["trigger"]) == (
        327, 8, "s3")

    assert summary["scored"] == 1 and summary["error"] == 0
    assert summary["records"] == {"total": 335, "ok": 327, "rejected": 8, "failed": 0}
    results_key = f"output/census-income-sample.csv.{obj['etag']}.predictions.jsonl"
    rejects_key = f"rejects/census-income-sample.csv.{obj['etag']}.rejects.jsonl"
    assert summary["objects"][0]["results"] == f"s3://{BUCKET}/{results_key}"
    keys = all_keys(s3)
    assert keys == sorted(["input/census-income-sample.csv", results_key, rejects_key])
    results = read_lines(s3, results_key)
    assert len(results) == 327
    assert results[0]["source"] == f"s3://{BUCKET}/input/census-income-sample.csv"
    assert results[0]["label"] in ("<=50K", ">50K")
    rejects = read_lines(s3, rejects_key)
    assert [r["line"] for r in rejects] == REJECTED_LINES
    assert all(r["status"] == "rejected" and r["reasons"] for r in rejects)
    assert item_count(ddb) == 335  # every record's fate, keyed by source and line
    item = ddb.get_item(TableName=TABLE, Key={
        "pk": {"S": f"s3://{BUCKET}/input/census-income-sample.csv"}, "sk": {"N": "40"}})
    assert item["Item"]["status"]["S"] == "rejected"

    again = s3_trigger.handler(event, LambdaContext())

    assert again["records"] == summary["records"]
    assert all_keys(s3) == keys
    assert item_count(ddb) == 335
    assert len(read_lines(s3, results_key)) == 327


def test_every_record_of_the_event_and_encoded_keys(stack: dict[str, Any]) -> None:
    s3 = stack["s3"]
    first = upload(s3, "input/dossier été/census income (1).csv")
    good, bad = census_record(), {**census_record(), "age": "old"}
    second = upload(s3, "input/a+b/ü.jsonl", f"{json.dumps(good)}\n{json.dumps(bad)}\n".encode())

    summary = s3_trigger.handler(s3_event(first, second), LambdaContext())

    assert summary["scored"] == 2
    by_source = {o["source"]: o for o in summary["objects"]}
    assert by_source[f"s3://{BUCKET}/input/dossier été/census income (1).csv"]["ok"] == 327
    jsonl = by_source[f"s3://{BUCKET}/input/a+b/ü.jsonl"]
    assert (jsonl["ok"], jsonl["rejected"]) == (1, 1)
    keys = all_keys(s3)
    assert f"output/dossier été/census income (1).csv.{first['etag']}.predictions.jsonl" in keys
    assert f"rejects/a+b/ü.jsonl.{second['etag']}.rejects.jsonl" in keys
    reject = read_lines(s3, f"rejects/a+b/ü.jsonl.{second['etag']}.rejects.jsonl")[0]
    assert reject["line"] == 2 and "age" in reject["reasons"][0]


def test_loop_guard_and_input_prefix(stack: dict[str, Any]) -> None:
    s3 = stack["s3"]
    output = upload(s3, "output/census-income-sample.csv.x.predictions.jsonl", b"{}\n")
    rejects = upload(s3, "rejects/old.rejects.jsonl", b"{}\n")
    elsewhere = upload(s3, "elsewhere/census.csv")
    before = all_keys(s3)

    summary = s3_trigger.handler(s3_event(output, rejects, elsewhere), LambdaContext())

    assert (summary["skipped"], summary["scored"], summary["error"]) == (3, 0, 0)
    reasons = [o["reason"] for o in summary["objects"]]
    assert reasons[0].startswith("loop guard") and reasons[1].startswith("loop guard")
    assert reasons[2].startswith("outside the input prefix")
    assert all_keys(s3) == before
    assert item_count(stack["ddb"]) == 0


def test_multipart_upload_and_versioned_bucket(stack: dict[str, Any]) -> None:
    s3 = stack["s3"]
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "input/multipart.csv"
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1,
                          Body=SAMPLE.read_bytes())
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    version = done["VersionId"]
    obj = {"key": key, "etag": done["ETag"].strip('"'), "version_id": version}

    summary = s3_trigger.handler(
        s3_event(obj, event_name="ObjectCreated:CompleteMultipartUpload"), LambdaContext())

    scored = summary["objects"][0]
    assert scored["status"] == "scored" and scored["ok"] == 327
    assert scored["source"] == f"s3://{BUCKET}/{key}?versionId={version}"
    assert scored["results"] == f"s3://{BUCKET}/output/multipart.csv.{version}.predictions.jsonl"
    ddb = stack["ddb"]
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": scored["source"]}, "sk": {"N": "1"}})
    assert item["Item"]["status"]["S"] == "ok"


def test_missing_and_replaced_objects_are_skipped(stack: dict[str, Any]) -> None:
    s3 = stack["s3"]
    gone = {"key": "input/gone.csv", "etag": "0123456789abcdef0123456789abcdef"}
    old = upload(s3, "input/replaced.csv")
    upload(s3, "input/replaced.csv", SAMPLE.read_bytes()[:1000])  # a newer upload

    summary = s3_trigger.handler(s3_event(gone, old), LambdaContext())

    assert summary["skipped"] == 2 and summary["error"] == 0
    assert "no longer exists" in summary["objects"][0]["reason"]
    assert "replaced" in summary["objects"][1]["reason"]


def test_unknown_extension_is_skipped_not_retried(stack: dict[str, Any]) -> None:
    obj = upload(stack["s3"], "input/notes.pdf", b"%PDF")
    summary = s3_trigger.handler(s3_event(obj), LambdaContext())
    assert summary["skipped"] == 1
    assert "cannot tell the record format" in summary["objects"][0]["reason"]


def test_failed_records_raise_for_a_retry_after_writing(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, moto_reset: str, emu: Any
) -> None:
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE, backend="aml",
            aml_model_id=emu.model_id, aml_predict_endpoint=emu.url, endpoint_url=emu.url,
            max_attempts=1, concurrency=4)
    emu.set_faults(error_rate=1.0)
    s3 = stack["s3"]
    obj = upload(s3, "input/small.csv", b"".join(SAMPLE.read_bytes().splitlines(True)[:5]))

    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(obj), LambdaContext())

    assert raised.value.summary["records"]["failed"] == 5
    rejects = read_lines(s3, f"rejects/small.csv.{obj['etag']}.rejects.jsonl")
    assert [r["status"] for r in rejects] == ["failed"] * 5
    assert "InternalServer" in rejects[0]["reasons"][0]

    emu.reset()  # the endpoint recovers: Lambda's retry overwrites the same objects
    summary = s3_trigger.handler(s3_event(obj), LambdaContext())
    assert summary["records"]["ok"] == 5
    assert read_lines(s3, f"rejects/small.csv.{obj['etag']}.rejects.jsonl") == []
    assert item_count(stack["ddb"]) == 5


def test_configuration_error_lists_every_bad_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amlproxy.errors import ConfigurationError

    use_env(monkeypatch, backend="sagemaker", concurrency="many", sinks="dynamodb")
    with pytest.raises(ConfigurationError) as raised:
        s3_trigger.handler(s3_event({"key": "input/x.csv"}), LambdaContext())
    message = str(raised.value)
    assert "AMLPROXY_CONCURRENCY='many'" in message
    assert "AMLPROXY_SAGEMAKER_ENDPOINT" in message
    assert "AMLPROXY_DYNAMODB_TABLE" in message
