"""Large objects in chunks, end to end on a moto server (S3, DynamoDB, SQS, SNS) with the
planner and the chunk worker run in-process (tests/functional/chunk_flow.py): every line
exactly once, in line order, whatever kills and redeliveries come in between.

Kills are simulated two ways: the deadline cuts a run (the worker's context leaves it a
few batches, on a step clock: tests/reliability/test_interruption.py), and an exception
no code of amlproxy catches (:class:`Killed`) raised by a botocore hook at a chosen call,
as if the process died there. Either way the message is not deleted and SQS redelivers it.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from amlproxy.triggers._runtime import get_runtime
from tests.events import LambdaContext
from tests.functional.chunk_flow import (  # noqa: F401  (flow is a fixture)
    BAD,
    Flow,
    Killed,
    atomic_dynamodb,
    census_file,
    flow_fixture,
    plan_id,
    sqs_record,
)
from tests.reliability.test_interruption import cut_after, cut_by_a_step_clock


def kill_at(client: Any, operation: str, when: Any = lambda params: True, times: int = 1
            ) -> list[int]:
    """Kills the process (raises :class:`Killed`) at ``client``'s next ``operation`` calls
    whose parameters ``when`` accepts, ``times`` times; the list counts the kills."""
    kills: list[int] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if len(kills) < times and when(params):
            kills.append(1)
            raise Killed(operation)

    service = client.meta.service_model.service_name
    client.meta.events.register(f"provide-client-params.{service}.{operation}", hook)
    return kills


def only_s3(flow: Flow, monkeypatch: Any, chunk_bytes: int = 8192) -> None:
    """The flow's settings without the DynamoDB sink (fewer calls: faster tests)."""
    from tests.events import use_env

    use_env(monkeypatch, backend="local", aws_endpoint_url=flow.s3.meta.endpoint_url,
            region="us-east-1", sinks="s3", chunk_queue_url=flow.queue_url,
            chunk_table="amlproxy-chunk-plans", chunk_bytes=chunk_bytes,
            completion_topic_arn=flow.topic_arn)


def test_a_file_of_several_chunks_is_scored_and_assembled_once(flow: Flow) -> None:
    data = census_file(300, bad_after=23)
    obj = flow.put("input/big.csv", data)

    assert flow.plan(obj) == {"batchItemFailures": []}
    planned = flow.completion(obj)
    assert int(planned["chunks"]) == len(flow.receive_all()) >= 4
    assert planned["status"] == "planned"
    flow.sqs.purge_queue(QueueUrl=flow.queue_url)
    assert flow.plan(obj) == {"batchItemFailures": []}  # a redelivered notification re-sends
    flow.drain()

    done = flow.assert_whole(obj, 300)
    assert int(done["rejected"]) == data.count(BAD) > 10
    notes = flow.notifications()
    assert notes == [{"object": plan_id(obj),
                      "chunks": int(done["chunks"]), "total": 300, "ok": int(done["ok"]),
                      "rejected": int(done["rejected"]), "failed": 0,
                      "results": f"s3://amlproxy-chunks/output/big.csv.{obj['etag']}"
                                 ".predictions.jsonl",
                      "rejects": f"s3://amlproxy-chunks/rejects/big.csv.{obj['etag']}"
                                 ".rejects.jsonl"}]


def test_a_small_object_is_scored_directly_and_the_test_event_acknowledged(flow: Flow) -> None:
    obj = flow.put("input/small.csv", census_file(20))
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "amlproxy-chunks"}
    event = {"Records": [sqs_record("t-1", json.dumps(test_event))]}
    from amlproxy.triggers import s3 as s3_trigger

    assert s3_trigger.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert flow.plan(obj) == {"batchItemFailures": []}

    assert flow.receive() == [] and flow.keys("chunks/") == []  # no chunk, no plan
    assert len(flow.lines(f"output/small.csv.{obj['etag']}.predictions.jsonl")) == 20


def test_chunks_cut_by_the_deadline_are_redelivered_until_whole(flow: Flow) -> None:
    """A fifth of the deliveries (seeded) is cut after a batch: the cut chunk leaves no
    chunk object, is not marked done, and its redelivery completes it."""
    obj = flow.put("input/cut.csv", census_file(300, bad_after=40))
    runtime = get_runtime()
    runtime.pipeline.batch_size = 10
    flow.plan(obj)
    cut_by_a_step_clock(runtime)
    rng = random.Random(7)
    cuts = 0
    for _ in range(400):
        messages = flow.receive()
        if not messages:
            break
        for message in messages:  # one message per invocation (BatchSize 1)
            cut = rng.random() < 0.2
            cuts += cut
            failed = flow.deliver([message], cut_after(batches=1) if cut else LambdaContext())
            assert bool(failed) == cut
            if cut:
                index = json.loads(message["Body"])["index"]
                assert not [k for k in flow.keys("chunks/") if f"/{index:06d}." in k]
    assert cuts >= 2
    flow.assert_whole(obj, 300)
    assert len(flow.notifications()) == 1


def test_the_reproducer_a_reject_after_every_500_rows_cut_by_the_deadline(
        flow: Flow, monkeypatch: Any, emu: Any) -> None:
    """The issue's duplicate: rejects right after 500 valid rows, the run cut while the
    batches before them are in flight (SageMaker on the emulator, 4 calls in flight).
    Every chunk's first delivery is cut; no line is written twice."""
    from tests.events import use_env

    use_env(monkeypatch, backend="sagemaker", sagemaker_endpoint=emu.endpoint_name,
            endpoint_url=emu.url, sagemaker_max_batch=50, concurrency=4,
            aws_endpoint_url=flow.s3.meta.endpoint_url, region="us-east-1", sinks="s3",
            chunk_queue_url=flow.queue_url, chunk_table="amlproxy-chunk-plans",
            chunk_bytes=100_000)
    emu.set_faults(latency_ms=5)
    obj = flow.put("input/repro.csv", census_file(2505, bad_after=500))
    runtime = get_runtime()
    flow.plan(obj)
    cut_by_a_step_clock(runtime)
    seen: set[str] = set()
    for _ in range(50):
        messages = flow.receive()
        if not messages:
            break
        for message in messages:
            first = message["MessageId"] not in seen
            seen.add(message["MessageId"])
            assert bool(flow.deliver([message], cut_after(batches=12) if first
                                     else LambdaContext())) == first
    assert len(flow.deliveries) >= 3 and set(flow.deliveries.values()) == {2}
    flow.assert_whole(obj, 2505, keyed=False)


def test_a_planner_killed_midway_is_redelivered_and_sends_again(flow: Flow,
                                                                 monkeypatch: Any) -> None:
    only_s3(flow, monkeypatch, chunk_bytes=4096)
    obj = flow.put("input/planned.csv", census_file(360))  # 11 chunks
    kills = kill_at(get_runtime().clients.client("sqs"), "SendMessageBatch",
                    when=lambda p: p["Entries"][0]["Id"] != "0")  # after the first 10
    with pytest.raises(Killed):
        flow.plan(obj)
    assert kills and len(flow.receive_all()) == 10  # (visible again in 10 minutes): purge
    flow.sqs.purge_queue(QueueUrl=flow.queue_url)
    assert flow.plan(obj) == {"batchItemFailures": []}  # the redelivered notification
    flow.drain()
    flow.assert_whole(obj, 360, keyed=False)


def test_an_assembler_killed_midway_is_redelivered_and_assembles_once(flow: Flow,
                                                                      monkeypatch: Any) -> None:
    only_s3(flow, monkeypatch)
    obj = flow.put("input/killed.csv", census_file(250, bad_after=30))
    clients = get_runtime().clients
    kills = kill_at(clients.client("s3"), "PutObject",
                    when=lambda p: p["Key"].startswith("rejects/"))
    silenced = kill_at(clients.client("sns"), "Publish")
    flow.plan(obj)
    # the last chunk's worker dies after the final results, before the rejects; its
    # redelivery assembles and dies before the notification; the next one announces
    flow.drain()
    assert kills and silenced and max(flow.deliveries.values()) == 3
    flow.assert_whole(obj, 250, keyed=False)
    assert len(flow.notifications()) == 1


def test_racing_assemblers_give_one_whole_output_and_one_notification(flow: Flow,
                                                                      monkeypatch: Any) -> None:
    only_s3(flow, monkeypatch)
    obj = flow.put("input/race.csv", census_file(200, bad_after=50))
    flow.plan(obj)
    messages = flow.receive_all()
    last = max(messages, key=lambda m: json.loads(m["Body"])["index"])
    flow.deliver([m for m in messages if m is not last])
    assert flow.completion(obj)["status"] == "planned"
    answers: list[Any] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        answers.append(flow.deliver([last]))  # the same message delivered twice at once

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [[], []]
    flow.assert_whole(obj, 200, keyed=False)
    assert len(flow.notifications()) == 1


def test_large_chunk_objects_are_copied_by_s3(flow: Flow, monkeypatch: Any) -> None:
    """Chunk objects of 5 MiB and more go into the final object by UploadPartCopy."""
    from tests.events import use_env

    use_env(monkeypatch, backend="local", aws_endpoint_url=flow.s3.meta.endpoint_url,
            region="us-east-1", dynamodb_table="amlproxy-chunk-results",
            chunk_queue_url=flow.queue_url, chunk_table="amlproxy-chunk-plans",
            chunk_bytes=3_000_000, sinks="s3")
    obj = flow.put("input/large.csv", census_file(25_000))  # 6 MiB of results, and a tail
    copies: list[int] = []
    s3 = get_runtime().clients.client("s3")
    s3.meta.events.register("provide-client-params.s3.UploadPartCopy",
                            lambda params, **_: copies.append(1))
    flow.plan(obj)
    flow.drain()
    results = flow.lines(f"output/large.csv.{obj['etag']}.predictions.jsonl")
    assert [r["line"] for r in results] == list(range(1, 25_001))
    assert copies and flow.keys("chunks/") == []


def test_a_new_upload_of_the_key_is_planned_and_assembled_again(flow: Flow,
                                                                monkeypatch: Any) -> None:
    """No versioning: the completion item is the ETag's, so a new upload of the same key is
    another object, with outputs of its own."""
    only_s3(flow, monkeypatch)
    first = flow.put("input/again.csv", census_file(150, bad_after=20))
    flow.plan(first)
    flow.drain()
    second = flow.put("input/again.csv", census_file(130, bad_after=10))
    assert second["etag"] != first["etag"]
    flow.plan(second)
    flow.drain()
    flow.assert_whole(first, 150, keyed=False)
    flow.assert_whole(second, 130, keyed=False)
