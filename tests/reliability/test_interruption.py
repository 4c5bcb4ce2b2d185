"""A Lambda timeout cuts a large file in the middle: the deadline (set from the Lambda
context, the derived margin before the timeout) stops the run, the S3 trigger
raises :class:`EventIncompleteError` and Lambda retries the event.

The guarantee: the output objects are whole or absent, never half, and every line gets
exactly one outcome. An interrupted run commits no output object: it writes only whole
chunks to the keyed sinks (DynamoDB items, callback messages with stable ids) and saves a
checkpoint (the open multipart uploads, the tail rows, the counts; see
:mod:`amlproxy.triggers._checkpoints`). The retry resumes after the checkpoint's line:
it scores only the rest, commits each object once and deletes the checkpoint. A file that
needs several invocations completes over as many retries. With checkpoints off
(``AMLPROXY_CHECKPOINT_PREFIX=""``) or an unusable checkpoint, the retry scores the file
from the start, with the same guarantee.

The cut is made deterministic with the deadline's clock (the seam
:class:`amlproxy.core.retry.Deadline` offers): a clock that advances one "second" each time
it is read, so the run stops after a fixed number of batches.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from amlproxy.core.retry import MARGIN_CAP_S, MARGIN_FRACTION, Deadline, derived_margin
from amlproxy.errors import EventIncompleteError
from amlproxy.sinks.dynamodb import DynamoDbSink
from amlproxy.triggers import s3 as s3_trigger
from amlproxy.triggers import sqs
from amlproxy.triggers._runtime import Runtime, get_runtime
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_s3 import s3_event
from tests.functional.test_trigger_sqs import sqs_event
from tests.reliability.conftest import (
    BUCKET,
    TABLE,
    Deliveries,
    Pki,
    Stack,
    Tally,
    add_callback_sink,
)

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
COPIES = 3


class StepClock:
    """A clock that advances one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def cut_by_a_step_clock(runtime: Runtime) -> None:
    """Puts the pipeline's deadline on a :class:`StepClock`. The shared sinks keep their
    own deadline on real time: a sink reading the step clock would burn a second a read."""
    runtime.deadline.clock = StepClock()
    for sink in runtime.shared_sinks:
        inner = getattr(sink, "inner", sink)
        if isinstance(inner, DynamoDbSink):
            inner.retry_policy = replace(inner.retry_policy, deadline=Deadline())


def cut_after(batches: int) -> LambdaContext:
    """A context whose remaining time lets ``batches`` batches start under a StepClock: its
    deadline lies :func:`derived_margin` before its timeout."""
    work = batches + 0.5
    timeout = work / (1 - MARGIN_FRACTION)
    if timeout * MARGIN_FRACTION > MARGIN_CAP_S:
        timeout = work + MARGIN_CAP_S
    assert abs(timeout - derived_margin(timeout) - work) < 1e-9
    return LambdaContext(timeout_s=timeout)


def big_file(stack: Stack, copies: int = COPIES) -> tuple[dict[str, Any], int]:
    lines = SAMPLE.read_bytes().splitlines(True) * copies
    obj = {**stack.put("input/big.csv", b"".join(lines)), "bucket": BUCKET}
    return obj, len(lines)


def outputs(stack: Stack, done: dict[str, Any]) -> tuple[list[int], list[int]]:
    """The lines of the results and rejects objects an object summary names."""
    results = [r["line"] for r in stack.lines(done["results"].split("/", 3)[3])]
    rejects = [r["line"] for r in stack.lines(done["rejects"].split("/", 3)[3])]
    return results, rejects


def assert_whole(stack: Stack, done: dict[str, Any], total: int) -> tuple[list[int], list[int]]:
    """Every line exactly once, in order, in the outputs and in DynamoDB; counts reconcile."""
    assert done["status"] == "scored" and done["total"] == total
    assert done["ok"] + done["rejected"] + done["failed"] == total
    results, rejects = outputs(stack, done)
    assert results == sorted(results) and rejects == sorted(rejects)  # in order
    assert sorted(results + rejects) == list(range(1, total + 1))  # each line exactly once
    assert len(results) == done["ok"] and len(rejects) == done["rejected"] + done["failed"]
    items = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert sorted(items) == list(range(1, total + 1)) and set(items.values()) == {1}
    assert stack.keys("checkpoints/") == []  # the checkpoint and its tails are gone
    return results, rejects


def test_a_cut_file_is_resumed_by_the_retry_each_line_once(
    stack: Stack, callback: Deliveries, pki: Pki, tally: Tally,
) -> None:
    obj, total = big_file(stack)
    add_callback_sink(callback, pki)
    cut_by_a_step_clock(get_runtime())
    before = stack.keys()

    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(obj), cut_after(batches=3))

    cut = raised.value.summary["objects"][0]
    assert cut["status"] == "interrupted" and 0 < cut["last_line"] < total
    assert cut["total"] == cut["last_line"]  # counts only the rows whose outcomes were kept
    assert stack.keys("output/") == [] and stack.keys("rejects/") == []  # no half object
    saved = [k for k in stack.keys("") if k not in before]
    assert saved and all(k.startswith("checkpoints/big.csv.") for k in saved)
    assert cut["checkpoint"].endswith("/checkpoint.json")
    partial = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert set(partial.values()) == {1} and sorted(partial) == list(range(1, cut["last_line"] + 1))
    assert len(partial) % 500 == 0  # whole chunks only (the sink_chunk)

    summary = s3_trigger.handler(s3_event(obj), LambdaContext())  # Lambda's retry

    done = summary["objects"][0]
    assert done["resumed_after_line"] == cut["last_line"] and done["runs"] == 2
    assert done["scored_this_run"] == total - cut["last_line"]  # the rest only
    results, rejects = assert_whole(stack, done, total)
    per_row = callback.row_counts()
    assert sorted(line for _, line in per_row) == list(range(1, total + 1))
    assert set(per_row.values()) == {1}
    tally.add(events_replayed=1, faults_injected=1, rows_checked=total,
              rows_lost=total - len(set(results + rejects)),
              duplicates=len(results) + len(rejects) - len(set(results + rejects))
              + sum(per_row.values()) - len(per_row))


def test_a_file_that_needs_many_invocations_completes(
    stack: Stack, callback: Deliveries, pki: Pki, tally: Tally,
) -> None:
    obj, total = big_file(stack, copies=8)  # 2,680 lines, 500 rows kept per invocation
    add_callback_sink(callback, pki)
    runtime = get_runtime()
    runtime.pipeline.batch_size = 100
    cut_by_a_step_clock(runtime)
    lines_before: list[int] = []
    runs = 0
    while True:
        runs += 1
        assert runs < 20, "no progress"
        try:
            summary = s3_trigger.handler(s3_event(obj), cut_after(batches=6))
            break
        except EventIncompleteError as exc:
            cut = exc.summary["objects"][0]
            assert cut["status"] == "interrupted"
            assert not lines_before or cut["last_line"] > lines_before[-1]  # progress
            lines_before.append(cut["last_line"])
            assert stack.keys("output/") == []  # nothing visible until the last run

    done = summary["objects"][0]
    assert runs >= 4 and done["runs"] == runs
    assert done["resumed_after_line"] == lines_before[-1]
    results, rejects = assert_whole(stack, done, total)
    per_row = callback.row_counts()
    assert sorted(line for _, line in per_row) == list(range(1, total + 1))
    assert set(per_row.values()) == {1}
    tally.add(events_replayed=runs - 1, faults_injected=runs - 1, rows_checked=total,
              rows_lost=total - len(set(results + rejects)),
              duplicates=len(results) + len(rejects) - len(set(results + rejects))
              + sum(per_row.values()) - len(per_row))


@pytest.mark.parametrize("damage", ["upload gone", "not json", "tail gone"])
def test_an_unusable_checkpoint_starts_the_file_again(
    stack: Stack, tally: Tally, damage: str
) -> None:
    obj, total = big_file(stack)
    cut_by_a_step_clock(get_runtime())
    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(obj), cut_after(batches=3))
    key = raised.value.summary["objects"][0]["checkpoint"].split("/", 3)[3]
    checkpoint = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    if damage == "upload gone":  # as after the AbortIncompleteMultipartUpload rule
        checkpoint["sinks"]["results"]["upload_id"] = "no-such-upload"
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(checkpoint).encode())
    elif damage == "not json":
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=b"{half a checkp")
    else:
        tail = checkpoint["sinks"]["results"]["tail"]
        stack.s3.delete_object(Bucket=BUCKET, Key=tail)

    summary = s3_trigger.handler(s3_event(obj), LambdaContext())

    done = summary["objects"][0]
    assert "resumed_after_line" not in done  # scored from the start
    assert_whole(stack, done, total)
    tally.add(events_replayed=1, faults_injected=2, rows_checked=total)


def test_without_checkpoints_the_retry_scores_the_file_again(
    monkeypatch: pytest.MonkeyPatch, stack: Stack, tally: Tally
) -> None:
    use_env(monkeypatch, aws_endpoint_url=stack.endpoint, dynamodb_table=TABLE,
            output_bucket=BUCKET, backend="local", checkpoint_prefix="")
    obj, total = big_file(stack)
    cut_by_a_step_clock(get_runtime())
    before = stack.keys()
    with pytest.raises(EventIncompleteError):
        s3_trigger.handler(s3_event(obj), cut_after(batches=3))
    assert stack.keys() == before  # no checkpoint, no half object

    done = s3_trigger.handler(s3_event(obj), LambdaContext())["objects"][0]

    assert "resumed_after_line" not in done
    assert_whole(stack, done, total)
    tally.add(events_replayed=1, faults_injected=1, rows_checked=total)


def test_a_cut_replay_keeps_the_previous_whole_output(stack: Stack, tally: Tally) -> None:
    obj, total = big_file(stack)
    first = s3_trigger.handler(s3_event(obj), LambdaContext())["objects"][0]
    key = first["results"].split("/", 3)[3]
    whole = stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    cut_by_a_step_clock(get_runtime())

    with pytest.raises(EventIncompleteError):  # a duplicate delivery, cut by the deadline
        s3_trigger.handler(s3_event(obj), cut_after(batches=3))

    assert stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == whole

    done = s3_trigger.handler(s3_event(obj), LambdaContext())["objects"][0]  # resumes

    assert done["resumed_after_line"] > 0
    assert_whole(stack, done, total)
    again = [{k: v for k, v in r.items() if k != "latency_ms"} for r in stack.lines(key)]
    first_rows = [json.loads(line) for line in whole.decode().splitlines()]
    assert again == [{k: v for k, v in r.items() if k != "latency_ms"} for r in first_rows]
    tally.add(events_replayed=2, faults_injected=1, rows_checked=total)


def test_sqs_message_cut_by_the_deadline_is_redelivered_whole(
    stack: Stack, tally: Tally
) -> None:
    runtime = get_runtime()
    runtime.pipeline.batch_size = 10
    cut_by_a_step_clock(runtime)
    records = [census_record() for _ in range(40)]
    event = sqs_event(("big", {"records": records}))
    before = stack.keys()

    answer = sqs.handler(event, cut_after(batches=2))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "big"}]}
    assert stack.keys() == before and stack.items() == []  # nothing half-written
    assert sqs.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert sorted(int(i["sk"]["N"]) for i in stack.items()) == list(range(1, 41))
    assert len(stack.keys()) == len(before) + 2
    tally.add(events_replayed=1, faults_injected=1, rows_checked=40)


def test_sqs_pointer_to_a_big_file_resumes_from_its_checkpoint(
    stack: Stack, tally: Tally
) -> None:
    obj, total = big_file(stack)
    runtime = get_runtime()
    runtime.pipeline.batch_size = 100
    cut_by_a_step_clock(runtime)
    event = sqs_event(("ptr", {"s3": {"bucket": BUCKET, "key": obj["key"]}}))

    answer = sqs.handler(event, cut_after(batches=7))  # 5 batches, and the chunk's write

    assert answer == {"batchItemFailures": [{"itemIdentifier": "ptr"}]}
    saved = stack.keys("checkpoints/")
    assert [k for k in saved if k.endswith("/checkpoint.json")]
    checkpoint = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=saved[0])["Body"].read())
    cut_line = checkpoint["line"]
    assert 0 < cut_line < total
    first = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert sorted(first) == list(range(1, cut_line + 1))

    assert sqs.handler(event, LambdaContext()) == {"batchItemFailures": []}  # redelivery

    items = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert sorted(items) == list(range(1, total + 1)) and set(items.values()) == {1}
    assert stack.keys("checkpoints/") == []
    lines = sorted(row["line"] for sink in checkpoint["sinks"].values()
                   for row in stack.lines(sink["key"]))
    assert lines == list(range(1, total + 1))  # the S3 outputs, whole, each line once
    tally.add(events_replayed=1, faults_injected=1, rows_checked=total,
              rows_lost=total - len(items))
