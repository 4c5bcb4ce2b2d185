"""Stand-in handlers of the chunk flow, for the local service's wiring tests: they speak the
contract of /work/notes/CHUNKS_CONTRACT.md (S3 notification bodies from IngestQueue,
chunk messages on ChunkQueue, the ChunkTable item, the chunk objects, the completion
notification) in a few lines each, so that the template's wiring and the local service
are tested apart from amlproxy's scoring (``tests.functional.chunk_handlers.<name>``).

- ``planner``: splits each object into chunks of ``LOCAL_CHUNK_LINES`` lines (default 5),
  records the plan (with the key as the event spelt it) and sends one message per chunk;
  a key containing ``doomed`` fails.
- ``worker``: "scores" a chunk (upper-cases its lines, ``LOCAL_CHUNK_SLEEP_S`` long),
  puts its chunk object, notes when it ran under ``timings/``, marks it done; the worker
  that completes the set assembles the lines in order, marks the item assembled once and
  publishes to the completion topic.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config

_CONFIG = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})


def _client(service: str) -> Any:
    return boto3.client(service, endpoint_url=os.environ["AMLPROXY_AWS_ENDPOINT_URL"],  # type: ignore[call-overload]
                        region_name=os.environ.get("AWS_REGION", "us-east-1"), config=_CONFIG)


S3, SQS, DYNAMODB, SNS = (_client(name) for name in ("s3", "sqs", "dynamodb", "sns"))
TABLE = os.environ.get("AMLPROXY_CHUNK_TABLE", "")
OUTPUT_BUCKET = os.environ.get("AMLPROXY_OUTPUT_BUCKET", "")
CHUNK_PREFIX = os.environ.get("AMLPROXY_CHUNK_PREFIX", "chunks/")
OUTPUT_PREFIX = os.environ.get("AMLPROXY_OUTPUT_PREFIX", "output/")
INPUT_PREFIX = os.environ.get("AMLPROXY_INPUT_PREFIX", "input/")


def planner(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """S3 -> SQS -> here: plan each object created."""
    for record in event["Records"]:
        body = json.loads(record["body"])
        if body.get("Event") == "s3:TestEvent":
            continue  # sent when the bucket notification is set up
        for s3_record in body["Records"]:
            bucket = s3_record["s3"]["bucket"]["name"]
            key = unquote_plus(s3_record["s3"]["object"]["key"])
            if "doomed" in key:
                raise RuntimeError(f"cannot plan {key}")
            _plan(bucket, key, s3_record["s3"]["object"]["key"])
    return {"batchItemFailures": []}


def _plan(bucket: str, key: str, as_sent: str) -> None:
    head = S3.head_object(Bucket=bucket, Key=key)
    version = head.get("VersionId") or head["ETag"].strip('"')
    data = S3.get_object(Bucket=bucket, Key=key)["Body"].read()
    per_chunk = int(os.environ.get("LOCAL_CHUNK_LINES", "5"))
    starts, offset = [], 0
    for number, line in enumerate(data.splitlines(keepends=True)):
        if number % per_chunk == 0:
            starts.append(offset)
        offset += len(line)
    source = f"s3://{bucket}/{key}?versionId={version}"
    DYNAMODB.put_item(TableName=TABLE, Item={
        "object": {"S": source}, "chunks": {"N": str(len(starts))},
        "status": {"S": "planned"}, "counts": {"M": {}}, "event_key": {"S": as_sent},
        "expires_at": {"N": str(int(time.time()) + 86400)}},
        ConditionExpression="attribute_not_exists(#o)", ExpressionAttributeNames={"#o": "object"})
    ends = [*starts[1:], len(data)]
    for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
        SQS.send_message(QueueUrl=os.environ["AMLPROXY_CHUNK_QUEUE_URL"], MessageBody=json.dumps({
            "amlproxy": "chunk", "v": 1, "bucket": bucket, "key": key, "version": version,
            "etag": head["ETag"], "index": index, "count": len(starts), "start": start,
            "end": end, "first_line": index * per_chunk + 1, "header": None,
            "format": "csv"}))


def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """ChunkQueue -> here: one chunk."""
    for record in event["Records"]:
        chunk = json.loads(record["body"])
        started = time.time()
        time.sleep(float(os.environ.get("LOCAL_CHUNK_SLEEP_S", "0.5")))
        data = S3.get_object(Bucket=chunk["bucket"], Key=chunk["key"],
                             Range=f"bytes={chunk['start']}-{chunk['end'] - 1}")["Body"].read()
        stem = f"{chunk['key'].removeprefix(INPUT_PREFIX)}.{chunk['version']}"
        S3.put_object(Bucket=OUTPUT_BUCKET, Key=f"{CHUNK_PREFIX}{stem}/{chunk['index']:06d}"
                      ".results.jsonl", Body=data.upper())
        S3.put_object(Bucket=OUTPUT_BUCKET, Key=f"timings/{stem}/{chunk['index']:06d}.json",
                      Body=json.dumps({"start": started, "end": time.time(),
                                       "pid": os.getpid()}).encode())
        rows = len(data.splitlines())
        source = f"s3://{chunk['bucket']}/{chunk['key']}?versionId={chunk['version']}"
        item = DYNAMODB.update_item(
            TableName=TABLE, Key={"object": {"S": source}},
            UpdateExpression="ADD #d :i SET #c.#k = :c",
            ExpressionAttributeNames={"#d": "done", "#c": "counts", "#k": str(chunk["index"])},
            ExpressionAttributeValues={":i": {"NS": [str(chunk["index"])]}, ":c": {"M": {
                "total": {"N": str(rows)}, "ok": {"N": str(rows)},
                "rejected": {"N": "0"}, "failed": {"N": "0"}}}},
            ReturnValues="ALL_NEW")["Attributes"]
        if len(item["done"]["NS"]) == int(item["chunks"]["N"]):
            _assemble(source, stem, int(item["chunks"]["N"]))
    return {"batchItemFailures": []}


def _assemble(source: str, stem: str, chunks: int) -> None:
    parts = [S3.get_object(Bucket=OUTPUT_BUCKET, Key=f"{CHUNK_PREFIX}{stem}/{i:06d}.results"
                           ".jsonl")["Body"].read() for i in range(chunks)]
    output = f"s3://{OUTPUT_BUCKET}/{OUTPUT_PREFIX}{stem}.predictions.jsonl"
    S3.put_object(Bucket=OUTPUT_BUCKET, Key=f"{OUTPUT_PREFIX}{stem}.predictions.jsonl",
                  Body=b"".join(parts))
    total = sum(len(part.splitlines()) for part in parts)
    try:
        DYNAMODB.update_item(
            TableName=TABLE, Key={"object": {"S": source}},
            UpdateExpression="SET #s = :a, #t = :n, #ok = :n, #r = :z, #f = :z, #out = :o",
            ConditionExpression="#s = :p",
            ExpressionAttributeNames={"#s": "status", "#t": "total", "#ok": "ok",
                                      "#r": "rejected", "#f": "failed", "#out": "results"},
            ExpressionAttributeValues={":a": {"S": "assembled"}, ":p": {"S": "planned"},
                                       ":n": {"N": str(total)}, ":z": {"N": "0"},
                                       ":o": {"S": output}})
    except DYNAMODB.exceptions.ConditionalCheckFailedException:
        return  # another worker assembled it
    for i in range(chunks):
        S3.delete_object(Bucket=OUTPUT_BUCKET, Key=f"{CHUNK_PREFIX}{stem}/{i:06d}.results.jsonl")
    SNS.publish(TopicArn=os.environ["AMLPROXY_COMPLETION_TOPIC_ARN"], Message=json.dumps(
        {"object": source, "results": output, "total": total}))
