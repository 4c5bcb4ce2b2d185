"""The bulk readings of the SageMaker codec (issue 16) give what the item-by-item ones
give: CSV lines encoded with one look at the whole line, one probability per line parsed
in one pass."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlproxy.backends.sagemaker_codec import CsvEncoder, _csv_cell
from amlproxy.backends.sagemaker_response import ResponseParser
from amlproxy.errors import ModelResponseError

PARSER = ResponseParser(labels=("<=50K", ">50K"))
LINES = st.one_of(st.floats(0.0, 1.0).map(repr), st.sampled_from(
    ["nan", "inf", "1.5", "-0.1", "", " 0.5 ", "0.5,0.5", '"0.5"', "yes", "1_0", "0.0"]))


def item_by_item(body: bytes, count: int) -> Any:
    try:
        items = PARSER._csv_items(body)
        if len(items) != count:
            return "count"
        return [PARSER.interpret(item) for item in items]
    except ModelResponseError as exc:
        return str(exc)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=6))
def test_bulk_probabilities_are_read_as_one_by_one(lines: list[str]) -> None:
    body = ("\n".join(lines) + "\n").encode()
    count = sum(1 for line in lines if line.strip())
    expected = item_by_item(body, count)
    try:
        got: Any = PARSER.parse(body, "text/csv", count)
    except ModelResponseError as exc:
        got = "count" if "returned" in str(exc) else str(exc)
    assert got == expected


CELLS = st.one_of(st.sampled_from(["a", "a,b", 'say "x"', "two\nlines", "cr\r", "", " "]),
                  st.floats(allow_nan=False), st.integers(-5, 5), st.booleans(), st.none())


@settings(max_examples=300, deadline=None)
@given(st.lists(CELLS, min_size=3, max_size=3))
def test_a_line_is_encoded_as_cell_by_cell(values: list[Any]) -> None:
    encoder = CsvEncoder(("a", "b", "c"))
    cells = []
    for value in values:
        if value.__class__ is str:
            needs = any(c in value for c in ',"\r\n')
            cells.append('"' + value.replace('"', '""') + '"' if needs else value)
        else:
            cells.append(_csv_cell(value))
    assert encoder.encode(dict(zip("abc", values, strict=True))) == ",".join(cells).encode()


@pytest.mark.parametrize("body", [b"0.2\nnan\n", b"1.5\n0.1\n"])
def test_out_of_range_probabilities_are_refused(body: bytes) -> None:
    with pytest.raises(ModelResponseError, match="probability out of"):
        PARSER.parse(body, "text/csv", 2)


BATCH_CELLS = st.one_of(CELLS, st.floats(-1e16, 1e16), st.sampled_from([0.0, -0.0, 39.0, 1e15]),
                        st.text(max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(BATCH_CELLS, min_size=3, max_size=3), min_size=1, max_size=12),
       st.sampled_from(["mixed", "float", "str", "str-none"]))
def test_a_batch_is_encoded_as_record_by_record(rows: list[list[Any]], shape: str) -> None:
    # columns of one type (the validator's output) take the column-wise path; any other
    # mix falls back cell by cell: both give what encode() gives for each record
    if shape == "float":
        rows = [[float(len(repr(v))) if not isinstance(v, float) else v for v in row]
                for row in rows]
    elif shape in ("str", "str-none"):
        rows = [[v if isinstance(v, str) else (None if shape == "str-none" else repr(v))
                 for v in row] for row in rows]
    encoder = CsvEncoder(("a", "b", "c"))
    records = [dict(zip("abc", row, strict=True)) for row in rows]
    assert encoder.encode_batch(records) == [encoder.encode(r) for r in records]


def test_a_batch_with_absent_features_is_encoded_as_record_by_record() -> None:
    encoder = CsvEncoder(("a", "b", "c"))
    records = [{"a": 1.0, "b": "x", "c": None}] * 5 + [{"a": 2.5}]
    assert encoder.encode_batch(records) == [encoder.encode(r) for r in records]
    assert encoder.encode_batch(records)[-1] == b"2.5,,"
