"""Short function timeouts under the local Lambda service and awslambdaric: at a 3 s, 5 s
and 10 s timeout the S3, SNS, SQS and API functions each do work (results in moto) and
answer before the service kills the worker at the timeout, as Lambda does.

The in-process version is :mod:`test_deadlines`; this one runs the handlers in workers
that get Lambda's deadline header, with the emulator's SageMaker endpoint (batches of 100
rows) and moto for S3 and DynamoDB. The four functions are invoked at once (Lambda runs
them side by side), so a case takes about one timeout:

- a normal endpoint (50 ms a call): SNS, SQS and the API score everything into the table;
  the S3 object is too big for one invocation (no chunk queue here: the direct path), so
  the S3 function keeps the keyed rows of the whole chunks it wrote, publishes no half
  output, and fails the invocation for the retry (EventIncompleteError);
- an endpoint slower than the whole timeout: each call gives up at the deadline (its
  read timeout is bounded by the time left) and every function answers before the kill
  (S3 and SNS fail for a retry, SQS reports the batch's items, the API answers 503 with
  Retry-After).

Either way the worker survives: no timeout, no crash, one cold start per function.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from amlproxy.core.retry import derived_margin
from amlproxy.local.functions import FunctionSpec
from amlproxy.local.pool import ServiceSettings
from amlproxy.local.runtime_api import Outcome
from amlproxy.local.service import LambdaService
from amlproxy.local.workers import WorkerSettings, awslambdaric_available
from tests.fixtures.aws import bucket_and_table
from tests.functional.test_deadlines import (
    BUCKET,
    TABLE,
    http_batch,
    put_rows,
    sns_message,
    sqs_batch,
)
from tests.functional.test_event_routing import RECORDS
from tests.functional.test_sink_dynamodb import scan_all
from tests.functional.test_trigger_s3 import s3_event

pytestmark = pytest.mark.skipif(not awslambdaric_available(), reason="awslambdaric: Linux only")

FUNCTIONS = {"S3": "amlproxy.triggers.s3.handler", "SNS": "amlproxy.triggers.sns.handler",
             "SQS": "amlproxy.triggers.sqs.handler", "API": "amlproxy.triggers.api.handler"}
TIMEOUTS = [3.0, pytest.param(5.0, marks=pytest.mark.slow),
            pytest.param(10.0, marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=TIMEOUTS, ids=lambda t: f"{t:g}s")
def service(request: pytest.FixtureRequest, moto_server: str, emulator: Any
            ) -> Iterator[LambdaService]:
    environment = {
        "AMLPROXY_BACKEND": "sagemaker", "AMLPROXY_SAGEMAKER_ENDPOINT": emulator.endpoint_name,
        "AMLPROXY_ENDPOINT_URL": emulator.url, "AMLPROXY_SAGEMAKER_MAX_BATCH": "100",
        "AMLPROXY_CONCURRENCY": "2", "AMLPROXY_MAX_ATTEMPTS": "3",
        "AMLPROXY_AWS_ENDPOINT_URL": moto_server, "AMLPROXY_DYNAMODB_TABLE": TABLE,
        "AMLPROXY_OUTPUT_BUCKET": BUCKET, "AMLPROXY_REGION": "us-east-1",
    }
    specs = [FunctionSpec(name, handler, timeout_s=request.param, environment=environment)
             for name, handler in FUNCTIONS.items()]
    running = LambdaService(specs, ServiceSettings(workers=WorkerSettings(
        runtime_client="awslambdaric")))
    try:
        failures = running.prewarm()  # the init phase, before any deadline runs
        assert failures == {}, {name: o.json() for name, o in failures.items()}
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(aws_client: Any, emu: Any) -> dict[str, Any]:
    s3_client, ddb = bucket_and_table(aws_client, BUCKET, TABLE)
    return {"s3": s3_client, "ddb": ddb, "emu": emu}


def statuses(ddb: Any) -> dict[str, set[str]]:
    """source -> the statuses of its items (every page of the scan)."""
    found: dict[str, set[str]] = {}
    for item in scan_all(ddb, TABLE):
        found.setdefault(item["pk"]["S"], set()).add(item["status"]["S"])
    return found


def invoke_all(service: LambdaService, events: dict[str, Any]) -> dict[str, Outcome]:
    """Each function's event, all at once; their outcomes."""
    with ThreadPoolExecutor(len(events)) as pool:
        futures = {name: pool.submit(service.invoke, name, event)
                   for name, event in events.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_answered_in_time(service: LambdaService, outcomes: dict[str, Outcome]) -> None:
    """No worker was killed: each answered before its timeout and is still the one."""
    took = {name: round(o.duration_ms / 1000, 3) for name, o in outcomes.items()}
    kinds = {name: o.kind for name, o in outcomes.items()}
    assert set(kinds.values()) <= {"ok", "error"}, (kinds, took)
    for name, outcome in outcomes.items():
        pool = service.pool(name)
        assert outcome.duration_ms / 1000 < pool.timeout_s, took
        status = pool.status()
        assert (status["cold_starts"], status["timeouts"], status["crashes"]) == (1, 0, 0)
        assert [w["id"] for w in status["workers"]] == [outcome.worker], status


def error_of(outcome: Outcome) -> str:
    return f"{outcome.error_type}: {outcome.json()['errorMessage']}"


def test_each_function_works_and_answers_in_time(service: LambdaService,
                                                 stack: dict[str, Any]) -> None:
    stack["emu"].set_faults(latency_ms=50)
    big = put_rows(stack, "input/big.csv", copies=150)  # ~50,000 rows: more than one run

    outcomes = {"S3": service.invoke("S3", s3_event(big))}  # alone: it loads moto to the end
    outcomes.update(invoke_all(service, {
        "SNS": sns_message(RECORDS * 100), "SQS": sqs_batch(10, 20),
        "API": http_batch(RECORDS * 25)}))

    assert_answered_in_time(service, outcomes)
    s3_cut = outcomes["S3"]  # the retry scores the object again (large ones go in chunks)
    assert s3_cut.error_type == "EventIncompleteError", s3_cut.payload
    assert "interrupted by the deadline" in error_of(s3_cut)  # not "could not be scored"
    keys = [o["Key"] for o in stack["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [k for k in keys if k.startswith("output/big.csv")]  # no half output
    sns_answer = outcomes["SNS"].json()
    assert [(m["status"], m["ok"]) for m in sns_answer["messages"]] == [("scored", 200)]
    assert outcomes["SQS"].json() == {"batchItemFailures": []}
    api_answer = outcomes["API"].json()
    assert api_answer["statusCode"] == 200, api_answer
    assert json.loads(api_answer["body"])["summary"]["ok"] == 50
    found = statuses(stack["ddb"])
    assert found["sns:n-1"] == {"ok"}
    assert all(found[f"sqs:m{i}"] == {"ok"} for i in range(10))
    assert [s for s in found if s.startswith("api:")] and \
        all(found[s] == {"ok"} for s in found if s.startswith("api:"))
    s3_lines = {int(i["sk"]["N"]) for i in scan_all(stack["ddb"], TABLE)
                if i["pk"]["S"] == f"s3://{BUCKET}/input/big.csv"}
    assert len(s3_lines) >= 500 and s3_lines == set(range(1, len(s3_lines) + 1))  # whole


def test_an_endpoint_slower_than_the_time_left_is_cut_in_time(service: LambdaService,
                                                              stack: dict[str, Any]) -> None:
    timeout_s = service.pool("S3").timeout_s
    stack["emu"].set_faults(latency_ms=(timeout_s + 5) * 1000)  # longer than the timeout
    small = put_rows(stack, "input/small.csv", copies=1)
    cut_at = timeout_s - derived_margin(timeout_s)

    outcomes = invoke_all(service, {
        "S3": s3_event(small), "SNS": sns_message(RECORDS),
        "SQS": sqs_batch(3, 1), "API": http_batch(RECORDS[:1])})

    assert_answered_in_time(service, outcomes)
    took = {name: round(o.duration_ms / 1000, 3) for name, o in outcomes.items()}
    assert all(elapsed >= cut_at - 0.2 for elapsed in took.values()), took  # waited till then
    assert outcomes["S3"].error_type == "EventIncompleteError", error_of(outcomes["S3"])
    assert outcomes["SNS"].error_type == "EventIncompleteError", error_of(outcomes["SNS"])
    failures = [f["itemIdentifier"] for f in outcomes["SQS"].json()["batchItemFailures"]]
    assert failures == ["m0", "m1", "m2"]  # m0 cut; m1 and m2 never tried, so not "failed"
    api_answer = outcomes["API"].json()
    assert api_answer["statusCode"] == 503 and api_answer["headers"]["retry-after"] == "1"
    found = statuses(stack["ddb"])
    assert "sqs:m1" not in found and "sqs:m2" not in found
    assert not any(source.startswith("s3://") for source in found)  # a cut run: no half
