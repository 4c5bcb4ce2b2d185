"""Outcome writers: flat rows, CSV and JSON Lines, stable columns, CSV injection."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.prediction import Prediction
from amlproxy.core.writers import RejectWriter, ResultWriter, csv_cell, reject_row, result_row
from amlproxy.errors import FieldError


def prediction(
    label: str = ">50K", scores: dict[str, float] | None = None, **kw: Any
) -> Prediction:
    return Prediction(
        label=label,
        scores={">50K": 0.75, "<=50K": 0.25} if scores is None else scores,
        value=kw.pop("value", None),
        backend=kw.pop("backend", "local"),
        model_id=kw.pop("model_id", "census-logreg"),
        latency_ms=kw.pop("latency_ms", 1.23456),
        attempts=kw.pop("attempts", 1),
    )


def ok(line: int, p: Prediction | None = None, **kw: Any) -> Outcome:
    return Outcome(
        source="in.csv",
        line=line,
        status=Status.OK,
        record=kw.pop("record", {"age": 39.0, "sex": "Male"}),
        raw=kw.pop("raw", "39, Male"),
        prediction=p or prediction(),
        row_id=kw.pop("row_id", None),
    )


def rejected(line: int, *reasons: str, status: Status = Status.REJECTED, **kw: Any) -> Outcome:
    return Outcome(
        source="in.csv",
        line=line,
        status=status,
        record=kw.pop("record", None),
        raw=kw.pop("raw", "bad, row"),
        errors=tuple(FieldError(*r.split(": ", 1)) if ": " in r else FieldError(None, r)
                     for r in reasons),
        row_id=kw.pop("row_id", None),
    )  # fmt: skip


def csv_rows(stream: io.BytesIO) -> list[list[str]]:
    return list(csv.reader(io.StringIO(stream.getvalue().decode())))


def json_rows(stream: io.BytesIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_result_row() -> None:
    assert result_row(ok(3, row_id="r3")) == {
        "key": "in.csv#3",
        "source": "in.csv",
        "line": 3,
        "row_id": "r3",
        "label": ">50K",
        "score_>50K": 0.75,
        "score_<=50K": 0.25,
        "value": None,
        "backend": "local",
        "model_id": "census-logreg",
        "latency_ms": 1.235,
        "attempts": 1,
    }


def test_reject_row() -> None:
    outcome = rejected(4, "age: not a number: 'x'", "sex: missing required value", row_id="r4")
    assert reject_row(outcome) == {
        "key": "in.csv#4",
        "source": "in.csv",
        "line": 4,
        "row_id": "r4",
        "status": "rejected",
        "reasons": ["age: not a number: 'x'", "sex: missing required value"],
        "raw": "bad, row",
    }


def test_result_jsonl_writes_only_ok_outcomes() -> None:
    out = io.BytesIO()
    writer = ResultWriter(out, format="jsonl")
    assert writer.write([ok(1), rejected(2, "nope"), ok(3, row_id="x")]) == 2
    assert writer.write([]) == 0
    rows = json_rows(out)
    assert [r["line"] for r in rows] == [1, 3]
    assert rows[1] == result_row(ok(3, row_id="x"))
    assert "record" not in rows[0]


def test_result_jsonl_with_record() -> None:
    out = io.BytesIO()
    ResultWriter(out, format="jsonl", include_record=True).write([ok(1)])
    assert json_rows(out)[0]["record"] == {"age": 39.0, "sex": "Male"}


def test_result_csv_columns_come_from_labels_and_stay_fixed() -> None:
    out = io.BytesIO()
    writer = ResultWriter(out, format="csv", labels=["<=50K", ">50K"])
    writer.write([ok(1)])
    odd = prediction("b", {"b": 0.9, "<=50K": 0.1}, value=-2.5, attempts=3)
    writer.write([ok(2, odd, row_id="-7")])
    rows = csv_rows(out)
    assert rows[0] == [
        "key", "source", "line", "row_id", "label", "score_<=50K", "score_>50K",
        "value", "backend", "model_id", "latency_ms", "attempts",
    ]  # fmt: skip
    assert rows[1] == ["in.csv#1", "in.csv", "1", "", ">50K", "0.25", "0.75", "", "local",
                       "census-logreg", "1.235", "1"]  # fmt: skip
    # an unknown label's score is left out, a missing one is empty; the header is not repeated
    assert rows[2] == ["in.csv#2", "in.csv", "2", "'-7", "b", "0.1", "", "-2.5", "local",
                       "census-logreg", "1.235", "3"]  # fmt: skip
    assert len(rows) == 3


def test_result_csv_columns_from_the_first_outcome_with_record() -> None:
    out = io.BytesIO()
    writer = ResultWriter(out, format="csv", include_record=True)
    writer.write([rejected(1, "x"), ok(2), ok(3, record={"sex": "=cmd", "extra": 1})])
    rows = csv_rows(out)
    assert rows[0][5:7] == ["score_>50K", "score_<=50K"]
    assert rows[0][-2:] == ["record.age", "record.sex"]
    assert rows[1][-2:] == ["39.0", "Male"]
    assert rows[2][-2:] == ["", "'=cmd"]


def test_close_writes_the_header_when_the_columns_are_known() -> None:
    out = io.BytesIO()
    ResultWriter(out, format="csv", labels=["a"]).close()
    assert csv_rows(out) == [
        ["key", "source", "line", "row_id", "label", "score_a", "value", "backend",
         "model_id", "latency_ms", "attempts"]
    ]  # fmt: skip
    assert not out.closed
    unknown = io.BytesIO()
    writer = ResultWriter(unknown, format="csv")
    writer.write([rejected(1, "x")])
    writer.close()
    assert unknown.getvalue() == b""
    rejects = io.BytesIO()
    RejectWriter(rejects, format="csv").close()
    assert csv_rows(rejects) == [["key", "source", "line", "row_id", "status", "reasons", "raw"]]


def test_reject_csv() -> None:
    out = io.BytesIO()
    writer = RejectWriter(out, format="csv", include_record=True)
    failed = rejected(
        3, "ThrottledError: gave up", status=Status.FAILED, record={"age": 39.0}, raw=None
    )
    count = writer.write(
        [ok(1), rejected(2, "age: not a number: 'x'", "sex: missing required value"), failed]
    )
    assert count == 2
    assert csv_rows(out) == [
        ["key", "source", "line", "row_id", "status", "reasons", "raw", "record"],
        ["in.csv#2", "in.csv", "2", "", "rejected",
         "age: not a number: 'x'; sex: missing required value", "bad, row", ""],
        ["in.csv#3", "in.csv", "3", "", "failed", "ThrottledError: gave up", "", '{"age":39.0}'],
    ]  # fmt: skip


def test_reject_jsonl() -> None:
    out = io.BytesIO()
    RejectWriter(out, format="jsonl").write([rejected(5, "a: b", "c"), ok(6)])
    assert json_rows(out) == [reject_row(rejected(5, "a: b", "c"))]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+41 555", "'+41 555"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-2, -2),
        (-2.5, -2.5),
        (True, "true"),
        ({"a": "=x"}, '{"a":"=x"}'),
    ],
)
def test_csv_cell(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def test_csv_injection_in_reject_raw_survives_a_round_trip() -> None:
    out = io.BytesIO()
    RejectWriter(out, format="csv").write(
        [rejected(1, "=HYPERLINK(x)", raw='=HYPERLINK("http://x")', row_id="@id")]
    )
    row = csv_rows(out)[1]
    assert row[3] == "'@id" and row[5] == "'=HYPERLINK(x)" and row[6] == '\'=HYPERLINK("http://x")'


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        ResultWriter(io.BytesIO(), format="xml")  # type: ignore[arg-type]
