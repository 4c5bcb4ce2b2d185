"""The whole local stack under chaos (slow): SNS messages published while a fifth of the
invocations are killed are each scored once into the table or, when every one of their
three attempts was killed, recorded in the failure queue; the kills are the planned ones."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from amlproxy.local.pool import Chaos
from amlproxy.local.stack import LocalDeployment
from tests.fixtures.aws import make_client
from tests.functional.test_local_stack_e2e import RECORD


@pytest.mark.slow
def test_sns_deliveries_under_chaos_are_scored_or_recorded_as_failed(
        local_deployment: Callable[..., LocalDeployment]) -> None:
    stack = local_deployment(timeout=10, chaos=0.2, seed=5, prewarm=False,
                             async_retry_delays=(0.2, 0.4))
    sns = make_client("sns", stack.endpoints["aws"])
    sqs = make_client("sqs", stack.endpoints["aws"])
    dynamodb = make_client("dynamodb", stack.endpoints["aws"])
    assert stack.resources is not None and stack.service is not None
    topic = stack.resources.topics["PredictTopic"]
    ids = [sns.publish(TopicArn=topic, Message=json.dumps(RECORD))["MessageId"]
           for _ in range(20)]

    def settled() -> bool:
        assert stack.service is not None
        source = next(s for s in stack.sources if s.name == "SnsFunction")
        return source.deleted >= 20 and stack.service.pending_async() == 0

    deadline = time.monotonic() + 120
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert settled()
    items = dynamodb.scan(TableName="amlproxy-results")["Items"]
    scored = {i["pk"]["S"].removeprefix("sns:") for i in items if i["status"]["S"] == "ok"}
    failed: list[dict[str, Any]] = []
    queue = stack.resources.queues["FailureQueue"]
    while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        failed += [json.loads(m["Body"]) for m in got]
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    lost = {f["requestPayload"]["Records"][0]["Sns"]["MessageId"] for f in failed}
    assert scored | lost == set(ids)  # every message: scored, or recorded as failed
    assert all(f["requestContext"]["approximateInvokeCount"] == 3 for f in failed)
    stats = stack.service.pool("SnsFunction").stats
    plan = [Chaos(0.2, 5).decide("SnsFunction", n, 1.0) for n in range(stats.invocations)]
    assert stats.chaos_kills == sum(p is not None for p in plan) > 0
