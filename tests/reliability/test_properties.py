"""Property tests: whatever the bytes or the JSON, the readers and the schema validation
raise validation errors only (a per-row reject), and the HTTP handler answers 200, 400,
413 or 415, never a 500.

A short run is part of the default suite. The long run:

    AMLPROXY_FUZZ_EXAMPLES=20000 PYTHONPATH=. .venv/bin/pytest tests/reliability/test_properties.py
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlproxy.core.readers import read_records
from amlproxy.core.schema import Schema, load_schema
from amlproxy.errors import RecordValidationError
from amlproxy.triggers import api
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_api import http_event

EXAMPLES = int(os.environ.get("AMLPROXY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SCHEMA = load_schema("census-income")
FIELDS = [a.name for a in SCHEMA.attributes]
RECORD = census_record()

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=30) | st.sampled_from(["", " ", "?", "NaN", "inf", "1e999",
                                                     "=1+1", "39", "Private", "\x00"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
records = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values,
                          max_size=18)
# records close to a valid one: one to three fields replaced, dropped or added
mutated = st.builds(
    lambda changes, drops: {**{k: v for k, v in RECORD.items() if k not in drops}, **changes},
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)


def validate_or_reject(schema: Schema, record: Any) -> None:
    try:
        schema.validate(record, line=1)
    except RecordValidationError as exc:
        assert exc.errors and all(str(e) for e in exc.errors)


@FUZZ
@given(records | mutated)
def test_schema_validation_only_raises_validation_errors(record: dict[str, Any]) -> None:
    validate_or_reject(SCHEMA, record)


@FUZZ
@given(st.lists(st.binary(max_size=60) | st.sampled_from(
    [b"\n", b"\r\n", b'"', b",", b"\xef\xbb\xbf", b"{", b"}", b"[", b"NaN", b'"age":']),
    max_size=40).map(b"".join), st.sampled_from(["csv", "jsonl"]))
def test_readers_turn_any_bytes_into_rows_or_row_rejects(data: bytes, fmt: str) -> None:
    for row in read_records(io.BytesIO(data), SCHEMA, format=fmt):  # type: ignore[arg-type]
        if row.fields is None:
            assert row.error  # a per-row reject, with its reason
        else:
            validate_or_reject(SCHEMA, row.fields)


@pytest.fixture(scope="module")
def api_env() -> Any:
    monkeypatch = pytest.MonkeyPatch()
    use_env(monkeypatch, backend="local", api_max_records=20, api_max_body_bytes=50_000)
    yield
    monkeypatch.undo()
    from amlproxy.triggers._runtime import reset_runtime

    reset_runtime()


@FUZZ
@given(st.one_of(
    st.lists(records | mutated, max_size=5).map(json.dumps),
    (records | mutated).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
))
def test_the_api_answers_every_body_without_a_500(api_env: None, body: str) -> None:
    answer = api.handler(http_event("apigateway_http_api_proxy", "POST", "/predict", body),
                         LambdaContext())
    assert answer["statusCode"] in (200, 400, 413), answer["body"][:300]
    json.loads(answer["body"])
