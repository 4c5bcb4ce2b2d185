"""The chunk flow on a moto server, driven in-process: S3 -> ingest SQS event -> the planner
(``amlproxy.triggers.s3.handler``) -> the chunk queue (a real moto queue) -> the chunk
worker (``amlproxy.triggers.chunks.handler``), delivered as Lambda's event source mapping
would: a received batch, messages deleted unless reported as batch item failures, which
become visible again (a redelivery)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from amlproxy.chunks.store import table_definition as chunk_table
from amlproxy.sinks.dynamodb import table_definition
from amlproxy.triggers import chunks as chunk_trigger
from amlproxy.triggers import s3 as s3_trigger
from tests.events import LambdaContext, load_event, use_env
from tests.functional.test_trigger_s3 import s3_event

BUCKET = "amlproxy-chunks"
TABLE = "amlproxy-chunk-results"
CHUNK_TABLE = "amlproxy-chunk-plans"
ROW = b"39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, " \
      b"White, Male, 2174, 0, 40, United-States, <=50K\n"
BAD = b"not, a, census, row\n"


class Killed(BaseException):
    """A simulated kill: nothing in amlproxy catches it, as nothing survives a real one."""


def census_file(rows: int, *, bad_after: int = 0) -> bytes:
    """``rows`` lines of census rows; with ``bad_after``, a bad row after every
    ``bad_after`` valid ones (the issue's reproducer)."""
    lines = []
    valid = 0
    while len(lines) < rows:
        if bad_after and valid == bad_after:
            lines.append(BAD)
            valid = 0
            continue
        lines.append(ROW)
        valid += 1
    return b"".join(lines)


def plan_id(obj: dict[str, Any]) -> str:
    """The key of the completion item of an object of an unversioned bucket."""
    return f"s3://{BUCKET}/{obj['key']}?etag={obj['etag']}"


def sqs_record(message_id: str, body: str, receipt: str = "r", arn: str = "q") -> dict[str, Any]:
    template = load_event("sqs_receive_message")["Records"][0]
    return {**template, "messageId": message_id, "receiptHandle": receipt, "body": body,
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{arn}"}


@dataclass
class Flow:
    """The moto resources and the deliveries made."""

    s3: Any
    ddb: Any
    sqs: Any
    queue_url: str
    done_url: str
    topic_arn: str
    deliveries: Counter[str] = field(default_factory=Counter)  # chunk index -> deliveries

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        answer = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return {"bucket": BUCKET, "key": key, "etag": answer["ETag"].strip('"'),
                "size": len(body)}

    def plan(self, obj: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The planner, given the S3 notification through the ingest queue."""
        event = {"Records": [sqs_record("n-1", json.dumps(s3_event(obj)), arn="ingest")]}
        answer: dict[str, Any] = s3_trigger.handler(event, context or LambdaContext())
        return answer

    def receive(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", [])
        return found

    def receive_all(self) -> list[dict[str, Any]]:
        """Every visible message (each then invisible for 10 minutes)."""
        found: list[dict[str, Any]] = []
        while batch := self.receive():
            found += batch
        return found

    def deliver(self, messages: list[dict[str, Any]], context: Any = None) -> list[str]:
        """One invocation of the worker on ``messages``; the ids it failed (made visible
        again). A :class:`Killed` invocation leaves every message to be redelivered."""
        for m in messages:
            self.deliveries[str(json.loads(m["Body"])["index"])] += 1
        event = {"Records": [sqs_record(m["MessageId"], m["Body"], m["ReceiptHandle"],
                                        "chunks") for m in messages]}
        try:
            answer = chunk_trigger.handler(event, context or LambdaContext())
            failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        except Killed:
            failed = [m["MessageId"] for m in messages]
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                                   ReceiptHandle=m["ReceiptHandle"],
                                                   VisibilityTimeout=0)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=m["ReceiptHandle"])
        return failed

    def drain(self, context: Any = None, rounds: int = 200) -> None:
        for _ in range(rounds):
            messages = self.receive()
            if not messages:
                return
            self.deliver(messages, context)
        raise AssertionError("the chunk queue never drained")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def lines(self, key: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines() if line]

    def completion(self, obj: dict[str, Any]) -> dict[str, Any]:
        item = self.ddb.get_item(TableName=CHUNK_TABLE, ConsistentRead=True,
                                 Key={"object": {"S": plan_id(obj)}})["Item"]
        return {k: v.get("S") or v.get("N") or v.get("NS") or v.get("M") for k, v in item.items()}

    def notifications(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.done_url, MaxNumberOfMessages=10)
            if not got.get("Messages"):
                return found
            found += [json.loads(json.loads(m["Body"])["Message"]) for m in got["Messages"]]

    def assert_whole(self, obj: dict[str, Any], total: int, *, keyed: bool = True
                     ) -> dict[str, Any]:
        """Every line exactly once, in line order, in the final results and rejects and
        in DynamoDB; the completion counts reconcile; the chunk objects are gone."""
        stem = obj["key"].removeprefix("input/")
        results = [r["line"] for r in self.lines(f"output/{stem}.{obj['etag']}.predictions.jsonl")]
        rejects = [r["line"] for r in self.lines(f"rejects/{stem}.{obj['etag']}.rejects.jsonl")]
        assert results == sorted(results) and rejects == sorted(rejects)
        assert sorted(results + rejects) == list(range(1, total + 1))
        if keyed:
            items = Counter(int(i["sk"]["N"]) for page in self.ddb.get_paginator(
                "scan").paginate(TableName=TABLE) for i in page["Items"])
            assert sorted(items) == list(range(1, total + 1)) and set(items.values()) == {1}
        done = self.completion(obj)
        assert done["status"] == "assembled" and len(done["done"]) == int(done["chunks"])
        assert int(done["total"]) == total == int(done["ok"]) + int(done["rejected"]) + int(
            done["failed"])
        assert int(done["ok"]) == len(results) and int(done["rejected"]) == len(rejects)
        assert self.keys("chunks/") == []
        return done


_ITEM_WRITES = threading.Lock()


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies the writes to one item one at a time (a conditional write sees the
    item as the previous write left it); moto's server runs requests on threads without
    that guarantee. The tests give moto the lock DynamoDB has: conditional writes then race
    as they do in AWS."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in ("put_item", "update_item", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _ITEM_WRITES:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture(name="flow")
def flow_fixture(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str,
                 atomic_dynamodb: None) -> Flow:
    s3, ddb, sqs, sns = (aws_client(name) for name in ("s3", "dynamodb", "sqs", "sns"))
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(**table_definition(TABLE))
    ddb.create_table(**chunk_table(CHUNK_TABLE))
    queue_url = sqs.create_queue(QueueName="chunks")["QueueUrl"]
    done_url = sqs.create_queue(QueueName="done")["QueueUrl"]
    done_arn = sqs.get_queue_attributes(QueueUrl=done_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    topic = sns.create_topic(Name="completion")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=done_arn)
    use_env(monkeypatch, backend="local", aws_endpoint_url=moto_reset, region="us-east-1",
            dynamodb_table=TABLE, chunk_queue_url=queue_url, chunk_table=CHUNK_TABLE,
            chunk_bytes=8192, completion_topic_arn=topic)
    return Flow(s3, ddb, sqs, queue_url, done_url, topic)
