"""S3Sink against moto server: whole objects only, multipart beyond part_size, replays."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.ports import Sink
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import ConfigurationError, FieldError, SinkError, SinkWriteError
from amlproxy.sinks.s3 import MIN_PART_SIZE, S3Sink, output_key

BUCKET = "out-bucket"
SOURCE = "s3://in-bucket/census/adult.csv?versionId=v1"
RECORD = {
    "age": 39.0,
    "workclass": "State-gov",
    "fnlwgt": 77516.0,
    "education": "Bachelors",
    "education_num": 13.0,
    "marital_status": "Never-married",
    "occupation": "Adm-clerical",
    "relationship": "Not-in-family",
    "race": "White",
    "sex": "Male",
    "capital_gain": 2174.0,
    "capital_loss": 0.0,
    "hours_per_week": 40.0,
    "native_country": "United-States",
}


def ok(line: int, p_yes: float = 0.25) -> Outcome:
    prediction = Prediction(
        label=">50K" if p_yes >= 0.5 else "<=50K",
        scores={"<=50K": 1 - p_yes, ">50K": p_yes},
        value=None,
        backend="local",
        model_id="adult-lr-1",
        latency_ms=0.5,
    )
    return Outcome(SOURCE, line, Status.OK, RECORD, None, prediction)


def rejected(line: int) -> Outcome:
    return Outcome(SOURCE, line, Status.REJECTED, None, "x,y", None, (FieldError(None, "bad"),))


def outcomes(n: int, start: int = 1) -> Iterator[list[Outcome]]:
    """n ok outcomes in chunks of 500, as the pipeline hands them over."""
    for first in range(start, start + n, 500):
        yield [ok(i, p_yes=(i % 100) / 100) for i in range(first, min(first + 500, start + n))]


@pytest.fixture
def bucket(s3_client: Any) -> str:
    s3_client.create_bucket(Bucket=BUCKET)
    return BUCKET


class S3Calls:
    """Counts S3 operations through botocore's event system."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.s3.*", self.seen)

    def seen(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


def uploads_in_progress(client: Any) -> list[Any]:
    return list(client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def keys_in(client: Any) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def jsonl_rows(client: Any, key: str) -> list[dict[str, Any]]:
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [orjson.loads(line) for line in body.splitlines()]


def test_small_output_is_one_put_with_the_right_content(s3_client: Any, bucket: str) -> None:
    calls = S3Calls(s3_client)
    key = output_key("census/adult.csv", version_id="v1")
    sink = S3Sink(bucket, key, client=s3_client)
    sink.write([ok(1, 0.75), rejected(2), ok(3)])
    sink.write([ok(4)])
    assert keys_in(s3_client) == []  # nothing visible before close
    sink.close()

    assert calls.names.count("PutObject") == 1 and "CreateMultipartUpload" not in calls.names
    assert keys_in(s3_client) == ["output/census/adult.csv.v1.jsonl"]
    rows = jsonl_rows(s3_client, key)
    assert [r["key"] for r in rows] == [f"{SOURCE}#1", f"{SOURCE}#3", f"{SOURCE}#4"]
    assert rows[0]["label"] == ">50K" and rows[0]["score_>50K"] == 0.75
    head = s3_client.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "application/x-ndjson"
    assert sink.count == 3
    assert isinstance(sink, Sink)


def test_rejects_as_csv(s3_client: Any, bucket: str) -> None:
    sink = S3Sink(bucket, "rejects/x.csv", format="csv", kind="rejects", client=s3_client)
    sink.write([ok(1), rejected(2), rejected(5)])
    sink.close()
    body = s3_client.get_object(Bucket=BUCKET, Key="rejects/x.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["line"], r["status"], r["reasons"]) for r in rows] == [
        ("2", "rejected", "bad"),
        ("5", "rejected", "bad"),
    ]


def test_empty_runs(s3_client: Any, bucket: str) -> None:
    S3Sink(bucket, "empty.csv", format="csv", labels=["<=50K", ">50K"], client=s3_client).close()
    body = s3_client.get_object(Bucket=BUCKET, Key="empty.csv")["Body"].read().decode()
    assert body.startswith("key,source,line,row_id,label,score_<=50K,score_>50K,")
    assert body.count("\n") == 1
    sink = S3Sink(bucket, "none.jsonl", kind="rejects", write_empty=False, client=s3_client)
    sink.write([ok(1)])
    sink.close()
    assert keys_in(s3_client) == ["empty.csv"]


def test_large_output_goes_multipart_and_is_whole(s3_client: Any, bucket: str) -> None:
    calls = S3Calls(s3_client)
    sink = S3Sink(
        bucket, "big.jsonl", client=s3_client, part_size=MIN_PART_SIZE, include_record=True
    )
    total = 0
    for chunk in outcomes(30_000):
        sink.write(chunk)
        total += len(chunk)
        assert keys_in(s3_client) == []  # parts are invisible until completed
    sink.close()

    parts = calls.names.count("UploadPart")
    assert calls.names.count("CreateMultipartUpload") == 1 and parts >= 2
    assert calls.names.count("CompleteMultipartUpload") == 1 and "PutObject" not in calls.names
    head = s3_client.head_object(Bucket=BUCKET, Key="big.jsonl")
    assert head["ETag"].strip('"').endswith(f"-{parts}")  # a multipart object
    assert head["ContentLength"] > MIN_PART_SIZE * (parts - 1)
    rows = jsonl_rows(s3_client, "big.jsonl")
    assert [r["line"] for r in rows] == list(range(1, total + 1))
    assert rows[-1]["record"] == RECORD
    assert uploads_in_progress(s3_client) == []


def test_a_failed_part_aborts_the_upload(s3_client: Any, bucket: str) -> None:
    failures = {"left": 1, "seen": 0}

    def fail_second_part(**_: Any) -> Any:
        failures["seen"] += 1
        if failures["seen"] == 2 and failures["left"]:
            failures["left"] -= 1
            error = {"Error": {"Code": "InternalError", "Message": "injected failure"}}
            return SimpleNamespace(status_code=500, headers={}), error
        return None

    s3_client.meta.events.register("before-call.s3.UploadPart", fail_second_part)
    sink = S3Sink(
        bucket, "big.jsonl", client=s3_client, part_size=MIN_PART_SIZE, include_record=True
    )
    with pytest.raises(SinkError, match=r"upload part 2 of s3://out-bucket/big\.jsonl"):
        for chunk in outcomes(30_000):
            sink.write(chunk)
    assert uploads_in_progress(s3_client) == []  # aborted at once
    with pytest.raises(SinkError, match="already failed"):
        sink.write([ok(1)])  # the rows before the failure are gone: no silent half object
    sink.abort()  # what the pipeline does next
    assert keys_in(s3_client) == [] and uploads_in_progress(s3_client) == []


def test_a_part_the_deadline_stops_is_an_interruption_not_a_failure(
    s3_client: Any, bucket: str
) -> None:
    """The invocation's deadline comes before a part of a run goes up: the sink stops with
    SinkWriteError(deadline=True), so the pipeline counts the run interrupted (redone by
    the retry), not its rows failed; the upload is aborted, nothing is published."""
    now = [0.0]
    deadline = Deadline(clock=lambda: now[0])
    deadline.set_remaining(5.0)
    sink = S3Sink(bucket, "big.jsonl", client=s3_client, part_size=MIN_PART_SIZE,
                  include_record=True, retry_policy=RetryPolicy(deadline=deadline))
    chunks = outcomes(30_000)
    sink.write(next(chunks))
    now[0] = 6.0  # the deadline has passed
    with pytest.raises(SinkWriteError) as caught:
        for chunk in chunks:
            sink.write(chunk)
    assert caught.value.deadline and "deadline" in str(caught.value)
    assert caught.value.keys and caught.value.written == 0
    sink.abort()
    assert keys_in(s3_client) == [] and uploads_in_progress(s3_client) == []


def test_abort_after_parts_leaves_nothing_and_keeps_the_previous_object(
    s3_client: Any, bucket: str
) -> None:
    first = S3Sink(bucket, "out.jsonl", client=s3_client, part_size=MIN_PART_SIZE)
    first.write([ok(1)])
    first.close()
    before = s3_client.get_object(Bucket=BUCKET, Key="out.jsonl")["Body"].read()

    sink = S3Sink(
        bucket, "out.jsonl", client=s3_client, part_size=MIN_PART_SIZE, include_record=True
    )
    for chunk in outcomes(15_000):
        sink.write(chunk)
    assert len(uploads_in_progress(s3_client)) == 1  # parts went up
    sink.abort()  # the run failed (a reader error, a timeout, ...)
    assert uploads_in_progress(s3_client) == []
    assert s3_client.get_object(Bucket=BUCKET, Key="out.jsonl")["Body"].read() == before

    sink.write([ok(7)])  # the sink can be used for a new run
    sink.close()
    assert [r["line"] for r in jsonl_rows(s3_client, "out.jsonl")] == [7]


def test_a_failed_put_raises_sink_error(s3_client: Any) -> None:
    sink = S3Sink("no-such-bucket", "k.jsonl", client=s3_client)
    sink.write([ok(1)])
    with pytest.raises(SinkError, match="NoSuchBucket"):
        sink.close()


def test_replay_overwrites_the_same_object(s3_client: Any, bucket: str) -> None:
    key = output_key("census/adult.csv", etag='"9b2cf535f27731c974343645a3985328"')
    assert key == "output/census/adult.csv.9b2cf535f27731c974343645a3985328.jsonl"
    for _ in range(2):
        sink = S3Sink(bucket, key, client=s3_client)
        for chunk in outcomes(1200):
            sink.write(chunk)
        sink.close()
    assert keys_in(s3_client) == [key]
    assert len(jsonl_rows(s3_client, key)) == 1200


def test_output_keys() -> None:
    assert output_key("a/b.csv", version_id="v2", etag='"e"') == "output/a/b.csv.v2.jsonl"
    assert output_key("a/b.csv", etag='"e"', prefix="rejects/") == "rejects/a/b.csv.e.jsonl"
    assert output_key("a/b.csv", suffix=".csv") == "output/a/b.csv.csv"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        S3Sink(BUCKET, "k", part_size=MIN_PART_SIZE - 1, client=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        S3Sink(BUCKET, "k", format="parquet", client=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        S3Sink(BUCKET, "", client=object())  # type: ignore[arg-type]
