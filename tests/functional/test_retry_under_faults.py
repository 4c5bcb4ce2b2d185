"""Thousands of census records through the emulator with 30% throttling and 5% 5xx errors
(seeded): every record ends scored or failed with a reason, no record is attempted more
often than the cap, and our attempt counts match the emulator's request counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from amlproxy.backends.aml import AmlBackend
from amlproxy.backends.sagemaker import SageMakerBackend
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import RetryPolicy
from amlproxy.core.schema import load_schema
from amlproxy.errors import (
    BackendError,
    RecordValidationError,
    RetriesExhaustedError,
    ThrottledError,
)
from amlproxy.localmodel import load_bundled

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
CAP = 5
LABELS = ("<=50K", ">50K")


def census_records(n: int) -> list[dict[str, Any]]:
    """``n`` validated census records: the valid rows of the example file, cycled."""
    schema = load_schema("census-income")
    valid: list[dict[str, Any]] = []
    for number, line in enumerate(SAMPLE.read_text().splitlines(), 1):
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(schema.column_names):
            continue
        try:
            fields = dict(zip(schema.column_names, cells, strict=True))
            valid.append(schema.validate(fields, line=number))
        except RecordValidationError:
            continue
    assert len(valid) > 300
    return [valid[i % len(valid)] for i in range(n)]


def score_all(
    predict_batch: Callable[[Sequence[Mapping[str, Any]]], list[Prediction]],
    records: list[dict[str, Any]],
    batch_size: int,
    concurrency: int,
) -> list[list[Prediction] | BackendError]:
    """What the pipeline does: batches on a thread pool, a BackendError per failed batch."""

    def one(batch: list[dict[str, Any]]) -> list[Prediction] | BackendError:
        try:
            return predict_batch(batch)
        except BackendError as exc:
            return exc

    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, batches))


def fast_policy() -> RetryPolicy:
    return RetryPolicy(max_attempts=CAP, base_delay_s=0.001, max_delay_s=0.01, seed=11)


def check_outcomes(
    results: list[list[Prediction] | BackendError], records: list[dict[str, Any]],
    batch_size: int, counts: Mapping[str, Any],
) -> tuple[int, int]:
    """Checks every batch against the local model and the emulator's counts; returns
    (records scored, records failed)."""
    model = load_bundled()
    attempts = scored = failed = 0
    for i, result in enumerate(results):
        batch = records[i * batch_size : (i + 1) * batch_size]
        if isinstance(result, BackendError):
            assert str(result)  # a reason
            assert isinstance(result, RetriesExhaustedError)
            assert result.why == "max attempts" and result.attempts == CAP
            attempts += result.attempts
            failed += len(batch)
            continue
        assert len(result) == len(batch)
        batch_attempts = {p.attempts for p in result}
        assert len(batch_attempts) == 1 and 1 <= result[0].attempts <= CAP
        attempts += result[0].attempts
        for record, prediction in zip(batch, result, strict=True):
            label, scores = model.predict(record)
            assert prediction.label == label
            assert prediction.scores[LABELS[1]] == pytest.approx(scores[LABELS[1]], abs=1e-9)
        scored += len(batch)
    outcome = counts["by_outcome"]
    assert counts["requests"] == attempts  # every attempt reached the emulator, no more
    assert outcome["ok"] == len(results) - sum(isinstance(r, BackendError) for r in results)
    assert outcome["throttled"] + outcome["server_error"] == attempts - outcome["ok"]
    assert counts["records"] == scored
    return scored, failed


def test_aml_one_record_per_call_under_throttling_and_errors(emu: Any) -> None:
    emu.set_faults(throttle_rate=0.30, error_rate=0.05, seed=20240611)
    records = census_records(3000)
    backend = AmlBackend(emu.model_id, predict_endpoint=emu.url,
                         endpoint_url=emu.url, labels=LABELS, concurrency=16,
                         retry_policy=fast_policy())
    try:
        results = score_all(backend.predict_batch, records, 1, 16)
    finally:
        backend.close()
    counts = emu.endpoint_counts(emu.model_id)["by_protocol"]["aml"]
    scored, failed = check_outcomes(results, records, 1, counts)
    assert scored + failed == len(records)
    assert counts["by_outcome"]["throttled"] > 0.2 * counts["requests"]
    assert counts["by_outcome"]["server_error"] > 0
    assert failed < 0.02 * len(records)  # 0.35**5 ~ 0.5% of records give up


def test_sagemaker_batches_under_throttling_and_errors(emu: Any) -> None:
    emu.set_faults(throttle_rate=0.30, error_rate=0.05, error_status=503, seed=7)
    records = census_records(4000)
    backend = SageMakerBackend(emu.endpoint_name, schema_feature_names=load_bundled(
        ).feature_names, labels=LABELS, max_batch_size=20, concurrency=8,
        retry_policy=fast_policy(), endpoint_url=emu.url)
    try:
        results = score_all(backend.predict_batch, records, 20, 8)
    finally:
        backend.close()
    counts = emu.endpoint_counts()["by_protocol"]["sagemaker"]
    scored, failed = check_outcomes(results, records, 20, counts)
    assert scored + failed == len(records)
    assert counts["by_outcome"]["throttled"] > 0.2 * counts["requests"]


def test_without_the_retry_policy_faults_would_fail_records(emu: Any) -> None:
    """The control: the same faults with one attempt per record lose about 35% of them,
    and botocore adds no retry of its own (one request per record)."""
    emu.set_faults(throttle_rate=0.30, error_rate=0.05, seed=3)
    records = census_records(300)
    backend = AmlBackend(emu.model_id, predict_endpoint=emu.url,
                         endpoint_url=emu.url, retry_policy=RetryPolicy(max_attempts=1))
    failures = 0
    for record in records:
        try:
            backend.predict(record)
        except RetriesExhaustedError as exc:
            assert exc.attempts == 1
            failures += 1
            if isinstance(exc.last, ThrottledError):
                assert exc.last.code == "LimitExceededException"
    backend.close()
    counts = emu.endpoint_counts(emu.model_id)["by_protocol"]["aml"]
    assert counts["requests"] == len(records)
    assert 0.25 * len(records) < failures < 0.45 * len(records)
