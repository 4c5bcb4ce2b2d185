"""The emulator's admin API: health, faults per target, reset, counts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from amlproxy.emulator import EmulatorAdmin, start_in_thread
from amlproxy.errors import ConfigurationError
from amlproxy.localmodel import load_bundled
from tests.fixtures.emulator import HIGH_INCOME_ROW, LOW_INCOME_ROW, RunningEmulator, census_record

OUTCOMES = {
    "ok", "throttled", "server_error", "timeout", "not_ready", "invalid", "not_found",
    "model_error",
}  # fmt: skip


def test_health_lists_the_models(emu):
    health = emu.admin.health()
    assert health == {"status": "ok", "url": emu.url, "models": ["census-income"]}


def test_set_faults_merges_and_returns_the_config(emu):
    first = emu.set_faults("census-income", latency_ms=5, throttle_rate=0.1)
    assert first["target"] == "census-income"
    config = first["faults"]["census-income"]
    assert (config["latency_ms"], config["throttle_rate"], config["error_rate"]) == (5, 0.1, 0)
    second = emu.set_faults("census-income", error_rate=0.2)["faults"]["census-income"]
    assert (second["latency_ms"], second["throttle_rate"], second["error_rate"]) == (5, 0.1, 0.2)
    assert emu.admin.faults()["faults"]["census-income"] == second
    emu.reset()
    cleared = emu.admin.faults()["faults"]["census-income"]
    assert (cleared["latency_ms"], cleared["throttle_rate"], cleared["error_rate"]) == (0, 0, 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"throttle_rate": 1.5},
        {"throttle_rate": 0.6, "error_rate": 0.6},
        {"latency_dist": "gaussian"},
        {"latency_ms": -1},
        {"frobnicate": 1},
        {"error_status": 502},
        {"seed": "x"},
    ],
)
def test_bad_settings_are_refused_and_change_nothing(emu, bad):
    before = emu.admin.faults()
    with pytest.raises(ConfigurationError, match="HTTP 400"):
        emu.set_faults(**bad)
    assert emu.admin.faults() == before


def test_unknown_target_is_404(emu):
    with pytest.raises(ConfigurationError, match="HTTP 404"):
        emu.set_faults("no-such-endpoint", throttle_rate=1.0)


def test_raw_admin_http_api(emu):
    request = urllib.request.Request(
        f"{emu.url}/_emulator/faults",
        data=json.dumps({"latency_ms": 1, "seed": 4}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    assert answer["target"] == "*"
    assert answer["faults"]["census-income"]["seed"] == 4
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{emu.url}/_emulator/nothing", timeout=5)
    assert caught.value.code == 404
    caught.value.close()


def test_counts_by_endpoint_protocol_and_outcome(emu):
    sm, aml = emu.sagemaker_client(), emu.aml_client()
    sm.invoke_endpoint(
        EndpointName=emu.endpoint_name,
        Body=f"{LOW_INCOME_ROW}\n{HIGH_INCOME_ROW}",
        ContentType="text/csv",
    )["Body"].read()
    aml.predict(MLModelId=emu.model_id, Record=census_record(), PredictEndpoint=emu.url)
    with pytest.raises(ClientError):
        aml.predict(MLModelId=emu.model_id, Record={"age": "x"}, PredictEndpoint=emu.url)
    emu.set_faults(throttle_rate=1.0)
    with pytest.raises(ClientError):
        sm.invoke_endpoint(EndpointName=emu.endpoint_name, Body=b"1", ContentType="text/csv")
    aml.get_ml_model(MLModelId=emu.model_id)  # control plane: not counted

    endpoint = emu.counts()["endpoints"]["census-income"]
    assert set(endpoint["by_outcome"]) == OUTCOMES
    assert endpoint["requests"] == 4
    assert endpoint["records"] == 3
    assert endpoint["by_outcome"] == dict.fromkeys(OUTCOMES, 0) | {
        "ok": 2,
        "invalid": 1,
        "throttled": 1,
    }
    sm_counts, aml_counts = endpoint["by_protocol"]["sagemaker"], endpoint["by_protocol"]["aml"]
    assert (sm_counts["requests"], sm_counts["records"]) == (2, 2)
    assert sm_counts["by_outcome"]["throttled"] == 1
    assert (aml_counts["requests"], aml_counts["records"]) == (2, 1)
    assert aml_counts["by_outcome"]["invalid"] == 1
    emu.reset()
    assert emu.counts() == {"endpoints": {}}


def test_faults_are_per_endpoint_and_star_means_all():
    model = load_bundled()
    with start_in_thread({"census-income": model, "canary": model}) as handle:
        emu = RunningEmulator(handle.url)
        admin = EmulatorAdmin(handle.url)
        assert admin.health()["models"] == ["census-income", "canary"]
        client = emu.sagemaker_client()

        def outcome(name):
            try:
                client.invoke_endpoint(
                    EndpointName=name, Body=LOW_INCOME_ROW, ContentType="text/csv"
                )
            except ClientError as exc:
                return exc.response["Error"]["Code"]
            return "ok"

        changed = admin.set_faults("canary", throttle_rate=1.0)
        assert list(changed["faults"]) == ["canary"]
        assert (outcome("census-income"), outcome("canary")) == ("ok", "ThrottlingException")
        assert list(admin.set_faults("*", error_rate=0.0)["faults"]) == ["census-income", "canary"]
        admin.set_faults("*", not_ready_for_s=30)
        assert outcome("census-income") == outcome("canary") == "ModelNotReadyException"
        counts = admin.counts()["endpoints"]
        assert counts["canary"]["by_outcome"]["throttled"] == 1
        assert counts["canary"]["by_outcome"]["not_ready"] == 1
        assert counts["census-income"]["by_outcome"]["ok"] == 1


def test_start_in_thread_applies_initial_faults_and_stops():
    with start_in_thread(faults={"throttle_rate": 1.0}, fault_target="census-income") as handle:
        emu = RunningEmulator(handle.url)
        with pytest.raises(ClientError, match="ThrottlingException"):
            emu.sagemaker_client().invoke_endpoint(
                EndpointName="census-income", Body=LOW_INCOME_ROW, ContentType="text/csv"
            )
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{handle.url}/_emulator/health", timeout=2)
