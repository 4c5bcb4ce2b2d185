"""AmlBackend over real HTTP with a real boto3 client against the emulator."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from amlproxy.backends.aml import AmlBackend, aml_record
from amlproxy.core.ratelimit import TokenBucket
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import (
    BackendError,
    ConfigurationError,
    EndpointConnectionError,
    EndpointNotFoundError,
    EndpointServerError,
    InvalidRecordError,
    RetriesExhaustedError,
    ThrottledError,
)
from amlproxy.localmodel import load_bundled
from tests.functional.test_retry_under_faults import census_records

LABELS = ("<=50K", ">50K")
MODEL = load_bundled()


def policy(max_attempts: int = 4, **kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("base_delay_s", 0.001)
    kwargs.setdefault("max_delay_s", 0.005)
    return RetryPolicy(max_attempts=max_attempts, **kwargs)


def backend(emu: Any, **kwargs: Any) -> AmlBackend:
    kwargs.setdefault("retry_policy", policy())
    kwargs.setdefault("endpoint_url", emu.url)
    kwargs.setdefault("predict_endpoint", emu.url)
    return AmlBackend(kwargs.pop("model_id", emu.model_id), **kwargs)


def aml_counts(emu: Any, name: str | None = None) -> dict[str, Any]:
    counts = emu.endpoint_counts(name or emu.model_id)
    return counts["by_protocol"]["aml"] if counts else {"requests": 0, "by_outcome": {}}


def test_record_encoding() -> None:
    record = {"age": 39.0, "fnlwgt": 0.5, "sex": "Male", "vip": True, "old": False,
              "native-country": None}
    assert aml_record(record) == {"age": "39", "fnlwgt": "0.5", "sex": "Male", "vip": "true",
                                  "old": "false"}


def test_predictions_match_the_model(emu: Any) -> None:
    records = census_records(60)
    assert any(v is None for r in records for v in r.values())  # missing values included
    aml = backend(emu, labels=LABELS)
    for record in records:
        prediction = aml.predict(record)
        label, scores = MODEL.predict(record)
        assert prediction.label == label
        assert prediction.scores == pytest.approx(scores)
        assert prediction.backend == "aml" and prediction.model_id == emu.model_id
        assert prediction.attempts == 1 and prediction.value is None
    aml.close()
    assert aml_counts(emu)["requests"] == 60


def test_binary_answers_are_normalised_to_both_labels(emu: Any) -> None:
    aml = backend(emu)
    assert aml.max_batch_size == 1 and aml.io_bound
    records = census_records(20)
    predictions = aml.predict_batch(records)
    aml.close()
    for record, prediction in zip(records, predictions, strict=True):
        label, scores = MODEL.predict(record)
        assert prediction.label == ("1" if label == ">50K" else "0")
        assert prediction.scores["1"] == pytest.approx(scores[">50K"])
        assert prediction.scores["0"] + prediction.scores["1"] == pytest.approx(1.0)


def test_endpoint_discovery(emu: Any) -> None:
    aml = backend(emu, predict_endpoint=None, discover_endpoint=True)
    assert aml.predict_endpoint == emu.url
    assert aml.predict(census_records(1)[0]).label in ("0", "1")
    aml.close()
    with pytest.raises(ConfigurationError, match="no-such-model"):
        backend(emu, model_id="no-such-model", predict_endpoint=None, discover_endpoint=True)
    with pytest.raises(ConfigurationError, match="predict_endpoint"):
        backend(emu, predict_endpoint=None)


RETRIED = [
    ({"throttle_rate": 1.0}, ThrottledError, "LimitExceededException"),
    ({"not_ready_for_s": 60.0}, ThrottledError, "PredictorNotMountedException"),
    ({"error_rate": 1.0}, EndpointServerError, "InternalServerException"),
    ({"model_error_rate": 1.0, "model_error_status": 500}, EndpointServerError,
     "InternalServerException"),
    ({"timeout_rate": 1.0, "timeout_s": 0.05}, EndpointConnectionError, None),
]


@pytest.mark.parametrize(("faults", "error", "code"), RETRIED)
def test_retryable_errors_are_retried_up_to_the_cap(
    emu: Any, faults: dict[str, Any], error: type[Exception], code: str | None
) -> None:
    emu.set_faults(**faults)
    aml = backend(emu, retry_policy=policy(max_attempts=3))
    with pytest.raises(RetriesExhaustedError) as info:
        aml.predict(census_records(1)[0])
    aml.close()
    assert info.value.attempts == 3 and info.value.why == "max attempts"
    assert isinstance(info.value.last, error)
    if code is not None:
        assert info.value.last.code == code
    assert aml_counts(emu)["requests"] == 3


def test_not_mounted_endpoint_recovers_when_it_comes_up(emu: Any) -> None:
    aml = backend(emu, retry_policy=policy(max_attempts=60, base_delay_s=0.05,
                                            max_delay_s=0.1))
    emu.set_faults(not_ready_for_s=0.5)
    prediction = aml.predict(census_records(1)[0])
    aml.close()
    assert prediction.attempts > 1
    counts = aml_counts(emu)
    assert counts["by_outcome"]["not_ready"] == prediction.attempts - 1


def test_invalid_input_is_attempted_once(emu: Any) -> None:
    aml = backend(emu)
    with pytest.raises(InvalidRecordError) as info:
        aml.predict({**census_records(1)[0], "age": "forty"})
    assert info.value.attempts == 1 and info.value.code == "InvalidInputException"
    emu.set_faults(model_error_rate=1.0, model_error_status=400)
    with pytest.raises(InvalidRecordError):
        aml.predict(census_records(1)[0])
    aml.close()
    assert aml_counts(emu)["requests"] == 2


def test_unknown_model_is_not_found_and_attempted_once(emu: Any) -> None:
    aml = backend(emu, model_id="no-such-model")
    with pytest.raises(EndpointNotFoundError) as info:
        aml.predict(census_records(1)[0])
    aml.close()
    assert info.value.attempts == 1 and info.value.code == "ResourceNotFoundException"
    assert aml_counts(emu, "no-such-model")["requests"] == 1


def test_deadline_stops_retrying(emu: Any) -> None:
    emu.set_faults(throttle_rate=1.0)
    deadline = Deadline()
    aml = backend(emu, retry_policy=policy(max_attempts=1000, base_delay_s=0.02,
                                            max_delay_s=0.05, deadline=deadline))
    deadline.set_remaining(0.3)
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError) as info:
        aml.predict(census_records(1)[0])
    aml.close()
    assert info.value.why == "deadline"
    assert time.monotonic() - started < 1.0  # 0.3 s, plus one call at most
    assert 1 < info.value.attempts == aml_counts(emu)["requests"] < 1000


def _burst(aml: AmlBackend, records: list[dict[str, Any]], threads: int) -> list[Any]:
    def one(record: dict[str, Any]) -> Any:
        try:
            return aml.predict(record)
        except BackendError as exc:
            return exc

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, records))


def test_client_rate_limit_keeps_under_the_endpoint_limit(emu: Any) -> None:
    records = census_records(150)
    # control: without a client limit, 8 threads overrun a 30 requests/s endpoint
    fast = backend(emu, retry_policy=policy(max_attempts=1), concurrency=8)
    emu.set_faults(rps_limit=30)
    _burst(fast, records, 8)
    fast.close()
    assert aml_counts(emu)["by_outcome"]["throttled"] > 0
    # with a client limit of 25 requests/s: not one throttle
    limited = backend(emu, retry_policy=policy(max_attempts=1), concurrency=8,
                      rate_limit_rps=25)
    emu.reset()
    emu.set_faults(rps_limit=30)
    started = time.monotonic()
    results = _burst(limited, records[:50], 8)
    elapsed = time.monotonic() - started
    limited.close()
    assert all(not isinstance(r, BackendError) for r in results)
    counts = aml_counts(emu)
    assert counts["requests"] == 50 and counts["by_outcome"]["throttled"] == 0
    assert elapsed >= 49 / 25 * 0.95


def test_token_bucket_spacing_and_timeout() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    bucket = TokenBucket(10.0, clock=lambda: now[0], sleep=sleep)
    assert bucket.acquire()  # the first token is there
    assert bucket.acquire() and slept == [pytest.approx(0.1)]
    assert bucket.acquire() and slept[-1] == pytest.approx(0.2)  # queued behind the last
    assert not bucket.acquire(timeout=0.1)  # would wait 0.3 s
    now[0] = 10.0  # refilled, but never above the burst
    assert bucket.acquire() and len(slept) == 2
    assert bucket.acquire() and slept[-1] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TokenBucket(0)
