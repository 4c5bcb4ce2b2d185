"""DynamoDbSink against moto server: keys, idempotent replays, chunking, UnprocessedItems."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import pytest

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.ports import Sink
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import ConfigurationError, FieldError, SinkError, SinkWriteError
from amlproxy.sinks.dynamodb import TTL_ATTRIBUTE, DynamoDbSink, number, table_definition

TABLE = "predictions"
SOURCE = "s3://in-bucket/census/adult.csv?versionId=v1"


def ok(line: int, source: str = SOURCE, p_yes: float = 0.25) -> Outcome:
    prediction = Prediction(
        label=">50K" if p_yes >= 0.5 else "<=50K",
        scores={"<=50K": 1 - p_yes, ">50K": p_yes},
        value=None,
        backend="local",
        model_id="adult-lr-1",
        latency_ms=1.23456,
        attempts=2,
    )
    return Outcome(source, line, Status.OK, {"age": 39.0}, None, prediction, row_id=f"r{line}")


def rejected(line: int) -> Outcome:
    errors = (FieldError("age", "not a number: 'abc'"), FieldError("sex", "unknown category"))
    return Outcome(SOURCE, line, Status.REJECTED, {"age": "abc"}, "abc,...", None, errors)


@pytest.fixture
def table(dynamodb_client: Any) -> str:
    dynamodb_client.create_table(**table_definition(TABLE))
    return TABLE


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class CallCounter:
    """Counts BatchWriteItem calls through botocore's event system."""

    def __init__(self, client: Any) -> None:
        self.calls: list[int] = []
        client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.seen)

    def seen(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(sum(len(v) for v in params["RequestItems"].values()))


class UnprocessedInjector:
    """Makes DynamoDB 'process' only part of a batch, as a throttled table does.

    For the first ``rounds`` BatchWriteItem calls, the last ``withhold`` requests are taken
    out of the request before it is sent (so moto never writes them) and handed back in the
    answer's ``UnprocessedItems``, exactly where DynamoDB reports them. When nothing is left
    to send, the call is answered without reaching moto (DynamoDB refuses empty batches).
    """

    def __init__(self, client: Any, *, rounds: int, withhold: int) -> None:
        self.rounds = rounds
        self.withhold = withhold
        self.calls = 0
        self._held: dict[str, list[Any]] = {}
        self._nothing_sent = False
        events = client.meta.events
        events.register("provide-client-params.dynamodb.BatchWriteItem", self.choose)
        events.register("before-call.dynamodb.BatchWriteItem", self.short_circuit)
        events.register("after-call.dynamodb.BatchWriteItem", self.report)

    def choose(self, params: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        self._held = {}
        self._nothing_sent = False
        if self.calls > self.rounds:
            return
        sent: dict[str, list[Any]] = {}
        for table, requests in params["RequestItems"].items():
            keep = max(0, len(requests) - self.withhold)
            self._held[table] = list(requests[keep:])
            if keep:
                sent[table] = list(requests[:keep])
        if sent:
            params["RequestItems"] = sent
        else:
            self._nothing_sent = True

    def short_circuit(self, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if self._nothing_sent:
            return SimpleNamespace(status_code=200, headers={}), {"UnprocessedItems": {}}
        return None

    def report(self, parsed: dict[str, Any], **_: Any) -> None:
        if self._held:
            parsed["UnprocessedItems"] = self._held


def test_items_are_keyed_by_source_and_line_and_carry_the_prediction(
    dynamodb_client: Any, table: str
) -> None:
    sink = DynamoDbSink(table, client=dynamodb_client)
    sink.write([ok(1, p_yes=0.75), rejected(2), ok(3, p_yes=1e-7)])
    sink.close()

    items = scan_all(dynamodb_client, table)
    assert sorted(int(i["sk"]["N"]) for i in items) == [1, 3]  # the reject is not kept
    first = dynamodb_client.get_item(TableName=table, Key={"pk": {"S": SOURCE}, "sk": {"N": "1"}})[
        "Item"
    ]
    assert first["key"] == {"S": f"{SOURCE}#1"}
    assert first["status"] == {"S": "ok"}
    assert first["label"] == {"S": ">50K"}
    assert first["scores"]["M"] == {"<=50K": {"N": "0.25"}, ">50K": {"N": "0.75"}}
    assert first["backend"] == {"S": "local"} and first["model_id"] == {"S": "adult-lr-1"}
    assert first["latency_ms"] == {"N": "1.235"} and first["attempts"] == {"N": "2"}
    assert first["row_id"] == {"S": "r1"}
    assert first["scored_at"]["S"].endswith("Z")
    assert "value" not in first and "reasons" not in first and TTL_ATTRIBUTE not in first
    third = dynamodb_client.get_item(TableName=table, Key={"pk": {"S": SOURCE}, "sk": {"N": "3"}})[
        "Item"
    ]
    assert float(third["scores"]["M"][">50K"]["N"]) == pytest.approx(1e-7)
    assert sink.count == 2
    assert isinstance(sink, Sink)


def test_all_statuses_keep_reasons_and_ttl(dynamodb_client: Any, table: str) -> None:
    sink = DynamoDbSink(table, client=dynamodb_client, statuses="all", ttl_days=7)
    sink.write([ok(1), rejected(2)])
    items = {int(i["sk"]["N"]): i for i in scan_all(dynamodb_client, table)}
    assert items[2]["status"] == {"S": "rejected"}
    assert items[2]["reasons"] == {
        "L": [{"S": "age: not a number: 'abc'"}, {"S": "sex: unknown category"}]
    }
    assert "label" not in items[2] and "scores" not in items[2]
    expires = int(items[1][TTL_ATTRIBUTE]["N"])
    assert abs(expires - (time.time() + 7 * 86400)) < 120


def test_rejects_only_table(dynamodb_client: Any, table: str) -> None:
    sink = DynamoDbSink(table, client=dynamodb_client, statuses=("rejected", "failed"))
    sink.write([ok(1), rejected(2), ok(3)])
    assert [i["sk"]["N"] for i in scan_all(dynamodb_client, table)] == ["2"]


def test_replay_overwrites_and_adds_nothing(dynamodb_client: Any, table: str) -> None:
    outcomes = [ok(n) for n in range(1, 61)] + [ok(n, source="sns:msg-1") for n in (1, 2)]
    DynamoDbSink(table, client=dynamodb_client).write(outcomes)
    before = dynamodb_client.scan(TableName=table, Select="COUNT")["Count"]
    replay = [ok(n, p_yes=0.9) for n in range(1, 61)] + [ok(n, source="sns:msg-1") for n in (1, 2)]
    DynamoDbSink(table, client=dynamodb_client).write(replay)
    after = dynamodb_client.scan(TableName=table, Select="COUNT")["Count"]
    assert before == after == 62
    item = dynamodb_client.get_item(TableName=table, Key={"pk": {"S": SOURCE}, "sk": {"N": "60"}})[
        "Item"
    ]
    assert item["label"] == {"S": ">50K"}  # the replay's answer won


def test_duplicate_keys_in_one_write_keep_the_last(dynamodb_client: Any, table: str) -> None:
    counter = CallCounter(dynamodb_client)
    sink = DynamoDbSink(table, client=dynamodb_client)
    sink.write([ok(1, p_yes=0.1), ok(2), ok(1, p_yes=0.8)])
    assert counter.calls == [2]  # DynamoDB (unlike moto) refuses a batch naming a key twice
    items = {int(i["sk"]["N"]): i for i in scan_all(dynamodb_client, table)}
    assert set(items) == {1, 2}
    assert items[1]["label"] == {"S": ">50K"}


def test_large_writes_are_chunked_by_25(dynamodb_client: Any, table: str) -> None:
    counter = CallCounter(dynamodb_client)
    sink = DynamoDbSink(table, client=dynamodb_client)
    sink.write([ok(n) for n in range(1, 1235)])
    assert counter.calls == [25] * 49 + [9]
    assert dynamodb_client.scan(TableName=table, Select="COUNT")["Count"] == 1234
    assert sink.count == 1234


def test_unprocessed_items_are_retried_under_the_policy(
    dynamodb_client: Any, table: str
) -> None:
    injector = UnprocessedInjector(dynamodb_client, rounds=3, withhold=10)
    delays: list[float] = []
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=10, sleep=delays.append)
    sink = DynamoDbSink(table, client=dynamodb_client, retry_policy=policy)
    sink.write([ok(n) for n in range(1, 26)])
    # call 1 writes 15 and hands back 10; calls 2 and 3 write none of those 10; call 4 does.
    assert injector.calls == 4
    assert dynamodb_client.scan(TableName=table, Select="COUNT")["Count"] == 25
    assert len(delays) == 3
    for attempt, delay in enumerate(delays, start=1):
        assert 0 <= delay <= 0.1 * 2 ** (attempt - 1)  # the policy's full jitter


def test_items_never_processed_are_reported_by_key(dynamodb_client: Any, table: str) -> None:
    UnprocessedInjector(dynamodb_client, rounds=10**6, withhold=3)
    policy = RetryPolicy(max_attempts=3, sleep=lambda _: None)
    sink = DynamoDbSink(table, client=dynamodb_client, retry_policy=policy)
    with pytest.raises(SinkWriteError) as caught:
        sink.write([ok(n) for n in range(1, 31)])  # chunks of 25 and 5
    err = caught.value
    assert isinstance(err, SinkError)
    assert set(err.keys) == {f"{SOURCE}#{n}" for n in (23, 24, 25, 28, 29, 30)}
    assert err.written == 24
    assert "6 outcome(s) not written" in str(err) and "BatchWriteItem" in str(err)
    assert "gave up after 3 attempt(s): max attempts" in str(err)
    assert not err.deadline  # a failure, not the deadline
    stored = {int(i["sk"]["N"]) for i in scan_all(dynamodb_client, table)}
    assert stored == set(range(1, 31)) - {23, 24, 25, 28, 29, 30}


def test_missing_table_reports_every_key(dynamodb_client: Any) -> None:
    sink = DynamoDbSink("no-such-table", client=dynamodb_client)
    with pytest.raises(SinkWriteError) as caught:
        sink.write([ok(n) for n in range(1, 31)])
    assert len(caught.value.keys) == 30 and caught.value.written == 0
    assert "ResourceNotFoundException" in str(caught.value)


def test_no_call_starts_after_the_deadline(dynamodb_client: Any, table: str) -> None:
    counter = CallCounter(dynamodb_client)
    deadline = Deadline()
    deadline.set_remaining(0.0)
    sink = DynamoDbSink(table, client=dynamodb_client, retry_policy=RetryPolicy(deadline=deadline))
    with pytest.raises(SinkWriteError, match="not attempted") as caught:
        sink.write([ok(n) for n in range(1, 61)])
    assert counter.calls == []
    assert len(caught.value.keys) == 60 and caught.value.written == 0
    assert caught.value.deadline  # not done rather than failed: the pipeline's cut


def test_the_deadline_stops_the_retries_and_the_chunks_after_it(
    dynamodb_client: Any, table: str
) -> None:
    """Items handed back until the deadline: the chunk's leftovers and every later chunk
    are reported, and no call starts once the time is up."""
    UnprocessedInjector(dynamodb_client, rounds=10**6, withhold=5)
    deadline = Deadline()
    deadline.set_remaining(0.3)
    counter = CallCounter(dynamodb_client)
    policy = RetryPolicy(max_attempts=1000, base_delay_s=0.05, max_delay_s=0.05,
                         deadline=deadline)
    sink = DynamoDbSink(table, client=dynamodb_client, retry_policy=policy)
    started = time.monotonic()
    with pytest.raises(SinkWriteError, match="deadline") as caught:
        sink.write([ok(n) for n in range(1, 76)])  # 3 chunks
    assert time.monotonic() - started < 0.6
    assert 2 <= len(counter.calls) < 1000
    assert caught.value.written == 20  # the first call of the first chunk wrote 20
    assert len(caught.value.keys) == 55 and caught.value.deadline


def test_nothing_kept_means_no_call(dynamodb_client: Any, table: str) -> None:
    counter = CallCounter(dynamodb_client)
    DynamoDbSink(table, client=dynamodb_client).write([rejected(1)])
    assert counter.calls == []


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        DynamoDbSink(TABLE, client=object(), statuses=("okay",))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        DynamoDbSink(TABLE, client=object(), ttl_days=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.25, "0.25"),
        (1e-05, "0.00001"),
        (1.5e-07, "1.5E-7"),
        (3, "3"),
        (1e-300, "0"),
        (math.nan, None),
        (math.inf, None),
        (-2.5e200, None),
    ],
)
def test_number_format(value: float, text: str | None) -> None:
    assert number(value) == text
