"""The scoring loop the pydantic and Powertools peers share: CSV rows in, JSON Lines out.

What a user writes around their model: csv.reader over the decoded object, each row
validated (by ``validate``: ``model_validate`` or Powertools' ``parse``), scored by
``predict``, one JSON line per result and per reject (with its line and reasons).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from peers.census_model import COLUMNS, CensusRecord

Predict = Callable[[dict[str, Any]], tuple[str, dict[str, float]]]
Validate = Callable[[dict[str, Any]], CensusRecord]
_LINE = orjson.OPT_APPEND_NEWLINE


def score_csv(body: bytes, source: str, validate: Validate, predict: Predict
              ) -> tuple[bytes, bytes, int]:
    """(results, rejects, records) of a census CSV object."""
    results: list[bytes] = []
    rejects: list[bytes] = []
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig")), skipinitialspace=True)
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        try:
            record = validate(dict(zip(COLUMNS, row, strict=False)))
        except ValidationError as exc:
            rejects.append(reject_line(line, exc, row))
            continue
        results.append(result_line(source, line, *predict(record.features())))
    return b"".join(results), b"".join(rejects), len(results) + len(rejects)


def result_line(source: str, line: int, label: str, scores: dict[str, float], *,
                backend: str = "local", model_id: str = "census-income",
                latency_ms: float = 0.0, attempts: int = 1) -> bytes:
    """One result as JSON: the fields of amlproxy's results row (the same output)."""
    row: dict[str, Any] = {"key": f"{source}#{line}", "source": source, "line": line,
                           "row_id": None, "label": label}
    for name, score in scores.items():
        row[f"score_{name}"] = score
    row.update(value=None, backend=backend, model_id=model_id,
               latency_ms=round(latency_ms, 3), attempts=attempts)
    return orjson.dumps(row, option=_LINE)


def reject_line(line: int, error: ValidationError, row: list[str]) -> bytes:
    """One reject as JSON: its line, a reason per bad field, the row as it was."""
    reasons = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return orjson.dumps({"line": line, "reasons": reasons, "raw": ",".join(row)}, option=_LINE)
