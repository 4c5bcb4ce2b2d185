"""Faults lose nothing. Endpoint throttles, 5xx and timeouts (the emulator), DynamoDB
handing items back unprocessed (as a throttled table does), S3 refusing reads or writes,
a callback receiver that is down: every row ends ``ok``, or ``failed`` with its reason in
the rejects object and the event raised for a retry (Lambda's retries, then the OnFailure
destination / the queue's DLQ, hold the event). The counts always reconcile:
total = ok + rejected + failed, and the retry after the fault clears completes the file.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from amlproxy.core.retry import RetryPolicy
from amlproxy.errors import EventIncompleteError
from amlproxy.sinks.callback import CallbackSink
from amlproxy.sinks.dynamodb import DynamoDbSink
from amlproxy.triggers import s3 as s3_trigger
from amlproxy.triggers import sqs
from amlproxy.triggers._runtime import get_runtime
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import census_record
from tests.functional.test_sink_dynamodb import UnprocessedInjector
from tests.functional.test_trigger_s3 import s3_event
from tests.functional.test_trigger_sqs import sqs_event
from tests.reliability.conftest import (
    BUCKET,
    SECRET,
    TABLE,
    Deliveries,
    Pki,
    Stack,
    Tally,
    add_callback_sink,
)

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
ROWS, REJECTED = 335, 8
FAULT_KINDS = ("throttled", "server_error", "timeout", "not_ready", "model_error")


def injected(emu: Any) -> int:
    counts = emu.endpoint_counts(emu.model_id).get("by_outcome", {})
    return sum(int(counts.get(kind, 0)) for kind in FAULT_KINDS)


def key_of(uri: str) -> str:
    return uri.split("/", 3)[3]


def check_complete(stack: Stack, done: dict[str, Any], tally: Tally) -> None:
    """The object's outcome after the faults cleared: every row once, none failed."""
    assert done["status"] == "scored"
    assert (done["total"], done["rejected"], done["failed"]) == (ROWS, REJECTED, 0)
    results = [r["line"] for r in stack.lines(key_of(done["results"]))]
    rejects = [r["line"] for r in stack.lines(key_of(done["rejects"]))]
    assert sorted(results + rejects) == list(range(1, ROWS + 1))
    items = [i for i in stack.items() if i["pk"]["S"] == done["source"]]
    assert len(items) == ROWS and {i["status"]["S"] for i in items} == {"ok", "rejected"}
    tally.add(rows_checked=ROWS, rows_lost=ROWS - len(set(results + rejects)),
              duplicates=len(results) + len(rejects) - ROWS)


@pytest.fixture
def on_emulator(stack: Stack, monkeypatch: pytest.MonkeyPatch, emu: Any) -> Stack:
    use_env(monkeypatch, aws_endpoint_url=stack.endpoint, dynamodb_table=TABLE,
            output_bucket=BUCKET, backend="aml", aml_model_id=emu.model_id,
            aml_predict_endpoint=emu.url, endpoint_url=emu.url, region="us-east-1",
            max_attempts=10, retry_base_delay_s=0.001, retry_max_delay_s=0.01, concurrency=8)
    return stack


@pytest.fixture
def sample(stack: Stack) -> dict[str, Any]:
    return {**stack.put("input/sample.csv", SAMPLE.read_bytes()), "bucket": BUCKET}


def test_endpoint_throttles_5xx_and_timeouts_lose_nothing(
    on_emulator: Stack, sample: dict[str, Any], emu: Any, tally: Tally
) -> None:
    emu.set_faults(throttle_rate=0.15, error_rate=0.15, timeout_rate=0.03, timeout_s=0.05,
                   seed=11)
    summary = s3_trigger.handler(s3_event(sample), LambdaContext())
    done = summary["objects"][0]
    assert done["retries"] > 0 and injected(emu) > 20
    check_complete(on_emulator, done, tally)
    tally.add(faults_injected=injected(emu))


def test_an_endpoint_that_stays_down_fails_rows_with_reasons_then_the_retry_completes(
    on_emulator: Stack, sample: dict[str, Any], emu: Any, tally: Tally,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_env(monkeypatch, aws_endpoint_url=on_emulator.endpoint, dynamodb_table=TABLE,
            output_bucket=BUCKET, backend="aml", aml_model_id=emu.model_id,
            aml_predict_endpoint=emu.url, endpoint_url=emu.url, region="us-east-1",
            max_attempts=2, retry_base_delay_s=0.001, retry_max_delay_s=0.01, concurrency=8)
    emu.set_faults(error_rate=1.0)

    with pytest.raises(EventIncompleteError, match=f"{ROWS - REJECTED} record.s. failed"):
        s3_trigger.handler(s3_event(sample), LambdaContext())

    faults = injected(emu)
    rejects = on_emulator.lines(key_of(
        f"s3://{BUCKET}/rejects/sample.csv.{sample['etag']}.rejects.jsonl"))
    by_status: dict[str, int] = {}
    for row in rejects:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        assert row["reasons"]  # each with its reason
    assert by_status == {"failed": ROWS - REJECTED, "rejected": REJECTED}
    assert "InternalServer" in next(r for r in rejects if r["status"] == "failed")["reasons"][0]
    assert len(on_emulator.items()) == ROWS  # total = ok + rejected + failed, each kept

    emu.reset()  # the endpoint recovers; Lambda's retry of the event
    done = s3_trigger.handler(s3_event(sample), LambdaContext())["objects"][0]
    check_complete(on_emulator, done, tally)
    tally.add(faults_injected=faults, events_replayed=1)


def test_dynamodb_unprocessed_items_are_retried(stack: Stack, sample: dict[str, Any],
                                                tally: Tally) -> None:
    injector = UnprocessedInjector(get_runtime().clients.client("dynamodb"), rounds=4,
                                   withhold=7)
    done = s3_trigger.handler(s3_event(sample), LambdaContext())["objects"][0]
    assert injector.calls > 4
    check_complete(stack, done, tally)
    tally.add(faults_injected=4)


def test_dynamodb_that_never_takes_the_items_fails_the_event_then_the_retry_completes(
    stack: Stack, sample: dict[str, Any], tally: Tally
) -> None:
    client = get_runtime().clients.client("dynamodb")
    injector = UnprocessedInjector(client, rounds=10**6, withhold=3)
    for sink in get_runtime().shared_sinks:  # no long backoff in a test
        inner = getattr(sink, "inner", sink)
        if isinstance(inner, DynamoDbSink):
            inner.retry_policy = replace(inner.retry_policy, sleep=lambda _: None)
    before = stack.keys()

    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(sample), LambdaContext())

    reason = raised.value.summary["objects"][0]["reason"]
    assert "not written" in reason and "BatchWriteItem" in reason
    assert stack.keys() == before  # no results object for a run that lost items
    injector.rounds = 0  # the table has capacity again
    done = s3_trigger.handler(s3_event(sample), LambdaContext())["objects"][0]
    check_complete(stack, done, tally)
    tally.add(faults_injected=1, events_replayed=1)


def test_s3_read_and_write_errors_fail_the_event_then_the_retry_completes(
    stack: Stack, sample: dict[str, Any], tally: Tally, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = {**sample, "bucket": "amlproxy-no-such-bucket"}
    with pytest.raises(EventIncompleteError, match="could not be scored") as raised:
        s3_trigger.handler(s3_event(missing), LambdaContext())
    assert "NoSuchBucket" in raised.value.summary["objects"][0]["reason"]

    use_env(monkeypatch, aws_endpoint_url=stack.endpoint, dynamodb_table=TABLE,
            output_bucket="amlproxy-out-missing", backend="local")
    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(sample), LambdaContext())
    reason = raised.value.summary["objects"][0]["reason"]
    assert reason.startswith("SinkError") and "amlproxy-out-missing" in reason

    stack.s3.create_bucket(Bucket="amlproxy-out-missing")  # the bucket is back
    done = s3_trigger.handler(s3_event(sample), LambdaContext())["objects"][0]
    assert done["status"] == "scored" and done["ok"] == ROWS - REJECTED
    outputs = stack.s3.list_objects_v2(Bucket="amlproxy-out-missing")["KeyCount"]
    assert outputs == 2 and len(stack.items()) == ROWS
    tally.add(faults_injected=2, events_replayed=1, rows_checked=ROWS)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_callback_receiver_that_is_down(stack: Stack, sample: dict[str, Any], pki: Pki,
                                          callback: Deliveries, tally: Tally) -> None:
    runtime = get_runtime()
    port = _closed_port()
    down = CallbackSink(f"https://127.0.0.1:{port}/hook", secrets=[SECRET],
                        allow_private=True, ssl_context=pki.client_context(),
                        retry_policy=RetryPolicy(max_attempts=2, sleep=lambda _: None),
                        allowed_ports=(port,), statuses=("ok", "rejected", "failed"))
    runtime.pipeline.sinks.append(down)
    before = stack.keys()

    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(sample), LambdaContext())
    assert "not written" in raised.value.summary["objects"][0]["reason"]
    assert stack.keys() == before  # the results object waits for a run that delivered all

    answer = sqs.handler(sqs_event(("m1", census_record())), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}  # redelivered later

    runtime.pipeline.sinks.remove(down)  # the receiver is back (at its address)
    add_callback_sink(callback, pki)
    done = s3_trigger.handler(s3_event(sample), LambdaContext())["objects"][0]
    check_complete(stack, done, tally)
    assert sqs.handler(sqs_event(("m1", census_record())), LambdaContext()) == {
        "batchItemFailures": []}
    per_row = callback.row_counts()
    assert len(per_row) == ROWS + 1 and set(per_row.values()) == {1}
    tally.add(faults_injected=2, events_replayed=2)
