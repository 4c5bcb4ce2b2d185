"""A Lambda timeout cuts a large file in the middle: the deadline (set from the Lambda
context, the derived margin before the timeout) stops the run, the S3 trigger
raises :class:`EventIncompleteError` and Lambda retries the event.

The guarantee: the output objects are whole or absent, never half, and every line gets
exactly one outcome. An interrupted run commits no output object: it writes only whole
chunks of outcomes to the keyed sinks (DynamoDB items, callback messages with stable ids),
and the retry scores the file again from the start, overwriting them. A file too large
for one invocation is scored in chunks by the chunk worker instead
(tests/functional/test_chunks_flow.py).

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
from tests.events import LambdaContext
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_s3 import s3_event
from tests.functional.test_trigger_sqs import sqs_event
from tests.reliability.conftest import (
    BUCKET,
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
    return results, rejects


def test_a_cut_file_is_scored_again_by_the_retry_each_line_once(
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
    assert stack.keys() == before  # no half object, nothing else either
    partial = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert set(partial.values()) == {1} and sorted(partial) == list(range(1, cut["last_line"] + 1))
    assert len(partial) % 500 == 0  # whole chunks only (the sink_chunk)

    summary = s3_trigger.handler(s3_event(obj), LambdaContext())  # Lambda's retry

    done = summary["objects"][0]
    results, rejects = assert_whole(stack, done, total)  # the keyed items overwritten
    per_row = callback.row_counts()
    assert sorted(line for _, line in per_row) == list(range(1, total + 1))
    assert set(per_row.values()) == {1}
    tally.add(events_replayed=1, faults_injected=1, rows_checked=total,
              rows_lost=total - len(set(results + rejects)),
              duplicates=len(results) + len(rejects) - len(set(results + rejects))
              + sum(per_row.values()) - len(per_row))


def test_a_cut_replay_keeps_the_previous_whole_output(stack: Stack, tally: Tally) -> None:
    obj, total = big_file(stack)
    first = s3_trigger.handler(s3_event(obj), LambdaContext())["objects"][0]
    key = first["results"].split("/", 3)[3]
    whole = stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    cut_by_a_step_clock(get_runtime())

    with pytest.raises(EventIncompleteError):  # a duplicate delivery, cut by the deadline
        s3_trigger.handler(s3_event(obj), cut_after(batches=3))

    assert stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == whole

    done = s3_trigger.handler(s3_event(obj), LambdaContext())["objects"][0]

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
