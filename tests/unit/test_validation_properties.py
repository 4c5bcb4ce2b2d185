"""Validation in pydantic-core agrees with the old per-field Python pass (the reference in
tests/unit/legacy_validation.py), on generated schemas and rows: the same typed record, or
the same error (line, row id, every field and reason), one record at a time and in batches.

Two differences are deliberate and left out of the generated data:

- whitespace is Unicode's White_Space (pydantic-core strips it); Python's ``str.strip``
  also strips the ASCII separators U+001C..U+001F, which no longer count as blanks;
- an integral float of 2**63 or more given for a CATEGORICAL or TEXT field keeps its
  exponent form (``1e+20``), where the old pass wrote out every digit.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlproxy.core.schema import Schema, load_schema
from amlproxy.errors import RecordValidationError
from tests.unit.legacy_validation import LegacyValidator

NAMES = ["age", "a", "education-num", "json", "has space", "x1", "model_config", "b"]
TYPES = ["NUMERIC", "CATEGORICAL", "TEXT", "BINARY"]
CATEGORIES = ["Male", "Female", "1", "2", "3.5", "0", "yes", "NA", "?", "-1", "nan"]
MARKER_SETS = [["?", ""], ["NA"], ["?", "", "-1"], ["0"], ["no", "n/a"], [], ["", "nan"]]
WORDS = ["Male", " Female ", "1", "2.0", " 3.5", "-0", "1e3", "nan", "-inf", "Infinity",
         "1_000", "0x10", "yes", "No", "t", "OFF", "?", " ? ", "", "  ", "NA", "-1", "0",
         "n/a", "151", "-5", "\u3000Male\xa0", "\tyes\n"]
BLANKS = " \t\n\r\x0b\x0c\x85\xa0\u2003\u3000"
TEXT = st.text(st.characters(blacklist_characters="\x1c\x1d\x1e\x1f",
                             blacklist_categories=("Cs",)), max_size=6)
FLOATS = st.floats().filter(lambda x: not (x.is_integer() and abs(x) >= 2**63))
VALUES = st.one_of(
    st.sampled_from(WORDS),
    st.tuples(st.sampled_from(BLANKS), st.sampled_from(WORDS + CATEGORIES),
              st.sampled_from(BLANKS)).map("".join),
    TEXT,
    st.integers(-(10**20), 10**20),
    st.sampled_from([10**400, -(10**400), 2**63, 2**53 + 1]),
    FLOATS,
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from("kv"), st.integers(0, 3), max_size=1),
)


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=6, unique=True))
    attributes = []
    for name in names:
        kind = draw(st.sampled_from(TYPES))
        attribute: dict[str, Any] = {"attributeName": name, "attributeType": kind,
                                     "required": draw(st.booleans())}
        if kind == "CATEGORICAL" and draw(st.booleans()):
            attribute["categories"] = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1,
                                                    max_size=5, unique=True))
        if kind == "NUMERIC" and draw(st.booleans()):
            attribute["minimum"] = draw(st.sampled_from([-1, 0, 1.5]))
        if kind == "NUMERIC" and draw(st.booleans()):
            attribute["maximum"] = draw(st.sampled_from([2, 150, 1e9]))
        attributes.append(attribute)
    doc: dict[str, Any] = {"attributes": attributes,
                           "missingValues": draw(st.sampled_from(MARKER_SETS)),
                           "extraFields": draw(st.sampled_from(["reject", "ignore"]))}
    roles = draw(st.lists(st.sampled_from(["targetAttributeName", "rowId"]), unique=True))
    for role, name in zip(roles, names[1:], strict=False):
        doc[role] = name
    return Schema.from_document(doc, name="generated")


@st.composite
def rows(draw: st.DrawFn, schema: Schema) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(schema.column_names), unique=True,
                          max_size=len(schema.column_names)))
    row = {name: draw(VALUES) for name in names}
    if draw(st.integers(0, 9)) == 0:
        row[draw(st.sampled_from(["planet", "colour"]))] = draw(VALUES)
    return row


def outcome(validate: Any, fields: Mapping[str, Any], line: int) -> tuple[Any, ...]:
    try:
        values = validate(fields, line=line)
    except RecordValidationError as exc:
        return ("rejected", str(exc), exc.line, exc.row_id, [(e.field, e.reason)
                                                             for e in exc.errors])
    return ("ok", values, list(values))


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal outcomes; NaN never arises in an accepted record, so == is enough."""
    return a == b and all(type(x) is type(y) for x, y in
                          zip(a[1].values(), b[1].values(), strict=True)) if a[0] == "ok" \
        else a == b


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_validation_agrees_with_the_old_pass(data: st.DataObject) -> None:
    schema = data.draw(schemas())
    legacy = LegacyValidator(schema)
    batch = data.draw(st.lists(rows(schema), min_size=1, max_size=6))
    expected = [outcome(legacy.validate, row, i) for i, row in enumerate(batch, 1)]
    got = [outcome(schema.validate, row, i) for i, row in enumerate(batch, 1)]
    for row, old, new in zip(batch, expected, got, strict=True):
        assert same(old, new), (schema.to_aml_dict(), row)
    lines = list(range(1, len(batch) + 1))
    for row, old, result in zip(batch, expected, schema.validate_batch(batch, lines),
                                strict=True):
        if isinstance(result, RecordValidationError):
            new = outcome(_raise(result), row, 0)
        else:
            new = ("ok", result, list(result))
        assert same(old, new), (schema.to_aml_dict(), row)


def _raise(error: RecordValidationError) -> Any:
    def validate(fields: Mapping[str, Any], *, line: int) -> dict[str, Any]:
        raise error

    return validate


CENSUS = load_schema("census-income")
CENSUS_ROW = ["39", "State-gov", "77516", "Bachelors", "13", "Never-married", "Adm-clerical",
              "Not-in-family", "White", "Male", "2174", "0", "40", "United-States", "<=50K"]
CENSUS_VALUES = st.one_of(
    st.sampled_from([c for a in CENSUS.attributes for c in a.categories or ()]),
    st.sampled_from(["39", " 77516", "13", "0", "40", "?", "", "-1", "151", "nan", "x"]),
    VALUES,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*CENSUS.column_names, "planet"]), CENSUS_VALUES,
                       min_size=10))
def test_census_rows_agree_with_the_old_pass(row: dict[str, Any]) -> None:
    legacy = _census_legacy()
    assert same(outcome(legacy.validate, row, 7), outcome(CENSUS.validate, row, 7)), row


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(string.ascii_letters), max_size=3))
def test_census_rows_with_every_field_valid_but_one(letters: list[str]) -> None:
    base = dict(zip(CENSUS.column_names, CENSUS_ROW, strict=True))
    legacy = _census_legacy()
    for name in CENSUS.column_names:
        row = {**base, name: "".join(letters)}
        assert same(outcome(legacy.validate, row, 1), outcome(CENSUS.validate, row, 1)), row


_LEGACY: list[LegacyValidator] = []


def _census_legacy() -> LegacyValidator:
    if not _LEGACY:
        _LEGACY.append(LegacyValidator(CENSUS))
    return _LEGACY[0]
