"""JSON Lines of results in bulk: the same bytes as one ``dumps`` of each result row."""

from __future__ import annotations

import io
import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.prediction import Prediction
from amlproxy.core.result_lines import result_lines
from amlproxy.core.writers import ResultWriter, result_row

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def row_by_row(outcomes: list[Outcome]) -> bytes:
    return b"".join(orjson.dumps(result_row(o), option=_OPTIONS, default=str) for o in outcomes)


def outcome(line: int, label: Any = ">50K", scores: Any = None, *, source: str = "in.csv",
            row_id: str | None = None, **kw: Any) -> Outcome:
    prediction = Prediction(label, {"<=50K": 0.25, ">50K": 0.75} if scores is None else scores,
                            kw.pop("value", None), kw.pop("backend", "sagemaker"),
                            kw.pop("model_id", "census-income"), kw.pop("latency_ms", 21.23456),
                            kw.pop("attempts", 1))
    return Outcome(source, line, Status.OK, {"age": 39.0}, None, prediction, (), row_id)


def test_the_usual_chunk_is_written_in_bulk() -> None:
    outcomes = [outcome(i, ">50K" if i % 3 else "<=50K", {"<=50K": 1 - i / 7, ">50K": i / 7},
                        latency_ms=20.0 + i // 4) for i in range(1, 40)]
    lines = result_lines(outcomes)
    assert lines is not None and lines == row_by_row(outcomes)
    assert orjson.loads(lines.splitlines()[0]) == result_row(outcomes[0])
    assert result_lines([]) == b""


def test_odd_text_is_quoted_as_orjson_does() -> None:
    outcomes = [outcome(1, 'a,"b"%s\n', {"%d,x": 0.5, "é\u2028": 0.5}, source='s3://b/k%20"é"',
                        row_id="1,2", backend="b%", model_id="m\x00"),
                outcome(2, None, {"%d,x": math.nan, "é\u2028": 1e-7}, source='s3://b/k%20"é"',
                        value=-0.0, attempts=3, latency_ms=0.0)]
    assert result_lines(outcomes) == row_by_row(outcomes)


def test_other_chunks_are_left_to_the_rows() -> None:
    assert result_lines([outcome(1), outcome(2, source="other")]) is None
    assert result_lines([outcome(1), outcome(2, scores={">50K": 0.75, "<=50K": 0.25})]) is None
    assert result_lines([outcome(1, value=True)]) is None
    assert result_lines([outcome(1, scores={1: 0.5})]) is None
    assert result_lines([outcome(1, backend=3)]) is None  # type: ignore[arg-type]
    assert result_lines([outcome(1, scores={"a": 2**70})]) is None
    assert result_lines([outcome(i, f"label {i}") for i in range(40)]) is None
    many = [outcome(i, f"label {i}") for i in range(40)]
    out = io.BytesIO()
    ResultWriter(out, format="jsonl").write(many)
    assert out.getvalue() == row_by_row(many)


numbers = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=True, allow_infinity=True))
texts = st.text(max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    source=texts,
    labels=st.lists(st.one_of(st.none(), st.sampled_from(["<=50K", ">50K", "a,b", '"'])),
                    min_size=1, max_size=12),
    names=st.lists(texts, max_size=3, unique=True),
    data=st.data(),
)
def test_bulk_lines_are_the_rows_lines(source: str, labels: list[str | None],
                                       names: list[str], data: st.DataObject) -> None:
    outcomes = []
    for i, label in enumerate(labels):
        scores = {name: data.draw(numbers) for name in names}
        outcomes.append(outcome(
            data.draw(st.integers(0, 10**9)) if i else 1, label, scores, source=source,
            row_id=data.draw(st.one_of(st.none(), texts)), value=data.draw(numbers),
            latency_ms=data.draw(st.sampled_from([0.0, 1.23456, 20.0004999, -3.0])),
            attempts=data.draw(st.integers(0, 5)),
        ))
    lines = result_lines(outcomes)
    assert lines is not None
    assert lines == row_by_row(outcomes)
