"""The served JSON Schema of a record says exactly what ``Schema.validate`` accepts.

The rule pinned here (see amlproxy/core/schema_json.py): numbers sent as JSON strings are
accepted (Amazon ML's Record is a string map), and so are the other string forms the
validator reads; whitespace around a string is ignored; a missing-value marker means
missing. Any change to the validator (a rewrite onto pydantic-core included) must keep
these tests passing, or change the schema export with it: the API serves this schema, and
clients and fuzzers trust it.

The one documented difference: JSON Schema cannot bound the *value* of a string, so a
number given as a string that is out of bounds (or not finite) matches the schema and is
refused by the validator, with a reason that says so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from amlproxy.core.schema import Schema, load_schema
from amlproxy.core.schema_json import BOOLEAN_WORDS, WHITESPACE
from amlproxy.errors import RecordValidationError

jsonschema = pytest.importorskip("jsonschema")

WHITESPACE_CHARS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
# Values an out-of-range or overflowing numeric string is refused with (the known gap).
VALUE_REASONS = ("is below the minimum", "is above the maximum", "not a finite number")

MIXED = Schema.from_document({
    "version": "1.0",
    "dataFormat": "CSV",
    "targetAttributeName": "y",
    "rowId": "id",
    "attributes": [
        {"attributeName": "n", "attributeType": "NUMERIC"},
        {"attributeName": "bounded", "attributeType": "NUMERIC", "required": True,
         "minimum": -2.5, "maximum": 10},
        {"attributeName": "flag", "attributeType": "BINARY"},
        {"attributeName": "needed_flag", "attributeType": "BINARY", "required": True},
        {"attributeName": "note", "attributeType": "TEXT"},
        {"attributeName": "needed_note", "attributeType": "TEXT", "required": True},
        {"attributeName": "code", "attributeType": "CATEGORICAL",
         "categories": ["1", "2", "3.5", "1e-07", "-1", "a b", "x.y", "(z)"]},
        {"attributeName": "kind", "attributeType": "CATEGORICAL", "required": True},
        {"attributeName": "y", "attributeType": "CATEGORICAL", "categories": ["p", "q"]},
        {"attributeName": "id", "attributeType": "TEXT"},
    ],
    "missingValues": ["?", "", "NA", "0"],
}, name="mixed")
BASE = {"bounded": 1, "needed_flag": True, "needed_note": "x", "kind": "k"}
CENSUS_BASE = {
    "age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors",
    "education-num": 13, "marital-status": "Never-married", "occupation": "Adm-clerical",
    "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital-gain": 2174,
    "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States",
}

# Strings close to the accepted forms: digits, signs, points, exponents, underscores, the
# words and categories, markers, and every kind of whitespace str.strip() removes.
_ALPHABET = "0123456789_.eE+-?xAN" + "".join(sorted(set("".join(BOOLEAN_WORDS)))) + \
    "TRUEFALSEYSONabyzk()" + WHITESPACE_CHARS + "\u200b\ufeff\u0663\uff11"
near_strings = st.text(alphabet=_ALPHABET, max_size=12)
words = st.sampled_from([*BOOLEAN_WORDS, "TRUE", "Yes", "oN", "1.0", "2", "-1", "1e-07",
                         "3.5", "a b", "x.y", "(z)", "Male", "male", " Male ", "Private\x1c",
                         "inf", "NaN", "1e400", "-0", "1_000", "1__0", "_1", "1_", "1._5",
                         "1e_5", ".5", "5.", "+.5", "", "?", " NA ", "0"])
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -0.0, 1.0, 2, 3.5, 1e-07, 10, 10.000001, -2.5, -2.6, 1e308]),
)
values = st.one_of(
    near_strings, words, numbers, st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.none(), max_size=1),
)


def _accepted(schema: Schema, record: dict[str, Any]) -> tuple[bool, str]:
    try:
        schema.validate(record)
    except RecordValidationError as exc:
        return False, "; ".join(str(e) for e in exc.errors)
    return True, ""


def _check(schema: Schema, base: dict[str, Any], field: str, value: Any) -> None:
    record = {**base, field: value}
    # what a client sends is JSON: the value goes through a JSON round trip first
    record = json.loads(json.dumps(record))
    matches = jsonschema.Draft202012Validator(schema.json_schema()).is_valid(record)
    accepted, reason = _accepted(schema, record)
    if matches and not accepted and isinstance(record[field], str):
        assert any(r in reason for r in VALUE_REASONS), (field, value, reason)
        return  # the documented gap: the value of a numeric string
    assert matches == accepted, (field, value, reason or "accepted")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from([a.name for a in MIXED.attributes]), value=values)
@example(field="n", value=" 1_0.5e+3\u3000")
@example(field="code", value=1e-07)
@example(field="code", value=2.0)
@example(field="code", value=-1)
@example(field="needed_note", value=" NA ")
@example(field="needed_flag", value="0")
@example(field="flag", value=0)
@example(field="flag", value="oN")
@example(field="needed_flag", value=" Off ")
@example(field="needed_flag", value="ja")
@example(field="y", value={"any": None})
def test_the_schema_and_the_validator_agree(field: str, value: Any) -> None:
    _check(MIXED, BASE, field, value)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from([*CENSUS_BASE, "income"]), value=values)
@example(field="age", value="39")
@example(field="age", value=" 39 ")
@example(field="age", value="200")
@example(field="sex", value=" Male\t")
@example(field="workclass", value="?")
def test_the_census_schema_and_the_validator_agree(field: str, value: Any) -> None:
    _check(load_schema("census-income"), CENSUS_BASE, field, value)


def test_numbers_as_strings_are_accepted_and_said_so() -> None:
    census = load_schema("census-income")
    as_strings = {k: str(v) for k, v in CENSUS_BASE.items()}
    assert census.validate(as_strings) == census.validate(CENSUS_BASE)
    age = census.json_schema()["properties"]["age"]
    number, text = age["anyOf"]
    assert number == {"type": "number", "minimum": 0, "maximum": 150}
    assert text["type"] == "string" and "string map" in text["description"]
    assert "within the attribute's minimum and maximum" in text["description"]


def test_unknown_fields_and_required_fields() -> None:
    census = load_schema("census-income")
    validator = jsonschema.Draft202012Validator(census.json_schema())
    assert not validator.is_valid({**CENSUS_BASE, "planet": "Mars"})
    assert not validator.is_valid({k: v for k, v in CENSUS_BASE.items() if k != "age"})
    assert validator.is_valid({**CENSUS_BASE, "income": 12, "workclass": None})
    with pytest.raises(RecordValidationError):
        census.validate({**CENSUS_BASE, "planet": "Mars"})


def test_patterns_are_portable_to_the_rust_validator() -> None:
    """Schemathesis checks with jsonschema_rs (Rust regex): the same answers as Python."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    js = MIXED.json_schema()
    rust = jsonschema_rs.validator_for(js)
    python = jsonschema.Draft202012Validator(js)
    samples = [" 1_0.5e+3\u3000", "1__0", "x", "\x1c2\x85", "\u200b2", "\u06632", "ON", "of",
               "NA", " ? ", "", "3.5", "a b", "(z)", "x.y", "xzy"]
    for field in ("n", "flag", "needed_flag", "code", "needed_note"):
        for sample in samples:
            record = {**BASE, field: sample}
            assert rust.is_valid(record) == python.is_valid(record), (field, sample)


def test_whitespace_class_is_what_the_validator_strips() -> None:
    """Every character the schema's pattern calls whitespace is stripped around a category
    by the validator, and no other: str.isspace() candidates plus look-alikes."""
    import re

    schema = load_schema("census-income")
    record = {"age": 30, "workclass": "Private", "fnlwgt": 1, "education": "HS-grad",
              "education-num": 9, "marital-status": "Never-married", "occupation": "Sales",
              "relationship": "Husband", "race": "White", "sex": "Male", "capital-gain": 0,
              "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States"}
    candidates = [c for c in map(chr, range(0x110000)) if c.isspace()]
    candidates += ["\u200b", "\ufeff", "\u180e", "\u2060"]
    for char in candidates:
        try:
            schema.validate({**record, "sex": f"{char}Male{char}"})
            stripped = True
        except RecordValidationError:
            stripped = False
        assert bool(re.fullmatch(WHITESPACE, char)) == stripped, repr(char)
