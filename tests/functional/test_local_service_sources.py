"""The local Lambda service's invocation semantics against moto server, under awslambdaric:
asynchronous retries then the OnFailure record, SQS event source mappings (partial batch
failures, visibility timeout, the dead-letter queue after maxReceiveCount,
MaximumConcurrency), reserved concurrency, chaos reproducible per seed, a killed worker
losing nothing in moto, and Lambda's Invoke API driven by boto3's lambda client."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from amlproxy.local.event_sources import SqsEventSource
from amlproxy.local.functions import AsyncConfig, FunctionSpec, SqsMapping
from amlproxy.local.invoke_api import InvokeApi
from amlproxy.local.pool import Chaos, ServiceSettings
from amlproxy.local.service import LambdaService
from amlproxy.local.workers import WorkerSettings, awslambdaric_available
from tests.fixtures.aws import make_client

HANDLERS = "tests.functional.local_handlers"
CLIENT = "awslambdaric" if awslambdaric_available() else "builtin"
DESTINATION = "arn:aws:sqs:us-east-1:123456789012:failures"
FUNCTIONS = [
    FunctionSpec("Echo", f"{HANDLERS}.echo", timeout_s=3),
    FunctionSpec("Fail", f"{HANDLERS}.fail", timeout_s=3,
                 async_config=AsyncConfig(maximum_retry_attempts=2,
                                          on_failure_arn=DESTINATION)),
    FunctionSpec("Hang", f"{HANDLERS}.write_then_hang", timeout_s=4),
    FunctionSpec("Sleep", f"{HANDLERS}.sleep", timeout_s=5, reserved_concurrency=2),
    FunctionSpec("Batch", f"{HANDLERS}.batch", timeout_s=3, reserved_concurrency=3),
]


class Destinations:
    """Collects what the service sends to OnFailure destinations."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, arn: str, body: bytes) -> None:
        self.sent.append((arn, json.loads(body)))


@pytest.fixture(scope="module")
def destinations() -> Destinations:
    return Destinations()


@pytest.fixture(scope="module")
def service(destinations: Destinations) -> Iterator[LambdaService]:
    running = LambdaService(FUNCTIONS, ServiceSettings(
        workers=WorkerSettings(runtime_client=CLIENT),  # type: ignore[arg-type]
        async_retry_delays_s=(0.2, 0.4)), destination=destinations)
    try:
        yield running
    finally:
        running.stop()


def _wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def test_async_invoke_is_retried_twice_then_goes_to_the_on_failure_destination(
        service: LambdaService, destinations: Destinations) -> None:
    before = service.pool("Fail").stats.invocations
    started = time.monotonic()
    request_id = service.invoke_async("Fail", {"message": "never works"})
    assert _wait(lambda: destinations.sent), "no OnFailure record"
    elapsed = time.monotonic() - started
    assert service.pool("Fail").stats.invocations == before + 3
    assert elapsed >= 0.6  # the two retry delays
    (arn, record), = destinations.sent
    assert arn == DESTINATION
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": request_id, "condition": "RetriesExhausted", "approximateInvokeCount": 3,
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:Fail:$LATEST"}
    assert record["requestPayload"] == {"message": "never works"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                         "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == "never works"
    stats = service.pool("Fail").stats
    assert (stats.async_retries, stats.on_failure) == (2, 1)
    assert service.pending_async() == 0
    # the same request id in every attempt, as Lambda's retries keep it
    assert sum(request_id in r.text for r in service.logs.records("Fail")) >= 3


def test_reserved_concurrency_caps_the_workers_and_throttles_the_rest(
        service: LambdaService) -> None:
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(
        service.invoke("Sleep", {"seconds": 0.6}))) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    throttled = service.invoke("Sleep", {"seconds": 0}, wait_s=0)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert throttled.kind == "throttled"
    assert throttled.json()["errorType"] == "TooManyRequestsException"
    assert [r.kind for r in results] == ["ok"] * 4
    assert len({r.json()["pid"] for r in results}) == 2  # two workers, each used twice
    assert elapsed >= 1.2  # two rounds of two
    assert service.pool("Sleep").stats.cold_starts == 2
    assert service.pool("Sleep").stats.throttles == 1


def test_a_killed_worker_loses_nothing_in_moto(service: LambdaService, s3_client: Any,
                                               moto_server: str) -> None:
    s3_client.create_bucket(Bucket="kept")
    outcome = service.invoke("Hang", {"endpoint_url": moto_server, "bucket": "kept",
                                      "key": "before-the-kill"})
    assert outcome.kind == "timeout"
    body = s3_client.get_object(Bucket="kept", Key="before-the-kill")["Body"].read()
    assert body == b"written before the kill"
    assert s3_client.list_buckets()["Buckets"]  # moto still answers


@pytest.fixture
def work_queue(sqs_client: Any) -> tuple[str, str, str]:
    """A queue (visibility 1 s) whose redrive policy moves a message to its DLQ after 2
    receives; its URL, ARN and the DLQ's URL."""
    dlq = sqs_client.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs_client.create_queue(QueueName="work", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
    })["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, arn, dlq


def _source(service: LambdaService, moto_server: str, url: str, arn: str,
            **mapping: Any) -> SqsEventSource:
    source = SqsEventSource(service, "Batch", SqsMapping(queue_arn=arn, **mapping),
                            lambda name: make_client(name, moto_server), url)
    source.start()
    return source


def _depth(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]))


def test_sqs_mapping_deletes_successes_and_sends_reported_failures_to_the_dlq(
        service: LambdaService, sqs_client: Any, moto_server: str,
        work_queue: tuple[str, str, str]) -> None:
    url, arn, dlq = work_queue
    for body in ("ok-1", "ok-2", "fail-1", "ok-3"):
        sqs_client.send_message(QueueUrl=url, MessageBody=body)
    source = _source(service, moto_server, url, arn, batch_size=10,
                     report_batch_item_failures=True, maximum_concurrency=2)
    try:
        moved = _wait(lambda: sqs_client.receive_message(
            QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"), timeout=30)
    finally:
        source.stop()
        source.join(5)
    assert [m["Body"] for m in moved] == ["fail-1"]  # after 2 receives (maxReceiveCount)
    assert source.deleted == 3 and source.failed_messages == 2
    assert _depth(sqs_client, url) == (0, 0)


def test_sqs_mapping_without_reports_redelivers_a_failed_batch_after_the_visibility_timeout(
        service: LambdaService, sqs_client: Any, moto_server: str,
        work_queue: tuple[str, str, str]) -> None:
    url, arn, dlq = work_queue
    sqs_client.send_message(QueueUrl=url, MessageBody="raise")
    sqs_client.send_message(QueueUrl=url, MessageBody="fail-but-not-reported")
    before = service.pool("Batch").stats.errors
    source = _source(service, moto_server, url, arn, batch_size=10)
    try:
        assert _wait(lambda: _depth(sqs_client, dlq)[0] >= 1, timeout=30)
        time.sleep(1.5)
    finally:
        source.stop()
        source.join(5)
    # "raise" fails its batch each time: received twice (1 s apart), then in the DLQ;
    # the unreported failure counts as a success once it is in a batch of its own
    assert service.pool("Batch").stats.errors - before >= 2
    bodies = [m["Body"] for m in sqs_client.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])]
    assert "raise" in bodies


def test_sqs_mapping_runs_at_most_maximum_concurrency_batches(
        service: LambdaService, sqs_client: Any, moto_server: str,
        work_queue: tuple[str, str, str]) -> None:
    url, arn, _ = work_queue
    sqs_client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "30"})
    for _ in range(6):
        sqs_client.send_message(QueueUrl=url, MessageBody="sleep:0.5")
    pool = service.pool("Batch")
    busy_seen = []
    source = _source(service, moto_server, url, arn, batch_size=1, maximum_concurrency=2)
    try:
        def drained() -> bool:
            busy_seen.append(sum(w["busy"] for w in pool.status()["workers"]))
            return source.deleted == 6
        assert _wait(drained, timeout=30)
    finally:
        source.stop()
        source.join(5)
    assert max(busy_seen) == 2  # MaximumConcurrency, under the reserved 3


def test_chaos_kills_are_reproducible_per_seed() -> None:
    chaos = Chaos(0.3, seed=11)
    plan = [chaos.decide("Echo", n, 0.05) for n in range(12)]
    assert plan == [Chaos(0.3, seed=11).decide("Echo", n, 0.05) for n in range(12)]
    assert plan != [Chaos(0.3, seed=12).decide("Echo", n, 0.05) for n in range(12)]
    assert any(plan) and not all(plan)
    running = LambdaService([FunctionSpec("Echo", f"{HANDLERS}.echo", timeout_s=3)],
                            ServiceSettings(chaos=chaos, workers=WorkerSettings(
                                runtime_client=CLIENT)))  # type: ignore[arg-type]
    try:
        kinds = [running.invoke("Echo", {"n": n}).kind for n in range(12)]
    finally:
        running.stop()
    assert kinds == ["ok" if p is None else p[0] for p in plan]
    stats = running.pool("Echo").stats
    assert stats.chaos_kills == sum(p is not None for p in plan)
    assert stats.cold_starts == 1 + sum(p is not None for p in plan[:-1])


@pytest.mark.slow
def test_chaos_over_many_invocations_kills_the_planned_share() -> None:
    chaos = Chaos(0.2, seed=3)
    running = LambdaService([FunctionSpec("Sleep", f"{HANDLERS}.sleep", timeout_s=2)],
                            ServiceSettings(chaos=chaos, workers=WorkerSettings(
                                runtime_client=CLIENT)))  # type: ignore[arg-type]
    try:
        kinds = [running.invoke("Sleep", {"seconds": 0.05}).kind for _ in range(200)]
    finally:
        running.stop()
    planned = [chaos.decide("Sleep", n, 1.0) for n in range(200)]
    assert kinds == ["ok" if p is None else p[0] for p in planned]
    assert 20 <= sum(p is not None for p in planned) <= 60


@pytest.fixture(scope="module")
def invoke_api(service: LambdaService) -> Iterator[str]:
    api = InvokeApi(service, "127.0.0.1", 0)
    try:
        yield api.start()
    finally:
        api.stop()


def test_boto3_lambda_client_invokes_over_the_invoke_api(invoke_api: str) -> None:
    client = make_client("lambda", invoke_api)
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    answer = client.invoke(FunctionName="Echo", Payload=b'{"a": 1}', LogType="Tail",
                           ClientContext=context)
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    body = json.loads(answer["Payload"].read())
    assert body["event"] == {"a": 1}
    failed = client.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:Fail",
                           Payload=b'{"message": "x"}', LogType="Tail")
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
    tail = base64.b64decode(failed["LogResult"]).decode()
    assert "ValueError" in tail and "failing invocation" in tail
    queued = client.invoke(FunctionName="Echo", InvocationType="Event", Payload=b"{}")
    assert queued["StatusCode"] == 202
    assert client.invoke(FunctionName="Echo", InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="Nope", Payload=b"{}")
