"""The settings on pydantic-core agree with the pydantic model they replace
(tests/unit/legacy_settings.py): for any variables given, the same values or the same
one-line ConfigurationError, problem for problem."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlproxy import settings as current
from amlproxy.errors import ConfigurationError
from amlproxy.settings_schema import SecretStr
from tests.unit import legacy_settings as legacy

# text a user might put in any variable: valid for some fields, wrong for others
TEXTS = ["", " ", "0", "1", "-1", "2.5", "1e3", "70000", "abc", "true", "no", "maybe",
         "local", "sagemaker", "aml", "shadow", "s3", "s3, DynamoDB", "callback,foo", "ok,failed",
         "443,8443", "443,x", "<=50K,>50K", "a,b,c", "in", "/in/", "output/", "rejects/",
         "chunks/", "https://127.0.0.1/hook", "whsec_abc", "text/csv", "application/json",
         "otel", "XRAY", "DEBUG", "census-income", "3600", "1000", "10000"]


def outcome(module: Any, given_values: dict[str, Any]) -> Any:
    """The values load_settings gives (secrets read out), or its error message."""
    try:
        loaded = module.load_settings(**given_values)
    except ConfigurationError as exc:
        return ("error", str(exc))
    values = {}
    for name in current.Settings.fields:
        value = getattr(loaded, name)
        values[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return ("ok", values)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(current.Settings.fields)), st.sampled_from(TEXTS),
                       max_size=8))
def test_the_new_settings_agree_with_the_pydantic_model(given_values: dict[str, str]) -> None:
    assert outcome(current, given_values) == outcome(legacy, given_values)


def test_every_variable_alone_with_every_text_agrees() -> None:
    """Each field with each text of TEXTS on its own: every limit, list and literal seen."""
    differ = [(name, text) for name in current.Settings.fields for text in TEXTS
              if outcome(current, {name: text}) != outcome(legacy, {name: text})]
    assert differ == []


@pytest.mark.parametrize("given_values", [
    {"callback_url": "https://127.0.0.1/hook", "callback_secret": ""},  # an empty secret is none
    {"callback_url": " ", "callback_secret": "", "aml_max_rps": ""},
])
def test_combinations_found_by_the_property_test_agree(given_values: dict[str, Any]) -> None:
    assert outcome(current, given_values) == outcome(legacy, given_values)


@pytest.mark.parametrize("given_values", [
    {},
    {"AMLPROXY_SCHEMA": "census-income", "input_prefix": "in"},  # a field by its variable
    {"backend": "sagemaker", "sagemaker_endpoint": "e", "sinks": "s3, dynamodb",
     "dynamodb_table": "t", "callback_ports": "443,8443", "input_prefix": "/in"},
    {"backend": "aml", "aml_model_id": "ml-1", "labels": "<=50K,>50K", "concurrency": 8,
     "retry_base_delay_s": 0.5, "callback_url": "https://127.0.0.1/hook",
     "callback_secret": "whsec_abc", "metrics": False},
])
def test_valid_settings_are_the_same_values(given_values: dict[str, Any]) -> None:
    kind, values = outcome(current, given_values)
    assert kind == "ok" and (kind, values) == outcome(legacy, given_values)


def test_the_fields_are_the_models_fields_in_order_with_their_defaults() -> None:
    old = legacy.Settings.model_fields
    assert list(current.Settings.fields) == list(old)
    for name, knob in current.Settings.fields.items():
        assert knob.default == old[name].default, name
        assert knob.description == old[name].description, name
        assert current.env_name(name) == legacy.env_name(name)


def test_settings_are_frozen_and_their_secret_is_masked() -> None:
    loaded = current.Settings(callback_secret="whsec_abc")
    with pytest.raises(AttributeError):
        loaded.backend = "aml"  # type: ignore[misc]
    assert isinstance(loaded.callback_secret, SecretStr)
    assert "whsec_abc" not in repr(loaded) and "whsec_abc" not in str(loaded.callback_secret)
    assert loaded == current.Settings(callback_secret="whsec_abc") != current.Settings()
