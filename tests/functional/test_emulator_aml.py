"""Amazon ML Predict / GetMLModel against the emulator, with a real boto3 client."""

from __future__ import annotations

import socket

import pytest

from amlproxy.localmodel import load_bundled
from tests.fixtures.emulator import HIGH_INCOME_ROW, LOW_INCOME_ROW, census_record


def predict(emu, record=None, model_id=None, client=None):
    client = client or emu.aml_client()
    return client.predict(
        MLModelId=model_id or emu.model_id,
        Record=record if record is not None else census_record(),
        PredictEndpoint=emu.url,
    )


def test_predict_answers_like_a_binary_aml_model(emu):
    answer = predict(emu, census_record(LOW_INCOME_ROW))
    prediction = answer["Prediction"]
    expected = load_bundled().predict_proba(census_record(LOW_INCOME_ROW))
    assert prediction["predictedLabel"] == "0"
    assert prediction["predictedScores"] == {"0": pytest.approx(expected, rel=1e-6)}
    assert prediction["details"] == {"Algorithm": "SGD", "PredictiveModelType": "BINARY"}
    assert "predictedValue" not in prediction
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["RequestId"]


def test_positive_class_is_label_1_with_its_probability(emu):
    prediction = predict(emu, census_record(HIGH_INCOME_ROW))["Prediction"]
    expected = load_bundled().predict_proba(census_record(HIGH_INCOME_ROW))
    assert expected > 0.5
    assert prediction["predictedLabel"] == "1"
    assert prediction["predictedScores"]["1"] == pytest.approx(expected, rel=1e-6)


def test_missing_attributes_are_missing_values(emu):
    record = census_record()
    del record["workclass"], record["age"]
    record["occupation"] = "?"
    prediction = predict(emu, record)["Prediction"]
    expected = load_bundled().predict_proba(record)
    assert list(prediction["predictedScores"].values()) == [pytest.approx(expected, rel=1e-6)]


def test_predict_goes_to_the_predict_endpoint_host(emu):
    """botocore sends Predict to PredictEndpoint's host, not to endpoint_url."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = emu.aml_client()
    client_elsewhere = type(emu)(dead).aml_client()
    assert predict(emu, client=client_elsewhere)["Prediction"]["predictedLabel"] == "0"
    assert emu.endpoint_counts()["by_protocol"]["aml"]["requests"] == 1
    assert client.meta.endpoint_url == emu.url


def test_get_ml_model_describes_a_ready_realtime_endpoint(emu):
    model = emu.aml_client().get_ml_model(MLModelId=emu.model_id)
    assert model["MLModelId"] == emu.model_id
    assert model["Status"] == "COMPLETED"
    assert model["MLModelType"] == "BINARY"
    assert model["EndpointInfo"]["EndpointUrl"] == emu.url
    assert model["EndpointInfo"]["EndpointStatus"] == "READY"
    assert model["EndpointInfo"]["PeakRequestsPerSecond"] == 200
    assert model["EndpointInfo"]["CreatedAt"].year >= 2024


def test_unknown_model_is_resource_not_found(emu):
    client = emu.aml_client()
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        predict(emu, model_id="no-such-model", client=client)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_ml_model(MLModelId="no-such-model")
    assert emu.endpoint_counts("no-such-model")["by_outcome"]["not_found"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"shoe-size": "44"},  # an attribute the model does not know
        {"age": "thirty-nine"},  # a non-numeric value of a numeric attribute
        {"hours-per-week": "inf"},  # not a finite number
    ],
)
def test_bad_record_is_invalid_input(emu, change):
    client = emu.aml_client()
    with pytest.raises(client.exceptions.InvalidInputException) as caught:
        predict(emu, census_record() | change, client=client)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert next(iter(change)) in error["Error"]["Message"]
    assert emu.endpoint_counts()["by_outcome"]["invalid"] == 1


def test_target_attribute_in_the_record_is_accepted(emu):
    record = census_record() | {"income": ">50K"}
    assert predict(emu, record)["Prediction"]["predictedLabel"] == "0"


@pytest.mark.parametrize(
    ("faults", "error", "status", "outcome"),
    [
        ({"throttle_rate": 1.0}, "LimitExceededException", 417, "throttled"),
        ({"not_ready_for_s": 30}, "PredictorNotMountedException", 400, "not_ready"),
        ({"error_rate": 1.0}, "InternalServerException", 500, "server_error"),
        ({"model_error_rate": 1.0, "model_error_status": 503}, "InternalServerException", 500,
         "model_error"),
        ({"model_error_rate": 1.0, "model_error_status": 400}, "InvalidInputException", 400,
         "model_error"),
    ],
)  # fmt: skip
def test_faults_raise_the_typed_aml_errors(emu, faults, error, status, outcome):
    emu.set_faults(**faults)
    client = emu.aml_client()
    with pytest.raises(getattr(client.exceptions, error)) as caught:
        predict(emu, client=client)
    response = caught.value.response
    assert response["Error"]["Code"] == error
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert emu.endpoint_counts()["by_outcome"][outcome] == 1
