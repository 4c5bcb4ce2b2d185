"""A Lambda timeout cuts a large file in the middle: the deadline (set from the Lambda
context, ``AMLPROXY_DEADLINE_MARGIN_S`` before the timeout) stops the run, the S3 trigger
raises :class:`EventIncompleteError` and Lambda retries the event.

The guarantee: the output objects are whole or absent, never half. An interrupted run
commits no object (its S3 sinks are aborted) and writes only whole chunks to the keyed
sinks (DynamoDB items, callback messages with stable ids); the retry scores the file from
the start and commits each object once. After the cut + retry every line has exactly one
outcome, in order, in the outputs, one DynamoDB item, and one callback row.

The cut is made deterministic with the deadline's clock (the seam
:class:`amlproxy.core.retry.Deadline` offers): a clock that advances one "second" each time
it is read, so the run stops after a fixed number of batches.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from amlproxy.errors import EventIncompleteError
from amlproxy.triggers import s3 as s3_trigger
from amlproxy.triggers import sqs
from amlproxy.triggers._runtime import get_runtime
from tests.events import LambdaContext
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_s3 import s3_event
from tests.functional.test_trigger_sqs import sqs_event
from tests.reliability.conftest import BUCKET, Deliveries, Pki, Stack, Tally, add_callback_sink

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
COPIES = 3
MARGIN_S = 10.0  # the default AMLPROXY_DEADLINE_MARGIN_S


class StepClock:
    """A clock that advances one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def cut_after(batches: int) -> LambdaContext:
    """A context whose remaining time lets ``batches`` batches start under a StepClock."""
    return LambdaContext(timeout_s=MARGIN_S + batches + 0.5)


@pytest.fixture
def big_file(stack: Stack) -> tuple[dict[str, Any], int]:
    lines = SAMPLE.read_bytes().splitlines(True) * COPIES
    obj = {**stack.put("input/big.csv", b"".join(lines)), "bucket": BUCKET}
    return obj, len(lines)


def test_a_cut_file_is_completed_by_the_retry_each_line_once(
    stack: Stack, callback: Deliveries, pki: Pki, tally: Tally,
    big_file: tuple[dict[str, Any], int],
) -> None:
    obj, total = big_file
    add_callback_sink(callback, pki)
    get_runtime().deadline.clock = StepClock()
    before = stack.keys()

    with pytest.raises(EventIncompleteError) as raised:
        s3_trigger.handler(s3_event(obj), cut_after(batches=1))

    cut = raised.value.summary["objects"][0]
    assert cut["status"] == "interrupted" and 0 < cut["last_line"] < total
    assert stack.keys() == before  # no half object: nothing was committed
    partial = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert set(partial.values()) <= {1} and max(partial, default=0) <= cut["last_line"]
    assert partial and len(partial) % 500 == 0  # whole chunks only (the sink_chunk)

    summary = s3_trigger.handler(s3_event(obj), LambdaContext())  # Lambda's retry

    done = summary["objects"][0]
    assert done["status"] == "scored" and done["total"] == total
    assert done["ok"] + done["rejected"] + done["failed"] == total
    results = [r["line"] for r in stack.lines(done["results"].split("/", 3)[3])]
    rejects = [r["line"] for r in stack.lines(done["rejects"].split("/", 3)[3])]
    assert results == sorted(results) and rejects == sorted(rejects)  # in order
    assert sorted(results + rejects) == list(range(1, total + 1))  # each line exactly once
    items = Counter(int(i["sk"]["N"]) for i in stack.items())
    assert sorted(items) == list(range(1, total + 1)) and set(items.values()) == {1}
    per_row = callback.row_counts()
    assert sorted(line for _, line in per_row) == list(range(1, total + 1))
    assert set(per_row.values()) == {1}  # the cut run's messages had the retry's ids
    tally.add(events_replayed=1, faults_injected=1, rows_checked=total,
              rows_lost=total - len(set(results + rejects)),
              duplicates=len(results) + len(rejects) - len(set(results + rejects))
              + sum(items.values()) - len(items) + sum(per_row.values()) - len(per_row))


def test_a_cut_replay_keeps_the_previous_whole_output(
    stack: Stack, tally: Tally, big_file: tuple[dict[str, Any], int]
) -> None:
    obj, total = big_file
    first = s3_trigger.handler(s3_event(obj), LambdaContext())["objects"][0]
    key = first["results"].split("/", 3)[3]
    whole = stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    get_runtime().deadline.clock = StepClock()

    with pytest.raises(EventIncompleteError):  # a duplicate delivery, cut by the deadline
        s3_trigger.handler(s3_event(obj), cut_after(batches=1))

    assert stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == whole
    tally.add(events_replayed=1, faults_injected=1, rows_checked=total)


def test_sqs_message_cut_by_the_deadline_is_redelivered_whole(
    stack: Stack, tally: Tally
) -> None:
    runtime = get_runtime()
    runtime.pipeline.batch_size = 10
    runtime.deadline.clock = StepClock()
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
