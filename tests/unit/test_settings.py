"""Settings: every variable documented, values parsed, and one error listing every problem."""

from __future__ import annotations

import os

import pytest

from amlproxy.errors import ConfigurationError
from amlproxy.settings import Settings, env_name, load_settings
from amlproxy.settings_doc import describe_settings, settings_table


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AMLPROXY_"):
            monkeypatch.delenv(name)


def test_every_variable_is_documented() -> None:
    rows = describe_settings()
    assert len(rows) == len(Settings.fields)
    variables = [r.variable for r in rows]
    assert len(set(variables)) == len(variables)
    assert all(v.startswith("AMLPROXY_") for v in variables)
    assert all(r.description and r.type for r in rows)
    table = settings_table()
    for variable in variables:
        assert f"| `{variable}` |" in table
    # the variables the SAM template uses
    for name in ("BACKEND", "SAGEMAKER_ENDPOINT", "AML_MODEL_ID", "AML_PREDICT_ENDPOINT",
                 "SCHEMA", "CONCURRENCY", "INPUT_PREFIX", "OUTPUT_BUCKET", "OUTPUT_PREFIX",
                 "REJECTS_PREFIX", "DYNAMODB_TABLE", "SINKS", "CALLBACK_URL",
                 "CALLBACK_SECRET_ARN", "CALLBACK_SECRET", "TRACING", "API_MAX_RECORDS",
                 "API_MAX_BODY_BYTES", "ENDPOINT_URL", "AWS_ENDPOINT_URL"):
        assert f"AMLPROXY_{name}" in variables


def test_documented_defaults_are_the_real_ones() -> None:
    documented = {r.variable: r.default for r in describe_settings()}
    settings = load_settings()
    assert documented["AMLPROXY_INPUT_PREFIX"] == settings.input_prefix == "input/"
    assert documented["AMLPROXY_OUTPUT_PREFIX"] == "output/"
    assert documented["AMLPROXY_TRACING"] == settings.tracing == "off"
    assert documented["AMLPROXY_DYNAMODB_STATUSES"] == "ok,rejected,failed"
    assert documented["AMLPROXY_RAISE_ON_FAILED"] == "true"
    assert env_name("schema_name") == "AMLPROXY_SCHEMA"


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AMLPROXY_SINKS": " S3 , dynamodb ", "AMLPROXY_DYNAMODB_TABLE": "t",
        "AMLPROXY_INPUT_PREFIX": "/in", "AMLPROXY_OUTPUT_PREFIX": "out/",
        "AMLPROXY_DYNAMODB_STATUSES": "ok,failed", "AMLPROXY_LABELS": "<=50K, >50K",
        "AMLPROXY_CALLBACK_URL": "https://hooks.example.com/x",
        "AMLPROXY_CALLBACK_SECRET": "whsec_c2VjcmV0", "AMLPROXY_TRACING": "xray",
        "AMLPROXY_API_MAX_RECORDS": "10",
    }.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.sinks == ("s3", "dynamodb")
    assert (s.input_prefix, s.output_prefix) == ("in/", "out/")
    assert s.dynamodb_statuses == ("ok", "failed")
    assert s.labels == ("<=50K", ">50K")
    assert s.callback_secret is not None
    assert s.callback_secret.get_secret_value() == "whsec_c2VjcmV0"
    assert "whsec" not in repr(s)
    assert (s.tracing, s.api_max_records) == ("xray", 10)


def test_default_sinks_follow_what_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().sink_names() == ()
    assert load_settings().sink_names(s3_trigger=True) == ("s3",)
    s = load_settings(dynamodb_table="t", output_bucket="b")
    assert s.sink_names() == ("s3", "dynamodb")
    assert load_settings(sinks="dynamodb", dynamodb_table="t").sink_names(s3_trigger=True) == (
        "dynamodb",
    )


def test_one_error_lists_every_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMLPROXY_BACKEND", "sagemaker")
    monkeypatch.setenv("AMLPROXY_CONCURRENCY", "lots")
    monkeypatch.setenv("AMLPROXY_SINKS", "dynamodb,kafka")
    monkeypatch.setenv("AMLPROXY_TRACING", "jaeger")
    monkeypatch.setenv("AMLPROXY_CALLBACK_URL", "https://hooks.example.com/x")
    monkeypatch.setenv("AMLPROXY_API_MAX_BODY_BYTES", "99999999")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    for expected in ("AMLPROXY_CONCURRENCY='lots'", "AMLPROXY_SINKS='kafka'",
                     "AMLPROXY_TRACING='jaeger'", "AMLPROXY_API_MAX_BODY_BYTES='99999999'",
                     "AMLPROXY_SAGEMAKER_ENDPOINT", "AMLPROXY_CALLBACK_SECRET_ARN"):
        assert expected in message
    assert message.startswith("invalid configuration (6 problem(s)): ")
    assert "\n" not in message  # one line: the CLI prints it as is


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"sinks": "dynamodb"}, "AMLPROXY_DYNAMODB_TABLE is unset"),
    ({"sinks": "callback"}, "AMLPROXY_CALLBACK_URL is unset"),
    ({"input_prefix": "output/data/"}, "must not overlap"),
    ({"input_prefix": ""}, None),
    ({"output_prefix": "x/", "rejects_prefix": "x/"}, "must differ"),
    ({"api_max_records": 100_000}, "6 MB"),
    ({"backend": "aml", "aml_model_id": "m", "labels": "a,b,c"}, "exactly two labels"),
    ({"backend": "shadow"}, "AMLPROXY_SHADOW_BACKEND"),
    ({"chunk_queue_url": "http://127.0.0.1:1/q"}, "needs AMLPROXY_CHUNK_TABLE"),
    ({"chunk_queue_url": "http://127.0.0.1:1/q", "chunk_table": "t"}, None),
    ({"chunk_prefix": "input/chunks/"}, "AMLPROXY_CHUNK_PREFIX"),
    ({"chunk_prefix": "output/"}, "AMLPROXY_CHUNK_PREFIX must differ"),
    ({"chunk_bytes": 0}, "AMLPROXY_CHUNK_BYTES"),
])
def test_combinations(overrides: dict[str, object], fragment: str | None) -> None:
    if fragment is None:
        load_settings(**overrides)
        return
    with pytest.raises(ConfigurationError, match=fragment):
        load_settings(**overrides)


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(callback_secret=918273645)
    assert "AMLPROXY_CALLBACK_SECRET='***'" in str(raised.value)
    assert "918273645" not in str(raised.value)
