"""SageMakerBackend over real HTTP with a real boto3 client: against the emulator, and
against a recording server for the pass-through headers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from amlproxy.backends.sagemaker import SageMakerBackend
from amlproxy.backends.sagemaker_codec import CsvEncoder, JsonEncoder, pack
from amlproxy.core.retry import RetryPolicy
from amlproxy.errors import (
    EndpointConnectionError,
    EndpointNotFoundError,
    EndpointServerError,
    InvalidRecordError,
    NonRetryableBackendError,
    RetriesExhaustedError,
    ThrottledError,
)
from amlproxy.localmodel import load_bundled
from tests.functional.test_retry_under_faults import census_records

LABELS = ("<=50K", ">50K")
MODEL = load_bundled()
FEATURES = MODEL.feature_names


def policy(max_attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, base_delay_s=0.001, max_delay_s=0.005)


def backend(emu: Any, **kwargs: Any) -> SageMakerBackend:
    kwargs.setdefault("retry_policy", policy())
    kwargs.setdefault("endpoint_url", emu.url)
    kwargs.setdefault("labels", LABELS)
    name = kwargs.pop("endpoint_name", emu.endpoint_name)
    return SageMakerBackend(name, schema_feature_names=FEATURES, **kwargs)


def sm_counts(emu: Any, name: str | None = None) -> dict[str, Any]:
    counts = emu.endpoint_counts(name)
    return counts["by_protocol"]["sagemaker"] if counts else {"requests": 0, "records": 0}


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_predictions_match_the_model_in_one_request(emu: Any, content_type: str) -> None:
    records = census_records(120)
    sm = backend(emu, content_type=content_type, max_batch_size=500)
    predictions = sm.predict_batch(records)
    sm.close()
    assert len(predictions) == len(records)
    for record, prediction in zip(records, predictions, strict=True):
        label, scores = MODEL.predict(record)
        assert prediction.label == label
        assert prediction.scores == pytest.approx(scores)
        assert prediction.backend == "sagemaker" and prediction.model_id == emu.endpoint_name
        assert prediction.attempts == 1 and prediction.extra == {"variant": "AllTraffic"}
    counts = sm_counts(emu)
    assert counts["requests"] == 1 and counts["records"] == len(records)


def test_default_labels_are_amazon_ml_style(emu: Any) -> None:
    sm = backend(emu, labels=("0", "1"))
    [prediction] = sm.predict_batch(census_records(1))
    label, scores = MODEL.predict(census_records(1)[0])
    assert prediction.label == ("1" if label == ">50K" else "0")
    assert prediction.scores["1"] == pytest.approx(scores[">50K"])
    sm.close()


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_batches_are_split_under_the_payload_limit(emu: Any, content_type: str) -> None:
    records = census_records(200)
    limit = 1500
    sm = backend(emu, content_type=content_type, max_payload_bytes=limit, max_batch_size=1000)
    predictions = sm.predict_batch(records)
    sm.close()
    assert [p.label for p in predictions] == [MODEL.predict(r)[0] for r in records]
    encoder = CsvEncoder(FEATURES) if content_type == "text/csv" else JsonEncoder(FEATURES)
    expected_requests = len(pack([len(encoder.encode(r)) for r in records], encoder, limit))
    counts = sm_counts(emu)
    assert counts["requests"] == expected_requests > 10
    assert counts["records"] == len(records)


def test_more_records_than_max_batch_size_take_several_requests(emu: Any) -> None:
    records = census_records(95)
    sm = backend(emu, max_batch_size=10)
    assert sm.max_batch_size == 10
    assert len(sm.predict_batch(records)) == 95
    sm.close()
    assert sm_counts(emu)["requests"] == 10


def test_an_empty_batch_makes_no_call(emu: Any) -> None:
    sm = backend(emu)
    assert sm.predict_batch([]) == []
    sm.close()
    assert sm_counts(emu)["requests"] == 0


def test_a_record_too_big_alone_is_refused_before_any_call(emu: Any) -> None:
    records = census_records(3)
    records[1] = {**records[1], "occupation": "x" * 5000}
    sm = backend(emu, max_payload_bytes=4000)
    with pytest.raises(InvalidRecordError) as info:
        sm.predict_batch(records)
    assert "record 2 " in str(info.value) and info.value.attempts == 0
    sm.close()
    assert sm_counts(emu)["requests"] == 0


def test_single_record_containers_get_one_object_per_request(emu: Any) -> None:
    records = census_records(5)
    sm = backend(emu, content_type="application/json", multi_record=False, max_batch_size=50)
    assert sm.max_batch_size == 1
    assert [p.label for p in sm.predict_batch(records)] == [MODEL.predict(r)[0] for r in records]
    sm.close()
    assert sm_counts(emu)["requests"] == 5


# ------------------------------------------------------------------------ error mapping

RETRIED = [
    ({"throttle_rate": 1.0}, ThrottledError, "ThrottlingException"),
    ({"not_ready_for_s": 60.0}, ThrottledError, "ModelNotReadyException"),
    ({"error_rate": 1.0}, EndpointServerError, "InternalFailure"),
    ({"error_rate": 1.0, "error_status": 503}, EndpointServerError, "ServiceUnavailable"),
    ({"model_error_rate": 1.0, "model_error_status": 500}, EndpointServerError, "ModelError"),
    ({"timeout_rate": 1.0, "timeout_s": 0.05}, EndpointConnectionError, None),
]


@pytest.mark.parametrize(("faults", "error", "code"), RETRIED)
def test_retryable_errors_are_retried_up_to_the_cap(
    emu: Any, faults: dict[str, Any], error: type[Exception], code: str | None
) -> None:
    emu.set_faults(**faults)
    sm = backend(emu, retry_policy=policy(max_attempts=3))
    with pytest.raises(RetriesExhaustedError) as info:
        sm.predict_batch(census_records(4))
    sm.close()
    assert info.value.attempts == 3 and info.value.why == "max attempts"
    assert isinstance(info.value.last, error)
    if code is not None:
        assert info.value.last.code == code
    assert sm_counts(emu)["requests"] == 3


def test_read_timeout_is_a_connection_error(emu: Any) -> None:
    emu.set_faults(timeout_rate=1.0, timeout_s=3.0)
    sm = backend(emu, retry_policy=policy(max_attempts=2), read_timeout_s=0.2)
    with pytest.raises(RetriesExhaustedError) as info:
        sm.predict(census_records(1)[0])
    sm.close()
    assert isinstance(info.value.last, EndpointConnectionError)
    assert info.value.last.code == "ReadTimeoutError"
    assert sm_counts(emu)["requests"] == 2


def test_a_retryable_error_that_clears_is_invisible_but_counted(emu: Any) -> None:
    emu.set_faults(throttle_rate=0.5, seed=4)
    sm = backend(emu, retry_policy=policy(max_attempts=20), max_batch_size=1)
    predictions = sm.predict_batch(census_records(40))
    sm.close()
    counts = sm_counts(emu)
    assert sum(p.attempts for p in predictions) == counts["requests"] > 40
    assert counts["by_outcome"]["throttled"] == counts["requests"] - 40


NOT_RETRIED = [
    ({"model_error_rate": 1.0, "model_error_status": 400}, InvalidRecordError, "ModelError"),
    ({"model_error_rate": 1.0, "model_error_status": 404}, InvalidRecordError, "ModelError"),
]


@pytest.mark.parametrize(("faults", "error", "code"), NOT_RETRIED)
def test_non_retryable_errors_are_attempted_once(
    emu: Any, faults: dict[str, Any], error: type[Exception], code: str
) -> None:
    emu.set_faults(**faults)
    sm = backend(emu)
    with pytest.raises(NonRetryableBackendError) as info:
        sm.predict_batch(census_records(2))
    sm.close()
    assert type(info.value) is error and info.value.code == code
    assert info.value.attempts == 1
    assert "model container answered" in str(info.value)
    assert sm_counts(emu)["requests"] == 1


def test_a_bad_value_is_an_invalid_record(emu: Any) -> None:
    sm = backend(emu)
    record = {**census_records(1)[0], "age": "forty"}
    with pytest.raises(InvalidRecordError) as info:
        sm.predict(record)
    sm.close()
    assert info.value.attempts == 1 and info.value.status == 424
    assert sm_counts(emu)["requests"] == 1


def test_unknown_endpoint_and_variant_are_not_found(emu: Any) -> None:
    sm = backend(emu, endpoint_name="no-such-endpoint")
    with pytest.raises(EndpointNotFoundError) as info:
        sm.predict(census_records(1)[0])
    assert info.value.attempts == 1 and info.value.code == "ValidationError"
    sm.close()
    assert sm_counts(emu, "no-such-endpoint")["requests"] == 1
    sm = backend(emu, target_variant="Blue")
    with pytest.raises(EndpointNotFoundError):
        sm.predict(census_records(1)[0])
    sm.close()
    assert sm_counts(emu)["requests"] == 1


def test_unsupported_content_type_is_refused_by_the_container(emu: Any) -> None:
    sm = backend(emu, accept="application/x-protobuf")
    with pytest.raises(InvalidRecordError) as info:
        sm.predict(census_records(1)[0])
    sm.close()
    assert "406" in str(info.value)


def test_connection_refused_is_retried(emu: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    sm = backend(emu, endpoint_url=f"http://127.0.0.1:{port}", retry_policy=policy(3))
    with pytest.raises(RetriesExhaustedError) as info:
        sm.predict(census_records(1)[0])
    sm.close()
    assert info.value.attempts == 3
    assert isinstance(info.value.last, EndpointConnectionError)


def test_botocore_does_not_retry_on_its_own(emu: Any) -> None:
    emu.set_faults(throttle_rate=1.0)
    sm = backend(emu, retry_policy=policy(max_attempts=1))
    with pytest.raises(RetriesExhaustedError):
        sm.predict(census_records(1)[0])
    sm.close()
    assert sm_counts(emu)["requests"] == 1


# ------------------------------------------------------------------ pass-through headers


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        lines = [line for line in body.splitlines() if line.strip()]
        answer = b"\n".join(b"0.75" for _ in lines)
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("x-Amzn-Invoked-Production-Variant", "Blue")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A plain HTTP server on a free port of 127.0.0.1 that records what it receives."""
    seen: ClassVar[list[dict[str, Any]]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_invoke_options_are_passed_through(recorder: tuple[str, list[dict[str, Any]]]
                                           ) -> None:
    url, seen = recorder
    sm = SageMakerBackend(
        "my-endpoint", schema_feature_names=("a", "b"), endpoint_url=url, labels=("n", "y"),
        target_variant="Blue", target_model="model-7.tar.gz", inference_component_name="ic-1",
        custom_attributes="trace=abc", inference_id="inf-42", retry_policy=policy(),
    )
    predictions = sm.predict_batch([{"a": 1.0, "b": "x,y"}, {"a": None, "b": "z"}])
    sm.close()
    assert [p.label for p in predictions] == ["y", "y"]
    assert predictions[0].extra == {"variant": "Blue"}
    assert predictions[0].model_id == "model-7.tar.gz"
    [request] = seen
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/endpoints/my-endpoint/invocations"
    assert headers["x-amzn-sagemaker-target-variant"] == "Blue"
    assert headers["x-amzn-sagemaker-target-model"] == "model-7.tar.gz"
    assert headers["x-amzn-sagemaker-inference-component"] == "ic-1"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "trace=abc"
    assert headers["x-amzn-sagemaker-inference-id"] == "inf-42"
    assert headers["content-type"] == "text/csv" and headers["accept"] == "text/csv"
    assert request["body"] == b'1,"x,y"\n,z\n'
