"""The emulator as a standalone process: ``python -m amlproxy.emulator serve``."""

from __future__ import annotations

import os
import signal

import pytest
from botocore.exceptions import ClientError

from amlproxy.emulator.cli import main
from amlproxy.emulator.process import start_process
from amlproxy.localmodel import bundled_model_path
from tests.fixtures.emulator import LOW_INCOME_ROW, RunningEmulator, census_record


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_process_serves_both_protocols(emulator_process):
    emu = emulator_process
    emu.reset()
    assert emu.process is not None and emu.process.process.poll() is None
    assert emu.url.startswith("http://127.0.0.1:")
    prediction = emu.aml_client().predict(
        MLModelId=emu.model_id, Record=census_record(), PredictEndpoint=emu.url
    )["Prediction"]
    assert prediction["predictedLabel"] == "0"
    answer = emu.sagemaker_client().invoke_endpoint(
        EndpointName=emu.endpoint_name, Body=LOW_INCOME_ROW, ContentType="text/csv"
    )
    assert 0 < float(answer["Body"].read()) < 0.5
    assert emu.counts()["endpoints"]["census-income"]["by_outcome"]["ok"] == 2


def test_the_process_takes_runtime_faults(emulator_process):
    emu = emulator_process
    emu.set_faults(error_rate=1.0, error_status=503)
    try:
        with pytest.raises(ClientError, match="ServiceUnavailable"):
            emu.sagemaker_client().invoke_endpoint(
                EndpointName=emu.endpoint_name, Body=LOW_INCOME_ROW, ContentType="text/csv"
            )
    finally:
        emu.reset()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_process_stops_cleanly_on_a_signal(signum):
    process = start_process()
    emu = RunningEmulator(process.url, process=process)
    client = emu.sagemaker_client()
    client.invoke_endpoint(
        EndpointName="census-income", Body=LOW_INCOME_ROW, ContentType="text/csv"
    )
    process.process.send_signal(signum)
    assert process.process.wait(10) == 0
    assert gone(process.pid)
    assert process.stop() == 0


def test_cli_fault_flags_and_extra_models():
    args = ["--model", f"adult2={bundled_model_path()}", "--fault-target", "adult2"]
    args += ["--throttle-rate", "1", "--seed", "3"]
    with start_process(args) as process:
        emu = RunningEmulator(process.url)
        assert emu.admin.health()["models"] == ["census-income", "adult2"]
        aml = emu.aml_client()
        ok = aml.predict(MLModelId="census-income", Record=census_record(), PredictEndpoint=emu.url)
        assert ok["Prediction"]["predictedLabel"] == "0"
        with pytest.raises(aml.exceptions.LimitExceededException):
            aml.predict(MLModelId="adult2", Record=census_record(), PredictEndpoint=emu.url)
        assert emu.admin.faults()["faults"]["adult2"]["seed"] == 3
    assert gone(process.pid)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--throttle-rate", "2"],
        ["serve", "--model", "broken"],
        ["serve", "--model", "x=/no/such/model.json"],
        ["serve", "--fault-target", "nope", "--error-rate", "1"],
    ],
)
def test_cli_refuses_bad_arguments(argv, capsys):
    assert main(argv) == 2
    assert "amlproxy emulator:" in capsys.readouterr().err


def test_cli_reports_a_busy_port(emulator, capsys):
    port = emulator.url.rsplit(":", 1)[1]
    assert main(["serve", "--port", port]) == 1
    assert "cannot listen" in capsys.readouterr().err
