"""The completion store on moto's DynamoDB: a plan is recorded once, marking chunks done
is commutative and idempotent (concurrent workers), and exactly one assembler moves the
item to ``assembled``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from amlproxy.chunks.store import CompletionStore, table_definition
from tests.functional.chunk_flow import atomic_dynamodb  # noqa: F401  (a fixture)

TABLE = "amlproxy-store-test"
SOURCE = "s3://b/input/a.csv?versionId=v1"


def store(aws_client: Any) -> CompletionStore:
    client = aws_client("dynamodb")
    client.create_table(**table_definition(TABLE))
    return CompletionStore(TABLE, client=client)


def test_a_plan_is_recorded_once_and_reused(aws_client: Any) -> None:
    chunks = store(aws_client)
    assert chunks.get(SOURCE) is None
    first = chunks.plan(SOURCE, chunks=4, chunk_bytes=1000, fmt="csv")
    again = chunks.plan(SOURCE, chunks=9, chunk_bytes=5, fmt="jsonl")  # a racing re-plan
    assert (first.chunks, first.chunk_bytes) == (again.chunks, again.chunk_bytes) == (4, 1000)
    assert chunks.get(SOURCE) == again and not again.done


@pytest.mark.usefixtures("atomic_dynamodb")
def test_concurrent_workers_complete_the_set_once(aws_client: Any) -> None:
    chunks = store(aws_client)
    chunks.plan(SOURCE, chunks=6, chunk_bytes=1000, fmt="csv")
    counts = {"total": 10, "ok": 7, "rejected": 2, "failed": 1}
    work = [i % 6 for i in range(18)]  # every chunk done three times (redeliveries)
    with ThreadPoolExecutor(6) as pool:
        seen = list(pool.map(lambda i: chunks.done(SOURCE, i, counts), work))
    assert all(s is not None for s in seen)
    assert sum(1 for s in seen[:6] if s is not None and s.complete) <= 6
    final = chunks.get(SOURCE)
    assert final is not None and final.complete and final.done == set(range(6))
    assert final.totals() == {"total": 60, "ok": 42, "rejected": 12, "failed": 6}
    uris = {"results": "s3://b/o", "rejects": "s3://b/r"}
    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(lambda _: chunks.assembled(SOURCE, final.totals(), uris), range(4)))
    assert won.count(True) == 1
    item = aws_client("dynamodb").get_item(TableName=TABLE, Key={"object": {"S": SOURCE}})
    assert item["Item"]["status"]["S"] == "assembled" and item["Item"]["total"]["N"] == "60"
    assert chunks.get(SOURCE).assembled  # type: ignore[union-attr]


def test_a_chunk_of_an_unknown_object_is_not_recorded(aws_client: Any) -> None:
    chunks = store(aws_client)
    assert chunks.done(SOURCE, 0, {"total": 1}) is None
    assert chunks.get(SOURCE) is None
