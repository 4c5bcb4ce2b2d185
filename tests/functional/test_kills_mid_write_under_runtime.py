"""A worker killed in the middle of a write, under the local Lambda service and
awslambdaric, and the redelivery of the same S3 event: the work is done exactly once.

The kill is a hard one: the test SIGKILLs the worker process while the write is in
progress (seen from outside: moto's open multipart upload and its parts, the receiver's
count of deliveries), as Lambda does at a timeout, then invokes the function again with
the same event, as Lambda's retry would. The service's own timeout kill cannot land in
the middle of these writes: the deadline (the timeout minus its margin) stops the part
uploads and the deliveries first, and the function answers before the kill
(:mod:`test_deadlines_under_runtime`; the last test here shows it for a slow receiver).

(a) The S3 trigger's results object, a multipart upload (27 MiB of results in 4 parts of
    8 MiB), killed after 2 parts went up. Nothing is ever visible at the final key before
    the retry completes it; the retry's object holds every input row once (results plus
    rejects); the retry leaves no upload open. What remains is the killed run's upload,
    never completed, which the S3 sink's design leaves to the bucket's
    ``AbortIncompleteMultipartUpload`` lifecycle rule (sam/template.yaml; checked by
    tests/template): aborting it, as that rule will, changes nothing visible.
(b) A signed callback delivery to a slow HTTPS receiver, killed while the receiver holds
    a delivery. A delivery's ``webhook-id`` derives from its rows' keys, so the retry
    re-sends the messages the first run sent with the same ids and the same rows; a
    receiver that processes each id once gets every input row exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from amlproxy.local.functions import FunctionSpec
from amlproxy.local.pool import ServiceSettings
from amlproxy.local.runtime_api import Outcome
from amlproxy.local.service import LambdaService
from amlproxy.local.workers import WorkerSettings, awslambdaric_available
from amlproxy.sinks.s3 import DEFAULT_PART_SIZE
from tests.functional.test_chunks_under_chaos import SAMPLE_REJECTS
from tests.functional.test_sink_callback import (  # noqa: F401 (pki is a fixture)
    SECRET,
    Pki,
    Receiver,
    pki,
    receiving,
)
from tests.functional.test_trigger_s3 import BUCKET, SAMPLE, all_keys, read_lines, s3_event
from tests.reliability.conftest import Deliveries

pytestmark = pytest.mark.skipif(not awslambdaric_available(), reason="awslambdaric: Linux only")

SAMPLE_LINES = len(SAMPLE.read_bytes().splitlines())  # 335, 8 of them rejected
FUNCTIONS = {"S3": "amlproxy.triggers.s3.handler",
             "S3Callback": "tests.functional.kill_handlers.s3_with_callback",
             "S3CallbackShort": "tests.functional.kill_handlers.s3_with_callback"}
TIMEOUT_S = 30.0  # a whole run takes a few seconds: only the test's kill stops one
SHORT_TIMEOUT_S = 3.0  # the smallest FunctionTimeout sam/template.yaml allows


@dataclass
class Stack:
    service: LambdaService
    receiver: Receiver
    s3: Any


@pytest.fixture(scope="module")
def receiver(pki: Pki) -> Iterator[Receiver]:  # noqa: F811
    with receiving(pki) as found:
        yield found


@pytest.fixture(scope="module")
def service(moto_server: str, receiver: Receiver, pki: Pki  # noqa: F811
            ) -> Iterator[LambdaService]:
    environment = {"AMLPROXY_BACKEND": "local", "AMLPROXY_AWS_ENDPOINT_URL": moto_server,
                   "AMLPROXY_OUTPUT_BUCKET": BUCKET, "AMLPROXY_REGION": "us-east-1"}
    callback = {"LOCAL_CALLBACK_URL": receiver.url, "LOCAL_CALLBACK_CA": str(pki.ca_file),
                "LOCAL_CALLBACK_SECRET": SECRET}
    specs = [FunctionSpec(name, handler,
                          timeout_s=SHORT_TIMEOUT_S if name.endswith("Short") else TIMEOUT_S,
                          environment={**environment, **(callback if "Callback" in name else {})})
             for name, handler in FUNCTIONS.items()]
    running = LambdaService(specs, ServiceSettings(workers=WorkerSettings(
        runtime_client="awslambdaric")))
    try:
        failures = running.prewarm()
        assert failures == {}, {name: o.json() for name, o in failures.items()}
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(service: LambdaService, receiver: Receiver, aws_client: Any) -> Stack:
    s3 = aws_client("s3")  # moto reset: an empty account
    s3.create_bucket(Bucket=BUCKET)
    with receiver.lock:
        receiver.requests.clear()
        receiver.script.clear()
    receiver.delay_s = 0.0
    return Stack(service, receiver, s3)


def put_copies(s3: Any, key: str, copies: int) -> tuple[dict[str, Any], set[int], set[int]]:
    """The sample ``copies`` times at ``key``: the event's object, its ok and rejected lines."""
    body = SAMPLE.read_bytes() * copies
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    rejected = {copy * SAMPLE_LINES + line for copy in range(copies) for line in SAMPLE_REJECTS}
    ok = set(range(1, copies * SAMPLE_LINES + 1)) - rejected
    return {"key": key, "etag": put["ETag"].strip('"'), "size": len(body)}, ok, rejected


def invoke_and_kill(service: LambdaService, name: str, event: Any,
                    in_progress: Callable[[], bool], *, limit_s: float = 20.0) -> Outcome:
    """Invoke ``name`` and SIGKILL its worker as soon as ``in_progress()`` holds."""
    with ThreadPoolExecutor(1) as pool:
        future: Future[Outcome] = pool.submit(service.invoke, name, event)
        stop = time.monotonic() + limit_s
        while not in_progress():
            assert not future.done(), f"the run ended before the kill: {future.result()}"
            assert time.monotonic() < stop, "the write never started"
            time.sleep(0.02)
        (busy,) = [w for w in service.pool(name).status()["workers"] if w["busy"]]
        os.kill(busy["pid"], signal.SIGKILL)  # awslambdaric runs the handler in this process
        return future.result(timeout=10)


def assert_killed(outcome: Outcome) -> None:
    assert (outcome.kind, outcome.error_type) == ("crash", "Runtime.ExitError"), outcome.payload
    assert "signal: killed" in outcome.json()["errorMessage"]


def uploads(s3: Any) -> list[dict[str, Any]]:
    return list(s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def test_a_kill_mid_multipart_upload_then_the_retry_publishes_the_object_once(
        stack: Stack) -> None:
    s3 = stack.s3
    obj, ok, rejected = put_copies(s3, "input/big.csv", copies=300)  # 100,500 rows
    event = s3_event(obj)
    results = f"output/big.csv.{obj['etag']}.predictions.jsonl"
    rejects = f"rejects/big.csv.{obj['etag']}.rejects.jsonl"
    seen: list[list[str]] = []  # the output keys every poll saw, during the killed run
    parts_at_kill: list[int] = []

    def part_uploaded() -> bool:
        seen.append([k for k in all_keys(s3) if not k.startswith("input/")])
        for upload in uploads(s3):
            parts = s3.list_parts(Bucket=BUCKET, Key=upload["Key"],
                                  UploadId=upload["UploadId"]).get("Parts", [])
            if upload["Key"] == results and len(parts) >= 2:  # 2 of 4 parts up
                parts_at_kill.append(len(parts))
                return True
        return False

    killed = invoke_and_kill(stack.service, "S3", event, part_uploaded)

    assert_killed(killed)
    assert len(seen) > 1 and all(keys == [] for keys in seen), seen  # no object, ever
    assert all_keys(s3) == ["input/big.csv"]  # the kill published nothing
    (orphan,) = uploads(s3)  # the killed run's upload, open: never completed nor aborted
    assert orphan["Key"] == results
    orphan_parts = s3.list_parts(Bucket=BUCKET, Key=results, UploadId=orphan["UploadId"])
    assert len(orphan_parts["Parts"]) >= parts_at_kill[0] >= 2

    retried = stack.service.invoke("S3", event)  # Lambda's retry: the same event

    assert retried.kind == "ok", retried.payload
    summary = retried.json()
    assert (summary["scored"], summary["records"]) == (1, {
        "total": len(ok) + len(rejected), "ok": len(ok), "rejected": len(rejected),
        "failed": 0})
    assert all_keys(s3) == sorted(["input/big.csv", results, rejects])
    head = s3.head_object(Bucket=BUCKET, Key=results)
    assert head["ContentLength"] > 3 * DEFAULT_PART_SIZE  # a multipart object...
    assert head["ETag"].strip('"').endswith("-4")  # ...of the retry's 4 parts, all of them
    lines = Counter(row["line"] for row in read_lines(s3, results))
    rejected_lines = Counter(row["line"] for row in read_lines(s3, rejects))
    assert set(lines) == ok and set(rejected_lines) == rejected
    assert max((lines + rejected_lines).values()) == 1  # every input row, exactly once
    assert [u["UploadId"] for u in uploads(s3)] == [orphan["UploadId"]]  # the retry's: done

    # what the bucket's AbortIncompleteMultipartUpload rule will do to the orphan: nothing
    # visible changes
    s3.abort_multipart_upload(Bucket=BUCKET, Key=results, UploadId=orphan["UploadId"])
    assert uploads(s3) == []
    assert s3.head_object(Bucket=BUCKET, Key=results)["ETag"] == head["ETag"]
    assert all_keys(s3) == sorted(["input/big.csv", results, rejects])


def messages(requests: list[Any]) -> dict[str, list[str]]:
    """webhook-id -> the keys of the rows it carried (the first delivery of each id)."""
    found: dict[str, list[str]] = {}
    for request in requests:
        rows = orjson.loads(request.body)["data"]["rows"]
        found.setdefault(str(request.headers["webhook-id"]), [row["key"] for row in rows])
    return found


def assert_delivered_once(deliveries: Deliveries, source: str, lines: set[int],
                          before: list[Any]) -> None:
    """Every row once for a receiver that processes each webhook-id once; every message
    delivered before the cut came again with the same id and the same rows."""
    per_row = deliveries.row_counts()  # deduplicated by webhook-id, each signature checked
    assert set(per_row) == {(source, line) for line in lines}
    assert set(per_row.values()) == {1}
    again = messages(deliveries.receiver.requests[len(before):])
    first = messages(before)
    assert first and all(again.get(msg_id) == keys for msg_id, keys in first.items())
    assert sorted(k for keys in again.values() for k in keys) == sorted(
        f"{source}#{line}" for line in lines)  # the retry alone sent every row once


def test_a_kill_mid_callback_delivery_then_the_retry_resends_the_same_ids(
        stack: Stack) -> None:
    obj, ok, rejected = put_copies(stack.s3, "input/hooks.csv", copies=3)  # 1,005 rows
    event = s3_event(obj)
    source = f"s3://{BUCKET}/input/hooks.csv"
    receiver, deliveries = stack.receiver, Deliveries(stack.receiver)
    receiver.delay_s = 0.3  # the receiver holds each delivery: the kill lands in one
    held = threading.Event()

    def delivering() -> bool:  # the third delivery is at the receiver, not yet answered
        if deliveries.received >= 3:
            held.set()
        return held.is_set()

    killed = invoke_and_kill(stack.service, "S3Callback", event, delivering)

    assert_killed(killed)
    before = list(receiver.requests)
    assert 3 <= len(before) < 11  # cut: 1,005 rows are 11 messages of up to 100
    receiver.delay_s = 0.0

    retried = stack.service.invoke("S3Callback", event)

    assert retried.kind == "ok", retried.payload
    assert retried.json()["records"]["total"] == len(ok) + len(rejected)
    assert_delivered_once(deliveries, source, ok | rejected, before)
    assert len(receiver.requests) > len(messages(receiver.requests))  # the kill's duplicates


def test_the_timeout_cuts_a_slow_delivery_at_the_deadline_before_the_kill(
        stack: Stack) -> None:
    """The service's own timeout kill, with a receiver slower than the time left: the
    deadline ends the delivery in flight first and the function answers (an interruption,
    for the retry), so that kill never lands mid-delivery; the retry resends the same ids."""
    obj, ok, rejected = put_copies(stack.s3, "input/slow.csv", copies=3)
    event = s3_event(obj)
    receiver, deliveries = stack.receiver, Deliveries(stack.receiver)
    receiver.delay_s = 1.0  # 11 messages: about 11 s, against a 3 s timeout
    pool = stack.service.pool("S3CallbackShort")

    cut = stack.service.invoke("S3CallbackShort", event)

    assert (cut.kind, cut.error_type) == ("error", "EventIncompleteError"), cut.payload
    assert "interrupted by the deadline" in cut.json()["errorMessage"]
    assert cut.duration_ms / 1000 < SHORT_TIMEOUT_S
    assert (pool.status()["timeouts"], pool.status()["crashes"]) == (0, 0)  # no kill
    before = list(receiver.requests)
    assert 1 <= len(before) <= 3  # the last one held by the receiver when the deadline came
    receiver.delay_s = 0.0

    retried = stack.service.invoke("S3CallbackShort", event)  # the same (warm) worker

    assert retried.kind == "ok", retried.payload
    assert retried.worker == cut.worker
    assert_delivered_once(deliveries, f"s3://{BUCKET}/input/slow.csv", ok | rejected, before)
