"""Fault injection over HTTP: seeds, rate limit, not-ready window, latency, timeouts."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from amlproxy.emulator.faults import EndpointFaults, Fault
from tests.fixtures.emulator import LOW_INCOME_ROW, census_record


def sm_outcome(client, name="census-income"):
    """'ok' or the error code of one InvokeEndpoint call."""
    try:
        answer = client.invoke_endpoint(
            EndpointName=name, Body=LOW_INCOME_ROW, ContentType="text/csv"
        )
        answer["Body"].read()  # frees the connection for the next call (keep-alive)
    except ClientError as exc:
        code: str = exc.response["Error"]["Code"]
        if code == "ModelError":
            return f"ModelError{exc.response['OriginalStatusCode']}"
        return code
    return "ok"


def aml_outcome(emu, client):
    try:
        client.predict(MLModelId=emu.model_id, Record=census_record(), PredictEndpoint=emu.url)
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "ok"


MIXED = {
    "throttle_rate": 0.25,
    "error_rate": 0.15,
    "model_error_rate": 0.1,
    "model_error_status": 500,
}


def test_a_seed_makes_the_fault_sequence_repeatable(emu):
    client = emu.sagemaker_client()
    emu.set_faults(seed=7, **MIXED)
    first = [sm_outcome(client) for _ in range(60)]
    emu.reset()
    emu.set_faults(seed=7, **MIXED)
    second = [sm_outcome(client) for _ in range(60)]
    emu.reset()
    emu.set_faults(seed=8, **MIXED)
    other = [sm_outcome(client) for _ in range(60)]
    assert first == second
    assert first != other
    assert set(first) == {"ok", "ThrottlingException", "InternalFailure", "ModelError500"}


def test_reseeding_restarts_the_sequence_and_counts_follow(emu):
    aml = emu.aml_client()
    emu.set_faults(seed=3, throttle_rate=0.5)
    first = [aml_outcome(emu, aml) for _ in range(30)]
    emu.set_faults(seed=3)
    second = [aml_outcome(emu, aml) for _ in range(30)]
    assert first == second
    by_outcome = emu.endpoint_counts()["by_outcome"]
    assert by_outcome["throttled"] == 2 * first.count("LimitExceededException")
    assert by_outcome["ok"] == 2 * first.count("ok")
    assert 0 < first.count("ok") < 30


def test_rps_limit_is_a_token_bucket(emu):
    client = emu.sagemaker_client()
    emu.set_faults(rps_limit=10)
    start = time.monotonic()
    outcomes = [sm_outcome(client) for _ in range(40)]
    elapsed = time.monotonic() - start
    allowed = 10 + elapsed * 10 + 1
    assert outcomes[:10] == ["ok"] * 10  # the full bucket: one second's worth
    assert 10 <= outcomes.count("ok") <= allowed
    assert outcomes.count("ThrottlingException") == 40 - outcomes.count("ok")
    time.sleep(0.35)  # refills about 3 tokens
    assert [sm_outcome(client) for _ in range(3)] == ["ok"] * 3


def test_rps_limit_applies_to_both_protocols_of_the_endpoint(emu):
    emu.set_faults(rps_limit=1)
    assert sm_outcome(emu.sagemaker_client()) == "ok"
    assert aml_outcome(emu, emu.aml_client()) == "LimitExceededException"


def test_not_ready_window_ends(emu):
    client = emu.sagemaker_client()
    emu.set_faults(not_ready_for_s=0.4)
    assert sm_outcome(client) == "ModelNotReadyException"
    assert aml_outcome(emu, emu.aml_client()) == "PredictorNotMountedException"
    remaining = emu.admin.faults()["faults"]["census-income"]["not_ready_remaining_s"]
    assert 0 < remaining <= 0.4
    time.sleep(0.45)
    assert sm_outcome(client) == "ok"
    assert emu.endpoint_counts()["by_outcome"]["not_ready"] == 2


def test_latency_is_added(emu):
    client = emu.sagemaker_client()
    sm_outcome(client)  # warm the connection
    emu.set_faults(latency_ms=150)
    start = time.perf_counter()
    assert sm_outcome(client) == "ok"
    assert 0.15 <= time.perf_counter() - start < 1.0


def test_latency_does_not_block_other_requests(emu):
    """64 concurrent calls with 300 ms latency each finish in far less than 64 x 300 ms."""
    client = emu.sagemaker_client()
    emu.set_faults(latency_ms=300)
    with ThreadPoolExecutor(64) as pool:
        start = time.perf_counter()
        outcomes = list(pool.map(lambda _: sm_outcome(client), range(64)))
        elapsed = time.perf_counter() - start
    assert outcomes == ["ok"] * 64
    assert 0.3 <= elapsed < 3.0  # serial would be 19.2 s
    assert emu.endpoint_counts()["requests"] == 64


def test_timeout_holds_the_answer_past_the_client_read_timeout(emu):
    slow_client = emu.sagemaker_client(read_timeout=0.3)
    emu.set_faults(timeout_rate=1.0, timeout_s=30)
    start = time.perf_counter()
    with pytest.raises(ReadTimeoutError):
        sm_outcome(slow_client)
    assert time.perf_counter() - start < 5
    emu.set_faults(timeout_rate=0.0)
    assert sm_outcome(emu.sagemaker_client()) == "ok"  # the server is not stuck
    assert emu.endpoint_counts()["by_outcome"]["timeout"] == 1


def test_timeout_then_drop_closes_the_connection(emu):
    emu.set_faults(timeout_rate=1.0, timeout_s=0.1)
    with pytest.raises(ConnectionClosedError):
        aml_outcome(emu, emu.aml_client())


def test_latency_distributions_follow_their_parameters():
    """Drawn directly from the fault engine: 4000 samples each."""

    def sample(**config):
        faults = EndpointFaults()
        faults.configure({"seed": 11, **config}, now=0.0)
        draws = [faults.decide(now=1.0) for _ in range(4000)]
        assert {fault for fault, _ in draws} == {Fault.NONE}
        return [delay * 1000 for _, delay in draws]

    fixed = sample(latency_ms=20)
    assert fixed == [pytest.approx(20)] * 4000
    uniform = sample(latency_ms=20, latency_dist="uniform", latency_jitter_ms=5)
    assert 15 <= min(uniform) < 15.1 and 24.9 < max(uniform) <= 25
    exponential = sample(latency_ms=20, latency_dist="exponential")
    assert statistics.mean(exponential) == pytest.approx(20, rel=0.08)
    lognormal = sample(latency_ms=20, latency_dist="lognormal", latency_jitter_ms=10)
    assert statistics.median(lognormal) == pytest.approx(20, rel=0.08)
    assert max(lognormal) > 40


def test_fault_rates_are_honoured_in_proportion():
    faults = EndpointFaults()
    faults.configure({"seed": 5, "throttle_rate": 0.2, "timeout_rate": 0.1}, now=0.0)
    draws = [faults.decide(now=1.0)[0] for _ in range(20000)]
    assert draws.count(Fault.THROTTLE) / 20000 == pytest.approx(0.2, abs=0.015)
    assert draws.count(Fault.TIMEOUT) / 20000 == pytest.approx(0.1, abs=0.01)
    assert draws.count(Fault.NONE) / 20000 == pytest.approx(0.7, abs=0.015)
