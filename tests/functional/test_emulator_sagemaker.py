"""SageMaker InvokeEndpoint against the emulator, with a real boto3 client."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from amlproxy.localmodel import load_bundled
from tests.fixtures.emulator import HIGH_INCOME_ROW, LOW_INCOME_ROW, census_record

MODEL = load_bundled()


def invoke(emu, body, content_type="text/csv", client=None, **extra):
    client = client or emu.sagemaker_client()
    return client.invoke_endpoint(
        EndpointName=extra.pop("endpoint", emu.endpoint_name),
        Body=body,
        ContentType=content_type,
        **extra,
    )


def probability(row):
    return MODEL.predict_proba(census_record(row))


def test_csv_in_csv_out_one_probability_per_line(emu):
    body = f"{LOW_INCOME_ROW}\n{HIGH_INCOME_ROW}\n\n{LOW_INCOME_ROW}\n"
    answer = invoke(emu, body)
    assert answer["ContentType"] == "text/csv"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    lines = answer["Body"].read().decode().splitlines()
    assert [float(x) for x in lines] == [
        pytest.approx(probability(LOW_INCOME_ROW), rel=1e-9),
        pytest.approx(probability(HIGH_INCOME_ROW), rel=1e-9),
        pytest.approx(probability(LOW_INCOME_ROW), rel=1e-9),
    ]
    counts = emu.endpoint_counts()["by_protocol"]["sagemaker"]
    assert (counts["requests"], counts["records"]) == (1, 3)


def test_csv_with_quotes_and_spaces(emu):
    row = HIGH_INCOME_ROW.replace("Self-emp-inc", '" Self-emp-inc"').replace(",", ", ")
    answer = invoke(emu, row)
    assert float(answer["Body"].read()) == pytest.approx(probability(HIGH_INCOME_ROW))


def test_csv_in_json_out(emu):
    answer = invoke(emu, f"{LOW_INCOME_ROW}\n{HIGH_INCOME_ROW}", Accept="application/json")
    assert answer["ContentType"] == "application/json"
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert [p["label"] for p in predictions] == ["<=50K", ">50K"]
    high = predictions[1]
    assert high["score"] == pytest.approx(probability(HIGH_INCOME_ROW))
    assert high["scores"][">50K"] == pytest.approx(high["score"])
    assert high["scores"]["<=50K"] == pytest.approx(1 - high["score"])


@pytest.mark.parametrize(
    "payload",
    [
        census_record(HIGH_INCOME_ROW),
        {"instances": [census_record(HIGH_INCOME_ROW), census_record(LOW_INCOME_ROW)]},
        {"instances": [HIGH_INCOME_ROW.split(","), LOW_INCOME_ROW.split(",")]},
        [census_record(HIGH_INCOME_ROW)],
    ],
    ids=["one-object", "instances-objects", "instances-lists", "bare-list"],
)
def test_json_in_json_out(emu, payload):
    answer = invoke(emu, json.dumps(payload), "application/json")
    assert answer["ContentType"] == "application/json"
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert predictions[0]["label"] == ">50K"
    assert predictions[0]["score"] == pytest.approx(probability(HIGH_INCOME_ROW))
    if len(predictions) > 1:
        assert predictions[1]["label"] == "<=50K"


def test_json_numbers_and_nulls_are_values(emu):
    record = census_record(HIGH_INCOME_ROW) | {"age": 52, "capital-gain": 15024.0}
    record["workclass"] = None
    answer = invoke(emu, json.dumps(record), "application/json", Accept="text/csv")
    assert answer["ContentType"] == "text/csv"
    assert float(answer["Body"].read()) == pytest.approx(MODEL.predict_proba(record))


def test_optional_headers_are_accepted(emu):
    answer = invoke(
        emu,
        LOW_INCOME_ROW,
        Accept="text/csv",
        CustomAttributes="trace=1",
        TargetVariant="AllTraffic",
        InferenceId="abc-123",
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert float(answer["Body"].read()) < 0.5


def expect_error(emu, error, status, body=LOW_INCOME_ROW, content_type="text/csv", **extra):
    client = emu.sagemaker_client()
    exception = getattr(client.exceptions, error, ClientError)
    with pytest.raises(exception) as caught:
        invoke(emu, body, content_type, client=client, **extra)
    response = caught.value.response
    assert response["Error"]["Code"] == error
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    return response


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("39,State-gov,77516", "text/csv"),  # too few fields
        (LOW_INCOME_ROW + ",<=50K", "text/csv"),  # the target too: one field too many
        ("{not json", "application/json"),
        (json.dumps({"instances": [[1, 2]]}), "application/json"),
        (json.dumps({"instances": []}), "application/json"),
        ("\n\n", "text/csv"),
    ],
)
def test_unparseable_payload_is_validation_error(emu, body, content_type):
    expect_error(emu, "ValidationError", 400, body, content_type)
    assert emu.endpoint_counts()["by_outcome"]["invalid"] == 1


def test_unknown_endpoint_is_validation_error(emu):
    response = expect_error(emu, "ValidationError", 400, endpoint="nope")
    assert "Endpoint nope of account" in response["Error"]["Message"]
    assert emu.endpoint_counts("nope")["by_outcome"]["not_found"] == 1


def test_unknown_variant_is_validation_error(emu):
    expect_error(emu, "ValidationError", 400, TargetVariant="Canary")


@pytest.mark.parametrize(
    ("body", "content_type", "original"),
    [
        (LOW_INCOME_ROW.replace("39", "old", 1), "text/csv", 400),
        (json.dumps(census_record() | {"shoe-size": "44"}), "application/json", 400),
        (json.dumps(census_record() | {"age": [39]}), "application/json", 400),
        (LOW_INCOME_ROW, "application/x-recordio-protobuf", 415),
    ],
)
def test_bad_values_are_model_errors(emu, body, content_type, original):
    response = expect_error(emu, "ModelError", 424, body, content_type)
    assert response["OriginalStatusCode"] == original
    assert response["OriginalMessage"]
    assert response["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/census-income")
    assert f"({original})" in response["Error"]["Message"]


def test_unsupported_accept_is_model_error_406(emu):
    response = expect_error(emu, "ModelError", 424, Accept="image/png")
    assert response["OriginalStatusCode"] == 406


def test_payload_over_6_mb_is_413(emu):
    row = LOW_INCOME_ROW + "\n"
    body = row * (6 * 1024 * 1024 // len(row) + 1)
    response = expect_error(emu, "413", 413, body)
    assert "content length exceeded" in response["Error"]["Message"]


@pytest.mark.parametrize(
    ("faults", "error", "status", "outcome"),
    [
        ({"throttle_rate": 1.0}, "ThrottlingException", 400, "throttled"),
        ({"rps_limit": 0.001}, None, None, None),  # first call spends the only token
        ({"not_ready_for_s": 30}, "ModelNotReadyException", 429, "not_ready"),
        ({"error_rate": 1.0}, "InternalFailure", 500, "server_error"),
        ({"error_rate": 1.0, "error_status": 503}, "ServiceUnavailable", 503, "server_error"),
    ],
)
def test_faults_raise_the_typed_sagemaker_errors(emu, faults, error, status, outcome):
    emu.set_faults(**faults)
    if error is None:
        invoke(emu, LOW_INCOME_ROW)
        error, status, outcome = "ThrottlingException", 400, "throttled"
    expect_error(emu, error, status)
    assert emu.endpoint_counts()["by_outcome"][outcome] == 1


@pytest.mark.parametrize("status", [400, 500, 503])
def test_injected_model_errors_carry_the_original_status(emu, status):
    emu.set_faults(model_error_rate=1.0, model_error_status=status)
    response = expect_error(emu, "ModelError", 424)
    assert response["OriginalStatusCode"] == status
    side = "client" if status < 500 else "server"
    assert response["Error"]["Message"].startswith(f"Received {side} error ({status})")
    assert emu.endpoint_counts()["by_outcome"]["model_error"] == 1
