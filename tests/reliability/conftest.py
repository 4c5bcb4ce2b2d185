"""Shared pieces of the reliability suite: the moto stack, a webhook receiver that dedupes
by ``webhook-id``, the tally the report command adds up, and event builders."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from amlproxy.core.retry import RetryPolicy
from amlproxy.sinks.callback import CallbackSink, verify
from amlproxy.sinks.dynamodb import table_definition
from amlproxy.triggers._idempotency import table_definition as idempotency_table
from amlproxy.triggers._runtime import get_runtime
from tests.events import use_env
from tests.functional.test_sink_callback import (  # noqa: F401  (pki is a fixture)
    SECRET,
    Pki,
    Receiver,
    pki,
    receiving,
)

BUCKET = "amlproxy-rel"
TABLE = "amlproxy-results"
IDEMPOTENCY_TABLE = "amlproxy-idempotency"
TALLY_PREFIX = "reliability."


class Tally:
    """Counts a test adds to the reliability report (``python -m tests.reliability.report``):
    events_replayed, faults_injected, bad_inputs, rows_checked, rows_lost, duplicates."""

    def __init__(self, record: Callable[[str, object], None]) -> None:
        self._record = record

    def add(self, **counts: int) -> None:
        for name, value in counts.items():
            self._record(TALLY_PREFIX + name, int(value))


@pytest.fixture
def tally(record_property: Callable[[str, object], None]) -> Tally:
    return Tally(record_property)


@dataclass
class Stack:
    """moto S3 + DynamoDB (results and idempotency tables) and the clients to look."""

    s3: Any
    ddb: Any
    endpoint: str

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def lines(self, key: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines() if line]

    def items(self) -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=TABLE)
        return [item for page in pages for item in page["Items"]]

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        answer = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return {"key": key, "etag": answer["ETag"].strip('"'), "size": len(body)}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, aws_client: Any, moto_reset: str) -> Stack:
    s3, ddb = aws_client("s3"), aws_client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(**table_definition(TABLE))
    ddb.create_table(**idempotency_table(IDEMPOTENCY_TABLE))
    use_env(monkeypatch, aws_endpoint_url=moto_reset, dynamodb_table=TABLE,
            output_bucket=BUCKET, backend="local")
    return Stack(s3, ddb, moto_reset)


@dataclass
class Deliveries:
    """What the receiver accepted. A receiver that follows Standard Webhooks processes a
    ``webhook-id`` once: ``unique`` is what it acts on, ``received`` every POST."""

    receiver: Receiver

    @property
    def received(self) -> int:
        return len(self.receiver.requests)

    def unique(self) -> dict[str, dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for request in self.receiver.requests:
            verify(request.body, dict(request.headers.items()), [SECRET])  # authentic, fresh
            seen.setdefault(str(request.headers["webhook-id"]), json.loads(request.body))
        return seen

    def row_counts(self) -> Counter[tuple[str, int]]:
        """How often each row (source, line) reached the receiver's processing."""
        counts: Counter[tuple[str, int]] = Counter()
        for message in self.unique().values():
            for row in message["data"]["rows"]:
                counts[(row["source"], int(row["line"]))] += 1
        return counts


@pytest.fixture
def callback(pki: Pki) -> Iterator[Deliveries]:  # noqa: F811
    with receiving(pki) as receiver:
        yield Deliveries(receiver)


def add_callback_sink(deliveries: Deliveries, pki: Pki, **options: Any) -> CallbackSink:  # noqa: F811
    """Add a callback sink to the runtime's shared sinks (the receiver is on 127.0.0.1 with
    a test CA, which the settings cannot express: the real sink, built here)."""
    options.setdefault("retry_policy", RetryPolicy(sleep=lambda _: None))
    options.setdefault("timeout_s", 5)
    options.setdefault("allowed_ports", (deliveries.receiver.port,))
    sink = CallbackSink(deliveries.receiver.url, secrets=[SECRET], allow_private=True,
                        ssl_context=pki.client_context(), statuses=("ok", "rejected", "failed"),
                        **options)
    get_runtime().pipeline.sinks.append(sink)
    return sink
