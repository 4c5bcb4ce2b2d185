"""Short function timeouts, in-process, with a context whose remaining time is real: the
S3, SNS, SQS and API handlers do work and answer before the runtime would kill them.

The endpoint is the emulator's SageMaker endpoint (batches of 100 rows), with moto for S3
and DynamoDB. Two endpoints per timeout:

- a normal one (50 ms a call): each handler scores; the S3 object that is too big for one
  invocation is cut at the deadline and raised for a retry, with no half object (large
  objects are scored in chunks by the chunk worker: tests/functional/test_chunks_flow.py);
- one slower than the time left (a call would take longer than the function's timeout):
  each call gives up at the deadline, because its read timeout is bounded by the time
  left; records never attempted are not marked failed; and each handler answers (SQS with
  batch item failures, the API with 503 and Retry-After, S3 and SNS raising for a retry)
  before the timeout.

The runtime is built before the context starts, as Lambda's init phase does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlproxy.core.retry import derived_margin
from amlproxy.errors import EventIncompleteError
from amlproxy.triggers import api, s3, sns, sqs
from amlproxy.triggers._runtime import get_runtime
from tests.events import LambdaContext, load_event, use_env
from tests.fixtures.aws import bucket_and_table
from tests.fixtures.emulator import census_record
from tests.functional.test_event_routing import RECORDS
from tests.functional.test_trigger_s3 import s3_event

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
BUCKET = "amlproxy-deadlines"
TABLE = "amlproxy-deadline-results"
HANDLERS = ("S3", "SNS", "SQS", "API")
TIMEOUTS = [3.0, pytest.param(5.0, marks=pytest.mark.slow),
            pytest.param(10.0, marks=pytest.mark.slow)]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str, emu: Any
          ) -> dict[str, Any]:
    s3_client, ddb = bucket_and_table(aws_client, BUCKET, TABLE)
    use_env(monkeypatch, backend="sagemaker", sagemaker_endpoint=emu.endpoint_name,
            endpoint_url=emu.url, sagemaker_max_batch=100, concurrency=2, max_attempts=3,
            aws_endpoint_url=moto_reset, dynamodb_table=TABLE, output_bucket=BUCKET,
            region="us-east-1")
    get_runtime()  # the init phase
    return {"s3": s3_client, "ddb": ddb, "emu": emu, "endpoint": moto_reset}


def timed(handler: Callable[[Any, Any], Any], event: Any, timeout_s: float
          ) -> tuple[Any, float]:
    """(the answer or the raised error, seconds from the start of the invocation)."""
    context = LambdaContext(timeout_s=timeout_s)
    try:
        answer: Any = handler(event, context)
    except EventIncompleteError as exc:
        answer = exc
    return answer, time.monotonic() - context.started


def sources(ddb: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in ddb.scan(TableName=TABLE)["Items"]:
        found.setdefault(item["pk"]["S"], set()).add(item["status"]["S"])
    return found


def put_rows(stack: dict[str, Any], key: str, copies: int) -> dict[str, Any]:
    lines = SAMPLE.read_bytes().splitlines(True)
    body = b"".join(lines * copies)
    put = stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=body)
    return {"bucket": BUCKET, "key": key, "etag": put["ETag"].strip('"'), "size": len(body)}


def http_batch(records: list[dict[str, str]]) -> dict[str, Any]:
    event = load_event("apigateway_aws_proxy")
    event.update(httpMethod="POST", path="/predict", body=json.dumps(records),
                 isBase64Encoded=False, headers={"Content-Type": "application/json"})
    return event


def stack_keys(stack: dict[str, Any]) -> list[str]:
    return [o["Key"] for o in stack["s3"].list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def sqs_batch(n: int, records_each: int) -> dict[str, Any]:
    template = load_event("sqs_receive_message")["Records"][0]
    return {"Records": [{**template, "messageId": f"m{i}",
                         "body": json.dumps([census_record()] * records_each)}
                        for i in range(n)]}


def sns_message(records: list[dict[str, str]], message_id: str = "n-1") -> dict[str, Any]:
    event = load_event("sns_notification")
    event["Records"][0]["Sns"].update(Message=json.dumps(records), MessageId=message_id)
    return event


@pytest.mark.parametrize("timeout_s", TIMEOUTS)
def test_each_handler_works_and_answers_in_time(stack: dict[str, Any], timeout_s: float,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # the S3 trigger's own outputs only (results, rejects): the DynamoDB sink's
    # own bound on its writes is another test's (this one is about the endpoint and the
    # pipeline); the messages and the API are answered from memory
    use_env(monkeypatch, backend="sagemaker", sagemaker_endpoint=stack["emu"].endpoint_name,
            endpoint_url=stack["emu"].url, sagemaker_max_batch=100, concurrency=2,
            aws_endpoint_url=stack["endpoint"], region="us-east-1")
    get_runtime()
    stack["emu"].set_faults(latency_ms=50)
    big = put_rows(stack, "input/big.csv", copies=150)  # ~50,000 rows: more than one run

    cut, s3_s = timed(s3.handler, s3_event(big), timeout_s)
    sns_summary, sns_s = timed(sns.handler, sns_message(RECORDS * 100), timeout_s)
    sqs_answer, sqs_s = timed(sqs.handler, sqs_batch(10, 20), timeout_s)
    api_answer, api_s = timed(api.handler, http_batch(RECORDS * 25), timeout_s)

    took = dict(zip(HANDLERS, (s3_s, sns_s, sqs_s, api_s), strict=True))
    assert max(took.values()) < timeout_s, took  # none would have been killed
    assert isinstance(cut, EventIncompleteError)  # Lambda retries the event
    done = cut.summary["objects"][0]
    assert done["status"] == "interrupted" and done["last_line"] >= 500  # cut, not failed
    assert "results" in done and not [k for k in stack_keys(stack) if k.startswith("output/")]
    assert [(m["status"], m["ok"]) for m in sns_summary["messages"]] == [("scored", 200)]
    assert sqs_answer == {"batchItemFailures": []}
    assert api_answer["statusCode"] == 200
    assert json.loads(api_answer["body"])["summary"]["ok"] == 50


@pytest.mark.parametrize("timeout_s", TIMEOUTS)
def test_an_endpoint_slower_than_the_time_left_is_cut_in_time(stack: dict[str, Any],
                                                              timeout_s: float) -> None:
    stack["emu"].set_faults(latency_ms=(timeout_s + 5) * 1000)  # longer than the timeout
    small = put_rows(stack, "input/small.csv", copies=1)
    cut_at = timeout_s - derived_margin(timeout_s)

    answers = [timed(s3.handler, s3_event(small), timeout_s),
               timed(sns.handler, sns_message(RECORDS), timeout_s),
               timed(sqs.handler, sqs_batch(3, 1), timeout_s),
               timed(api.handler, http_batch(RECORDS[:1]), timeout_s)]

    took = {name: round(elapsed, 3) for name, (_, elapsed) in zip(HANDLERS, answers, strict=True)}
    # each call waited until the deadline, and the handler answered before the kill
    assert all(cut_at - 0.2 <= elapsed < timeout_s for elapsed in took.values()), took
    (s3_cut, _), (sns_cut, _), (sqs_answer, _), (api_answer, _) = answers
    assert isinstance(s3_cut, EventIncompleteError) and isinstance(sns_cut, EventIncompleteError)
    assert s3_cut.summary["objects"][0]["status"] == "interrupted"
    failures = [f["itemIdentifier"] for f in sqs_answer["batchItemFailures"]]
    assert failures == ["m0", "m1", "m2"]  # m0 cut; m1 and m2 never tried, so not "failed"
    assert api_answer["statusCode"] == 503 and api_answer["headers"]["retry-after"] == "1"
    found = sources(stack["ddb"])
    assert "sqs:m1" not in found and "sqs:m2" not in found
    assert not any(source.startswith("s3://") for source in found)  # a cut run: no half


def test_a_sink_write_cut_by_the_deadline_is_an_interruption_the_retry_redoes(
        stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline comes in the middle of a chunk's DynamoDB writes (the chunk before
    took less time than the time left, this one more: a slower table). The run is
    interrupted, not "could not be scored": the keyed rows of the whole chunks before stay,
    no half output object is written, and the retry (the object is scored again: large
    objects go in chunks, see test_chunks_*) completes it; the table holds every row once.
    Deterministic: the deadline's clock moves only with each BatchWriteItem call."""
    use_env(monkeypatch, backend="local", aws_endpoint_url=stack["endpoint"],
            dynamodb_table=TABLE, region="us-east-1")
    runtime = get_runtime()
    now, calls = [0.0], [0]
    runtime.deadline.clock = lambda: now[0]
    table = runtime.clients.client("dynamodb")

    def batch_write_takes_time(**_: Any) -> None:
        # chunk 1 (500 rows, 20 calls): 0.2 s, chunk 2 would take 3 s: the sinks' deadline
        # (2.4 s of a 3 s invocation, plus half the margin) comes at its 17th call
        calls[0] += 1
        now[0] += 0.01 if calls[0] <= 20 else 0.15

    table.meta.events.register("before-call.dynamodb.BatchWriteItem", batch_write_takes_time)
    obj = put_rows(stack, "input/cut.csv", copies=4)  # 1,340 rows: chunks of 500
    rows = len(SAMPLE.read_bytes().splitlines()) * 4

    cut, _ = timed(s3.handler, s3_event(obj), 3.0)

    assert isinstance(cut, EventIncompleteError), cut
    first = cut.summary["objects"][0]
    assert first["status"] == "interrupted", first  # not "error": nothing failed
    assert first["last_line"] == 500 and "checkpoint" not in first
    listed = stack["s3"].list_objects_v2(Bucket=BUCKET, Prefix="output/").get("Contents", [])
    assert listed == []  # a cut run publishes no half output
    assert 20 < calls[0] < 40  # chunk 2 was started, and cut by the deadline
    now[0] = 0.0
    table.meta.events.unregister("before-call.dynamodb.BatchWriteItem", batch_write_takes_time)
    done, _ = timed(s3.handler, s3_event(obj), 900.0)
    assert done["objects"][0]["status"] == "scored" and done["records"]["total"] == rows
    lines = [int(i["sk"]["N"]) for i in stack["ddb"].scan(TableName=TABLE)["Items"]]
    assert sorted(lines) == list(range(1, rows + 1))  # every row once (a cut chunk rewritten)
    body = stack["s3"].get_object(Bucket=BUCKET, Key=done["objects"][0]["results"].split(
        f"s3://{BUCKET}/", 1)[1])["Body"].read().splitlines()
    assert len(body) == done["records"]["ok"]  # the results object: no row twice
