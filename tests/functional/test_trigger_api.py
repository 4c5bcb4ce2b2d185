"""The HTTP trigger with REST API (1.0), HTTP API (2.0) and function URL events, scoring
with the local model, and with the endpoint emulator for backend failures."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from amlproxy.triggers import api
from tests.events import LambdaContext, load_event, use_env
from tests.fixtures.emulator import HIGH_INCOME_ROW, census_record

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
KINDS = ["apigateway_aws_proxy", "apigateway_http_api_proxy", "function_url"]


def http_event(kind: str, method: str, path: str, body: bytes | str | None = None, *,
               content_type: str | None = "application/json", b64: bool = False,
               query: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``kind`` event for ``method path``, shaped as the fixture is."""
    event = load_event(kind)
    raw = body.encode() if isinstance(body, str) else body
    if event.get("version") == "2.0":
        event["rawPath"] = path
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["http"]["path"] = path
        headers = {k.lower(): v for k, v in event["headers"].items()}
    else:
        event["httpMethod"] = method
        event["path"] = path
        event["resource"] = path
        event["multiValueHeaders"] = {}
        headers = dict(event["headers"])
        headers.pop("Content-Type", None)
    headers.pop("content-type", None)
    if content_type is not None:
        headers["Content-Type" if "httpMethod" in event else "content-type"] = content_type
    event["headers"] = headers
    event["queryStringParameters"] = query
    if raw is None:
        event["body"], event["isBase64Encoded"] = None, False
    elif b64:
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = raw.decode(), False
    return event


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer = api.handler(event, LambdaContext())
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["isBase64Encoded"] is False
    return answer["statusCode"], json.loads(answer["body"]), answer["headers"]


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, backend="local", api_max_records=50, api_max_body_bytes=20_000)


@pytest.mark.parametrize("kind", KINDS)
def test_one_record(local: None, kind: str) -> None:
    status, body, _ = call(http_event(kind, "POST", "/predict", json.dumps(census_record())))
    assert status == 200
    prediction = body["prediction"]
    assert prediction["label"] in ("<=50K", ">50K") and prediction["backend"] == "local"
    assert set(prediction["scores"]) == {"<=50K", ">50K"}


@pytest.mark.parametrize("kind", KINDS)
def test_batch_base64_and_wrapped(local: None, kind: str) -> None:
    records = [census_record(), census_record(HIGH_INCOME_ROW)]
    for payload in (records, {"records": records}):
        status, body, _ = call(http_event(kind, "POST", "/predict", json.dumps(payload),
                                          b64=True))
        assert status == 200
        assert [p["index"] for p in body["predictions"]] == [0, 1]
        assert [p["status"] for p in body["predictions"]] == ["ok", "ok"]
        assert body["predictions"][1]["label"] == ">50K"
        assert body["summary"] == {"total": 2, "ok": 2, "failed": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_records_are_400_naming_index_and_field(local: None, kind: str) -> None:
    one = {**census_record(), "age": "forty"}
    status, body, _ = call(http_event(kind, "POST", "/predict", json.dumps(one)))
    assert status == 400
    assert body["errors"][0]["index"] == 0 and body["errors"][0]["field"] == "age"

    batch = [census_record(), {**census_record(), "sex": "Robot", "hours-per-week": -1}, 7]
    status, body, _ = call(http_event(kind, "POST", "/predict", json.dumps(batch)))
    assert status == 400
    named = {(e["index"], e["field"]) for e in body["errors"]}
    assert named == {(1, "sex"), (1, "hours-per-week"), (2, None)}


@pytest.mark.parametrize("kind", KINDS)
def test_bad_json_is_400(local: None, kind: str) -> None:
    status, body, _ = call(http_event(kind, "POST", "/predict", '{"age": 39,'))
    assert status == 400 and body["errors"][0]["reason"].startswith("invalid JSON")
    status, body, _ = call(http_event(kind, "POST", "/predict", "[]"))
    assert status == 400 and body["errors"][0]["reason"] == "no records"


@pytest.mark.parametrize("kind", KINDS)
def test_oversized_is_413(local: None, kind: str) -> None:
    too_many = [census_record()] * 51
    status, body, _ = call(http_event(kind, "POST", "/predict", json.dumps(too_many)))
    assert status == 413 and "S3 trigger" in body["error"]["reason"]
    too_big = json.dumps({**census_record(), "padding": "x" * 20_001})
    for b64 in (False, True):
        status, body, _ = call(http_event(kind, "POST", "/predict", too_big, b64=b64))
        assert status == 413 and body["error"]["code"] == "PayloadTooLarge"


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_content_type_is_415(local: None, kind: str) -> None:
    event = http_event(kind, "POST", "/predict", "age=39",
                       content_type="application/x-www-form-urlencoded")
    status, body, _ = call(event)
    assert status == 415 and "text/csv" in body["error"]["reason"]


@pytest.mark.parametrize("kind", KINDS)
def test_csv_batch(local: None, kind: str) -> None:
    lines = SAMPLE.read_text().splitlines()
    good = "\n".join(lines[:3]) + "\n"
    status, body, _ = call(http_event(kind, "POST", "/predict", good,
                                      content_type="text/csv; charset=utf-8"))
    assert status == 200 and body["summary"]["ok"] == 3
    bad = "\n".join(lines[9:12]) + "\n"  # the third is the 'Mars' row of the sample
    status, body, _ = call(http_event(kind, "POST", "/predict", bad, content_type="text/csv"))
    assert status == 400
    assert body["errors"] == [{"index": 2, "line": 3, "field": "native-country",
                               "reason": body["errors"][0]["reason"]}]


@pytest.mark.parametrize("kind", KINDS)
def test_schema_routes_and_methods(local: None, kind: str) -> None:
    status, body, _ = call(http_event(kind, "GET", "/schema", content_type=None))
    assert status == 200
    assert body["type"] == "object" and "age" in body["properties"]
    assert "age" in body["required"]
    status, body, _ = call(http_event(kind, "GET", "/nowhere", content_type=None))
    assert status == 404 and body["error"]["code"] == "NotFound"
    status, body, headers = call(http_event(kind, "GET", "/predict", content_type=None))
    assert status == 405 and headers["allow"] == "POST"
    status, _, headers = call(http_event(kind, "DELETE", "/schema", content_type=None))
    assert status == 405 and headers["allow"] == "GET"


def test_stage_prefix_of_an_http_api_is_removed(local: None) -> None:
    event = http_event("apigateway_http_api_proxy", "GET", "/prod/schema", content_type=None)
    event["requestContext"]["stage"] = "prod"
    assert call(event)[0] == 200


def emulator_env(monkeypatch: pytest.MonkeyPatch, emu: Any, backend: str) -> None:
    use_env(monkeypatch, backend=backend, sagemaker_endpoint=emu.endpoint_name,
            aml_model_id=emu.model_id, aml_predict_endpoint=emu.url, endpoint_url=emu.url,
            max_attempts=2, retry_base_delay_s=0.001, region="us-east-1")


@pytest.mark.parametrize("backend", ["sagemaker", "aml"])
def test_backend_failures_are_502_or_503(monkeypatch: pytest.MonkeyPatch, emu: Any,
                                         backend: str) -> None:
    emulator_env(monkeypatch, emu, backend)
    event = http_event("apigateway_http_api_proxy", "POST", "/predict",
                       json.dumps(census_record()))
    status, body, _ = call(event)
    assert status == 200 and body["prediction"]["backend"] == backend

    emu.set_faults(throttle_rate=1.0)
    status, body, headers = call(event)
    assert status == 503 and headers["retry-after"] == "1"
    assert body["error"]["code"] == "BackendUnavailable"

    emu.reset()
    emu.set_faults(model_error_rate=1.0, model_error_status=400)
    status, body, _ = call(event)
    assert status == 502 and body["error"]["code"] == "BackendError"
    assert "Traceback" not in json.dumps(body)


def test_misconfiguration_is_a_500_without_details(monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, backend="aml")  # no model id
    status, body, _ = call(http_event("function_url", "GET", "/schema", content_type=None))
    assert status == 500 and body["error"]["code"] == "ConfigurationError"
    assert "AMLPROXY_AML_MODEL_ID" not in body["error"]["reason"]


# ------------------------------------------------------------- bad input is never a 500
CSV_ROW = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, " \
    "White, Male, 2174, 0, 40, United-States"


@pytest.mark.parametrize(("header", "field", "said"), [
    (",age", None, "an empty column name"),
    ("  ,age", None, "an empty column name"),
    ("a,a", None, "column 'a' twice"),
    ("age,age", None, "column 'age' twice"),
    ("age,planet", "planet", "names a column the schema does not have"),
])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_csv_headers_are_400_naming_the_column(local: None, kind: str, header: str,
                                                   field: str | None, said: str) -> None:
    event = http_event(kind, "POST", "/predict", f"{header}\n39,x\n", content_type="text/csv",
                       query={"header": "true"})
    status, body, _ = call(event)
    assert status == 400, body
    (error,) = body["errors"]
    assert error["field"] == field and said in error["reason"]
    if field is None:
        assert header.split(",")[-1] in error["reason"] or "empty" in error["reason"]


@pytest.mark.parametrize("value", ["maybe", "", "truee", "2", "true,false"])
@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_unknown_header_values_are_400(local: None, value: str, content_type: str) -> None:
    payload = CSV_ROW + "\n" if content_type == "text/csv" else json.dumps(census_record())
    event = http_event("apigateway_http_api_proxy", "POST", "/predict", payload,
                       content_type=content_type, query={"header": value})
    status, body, _ = call(event)
    assert status == 400 and "?header=" in body["errors"][0]["reason"]


@pytest.mark.parametrize("value", ["true", "TRUE", "Yes", "1"])
def test_header_values_in_any_case(local: None, value: str) -> None:
    names = ",".join(f for f in census_record())
    event = http_event("function_url", "POST", "/predict", f"{names}\n{CSV_ROW}\n",
                       content_type="text/csv", query={"header": value})
    status, body, _ = call(event)
    assert status == 200 and body["summary"]["ok"] == 1


def test_numbers_as_json_strings_are_scored(local: None) -> None:
    as_strings = census_record()  # an Amazon ML Record: a string map
    assert all(isinstance(v, str) for v in as_strings.values())
    typed = {k: float(v) if v.strip().lstrip("-").isdigit() else v for k, v in
             as_strings.items()}
    answers = [call(http_event("function_url", "POST", "/predict", json.dumps(r)))
               for r in (as_strings, typed)]
    assert answers[0][0] == answers[1][0] == 200
    assert answers[0][1]["prediction"]["scores"] == answers[1][1]["prediction"]["scores"]


# ------------------------------------------------------------------------- OpenAPI


@pytest.mark.parametrize("kind", KINDS)
def test_openapi_document_is_served_and_valid(local: None, kind: str) -> None:
    from openapi_spec_validator import validate

    status, doc, _ = call(http_event(kind, "GET", "/openapi.json", content_type=None))
    assert status == 200 and doc["openapi"] == "3.1.0"
    validate(doc)
    _, record_schema, _ = call(http_event(kind, "GET", "/schema", content_type=None))
    record_schema.pop("$schema")
    assert doc["components"]["schemas"]["Record"] == record_schema  # one source
    predict = doc["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert set(predict["responses"]) == {"200", "400", "413", "415", "502", "503"}
    assert [p["name"] for p in predict["parameters"]] == ["header"]  # no table: no key
    assert doc["components"]["schemas"]["RecordBatch"]["maxItems"] == 50
    base = doc["servers"][0]["url"]
    assert base == ("/prod" if kind == "apigateway_aws_proxy" else "/")


def test_openapi_names_the_idempotency_key_with_a_table(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    use_env(monkeypatch, backend="local", idempotency_table="keys")
    status, doc, _ = call(http_event("function_url", "GET", "/openapi.json", content_type=None))
    predict = doc["paths"]["/predict"]["post"]
    assert status == 200 and {"409", "422"} <= set(predict["responses"])
    key = next(p for p in predict["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["schema"]["maxLength"] == 255
    assert predict["responses"]["503"]["headers"]["Retry-After"]["required"] is True
