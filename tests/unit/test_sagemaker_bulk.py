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
