"""The pipeline's outcomes carry each row's id and raw text, whichever way the row ends."""

from __future__ import annotations

import pytest

from amlproxy.core.outcome import SourceRow, Status
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.schema import Schema
from amlproxy.errors import InvalidRecordError
from tests.unit.test_pipeline import EchoBackend, ListSink

SCHEMA = Schema.from_document({
    "version": "1.0", "rowId": "id", "dataFormat": "CSV", "dataFileContainsHeader": False,
    "attributes": [{"attributeName": "id", "attributeType": "TEXT"},
                   {"attributeName": "age", "attributeType": "NUMERIC", "required": True}],
}, name="with-ids")


def rows(n: int) -> list[SourceRow]:
    """Row i: id " r<i> " (row 9: no id), age 17 + i % 5; every 7th age is bad."""
    out = []
    for i in range(1, n + 1):
        age = "old" if i % 7 == 0 else str(17 + i % 5)
        row_id = "?" if i == 9 else f" r{i} "
        out.append(SourceRow(i, {"id": row_id, "age": age}, f"{row_id},{age}"))
    return out


@pytest.mark.parametrize(("concurrency", "batch"), [(1, 1), (1, 4), (4, 3)])
def test_ok_failed_and_rejected_outcomes_keep_row_id_and_raw(concurrency: int,
                                                             batch: int) -> None:
    # a record the endpoint refuses fails alone, its batch scored again record by record
    backend = EchoBackend(max_batch_size=batch, fail_ages={20.0: InvalidRecordError("no")})
    sink = ListSink()
    report = Pipeline(SCHEMA, backend, [sink], concurrency=concurrency, sink_chunk=5).run(
        rows(30), source="ids")
    assert [o.line for o in sink.outcomes] == list(range(1, 31))
    for o in sink.outcomes:
        assert o.row_id == (None if o.line == 9 else f"r{o.line}")
        if o.line % 7 == 0:
            assert o.status is Status.REJECTED and o.raw == f" r{o.line} ,old"
        elif 17 + o.line % 5 == 20:
            assert o.status is Status.FAILED and o.raw == f" r{o.line} ,20"
            assert o.record == {"age": 20.0}  # (the row id is no feature)
            assert o.reasons == ["backend echo: InvalidRecordError: no"]
        else:
            assert o.status is Status.OK and o.raw is None
            assert o.prediction is not None
            assert o.prediction.label == str(17 + o.line % 5)
    assert (report.ok, report.failed, report.rejected) == (21, 5, 4)
    assert report.reconciles
