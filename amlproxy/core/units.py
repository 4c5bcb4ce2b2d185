"""Input rows grouped into units: one batch for the backend, validated as it is read.

Used by :class:`amlproxy.core.pipeline.Pipeline`. A unit holds ``batch_size`` valid rows
and the rejects read among them; the rows a unit still lacks are read and validated in
one call (:meth:`amlproxy.core.schema.Schema.validate_batch`), so the pipeline reads no
further ahead than the units in flight.

A unit keeps of each valid row only what its outcome needs (line, raw text, row id), in
lists, not the :class:`SourceRow` itself: rows in flight are then no objects of their own
for the garbage collector to go through again and again (a whole file can be in flight).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter
from typing import Any, cast

from amlproxy.core.outcome import Outcome, SourceRow, Status
from amlproxy.core.prediction import Prediction
from amlproxy.core.report import Report
from amlproxy.core.retry import never_attempted
from amlproxy.core.schema import Schema
from amlproxy.errors import BackendError, FieldError, RecordValidationError, RetriesExhaustedError

# a unit's scored batch: a prediction per record, else the backend's error; and the count
# of errors
_DICT = {dict}
UnitResult = tuple[list["Prediction | BackendError"], int]
_LINE = attrgetter("line")
_RAW = attrgetter("raw")


@dataclass
class Unit:
    """Consecutive input rows: one batch for the backend, and the rejects among them.

    ``lines``, ``raws``, ``row_ids`` (None when the schema has no rowId) and ``records``
    are the batch: each valid row's line, raw text, row id and validated record.
    ``rejects`` holds each rejected row's outcome with its place among the unit's rows,
    so that outcomes come out in input order.
    """

    lines: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    row_ids: list[str | None] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[int, Outcome]] = field(default_factory=list)
    future: Future[UnitResult] | None = None
    result: UnitResult | None = None

    @classmethod
    def of_records(cls, records: Sequence[Mapping[str, Any]], schema: Schema) -> Unit:
        """One batch of records valid already, lines 1 to n without raw text: what
        :func:`build_units` (``validated=True``) makes of them, without rows to read."""
        unit = cls(lines=list(range(1, len(records) + 1)), raws=[""] * len(records),
                   records=[r if r.__class__ is dict else dict(r) for r in records])
        if schema.row_id:
            unit.row_ids = [schema.row_id_of(record) for record in unit.records]
        return unit

    def add(self, rows: Sequence[SourceRow], records: list[dict[str, Any]],
            schema: Schema) -> None:
        """Adds valid rows and their records to the batch."""
        self.lines += map(_LINE, rows)
        self.raws += map(_RAW, rows)
        self.records += records
        if schema.row_id:
            row_id_of = schema.row_id_of
            if self.row_ids is None:
                self.row_ids = []
            self.row_ids += [None if row.fields is None else row_id_of(row.fields)
                             for row in rows]


def build_units(
    rows: Iterable[SourceRow],
    schema: Schema,
    batch_size: int,
    *,
    source: str,
    report: Report,
    validated: bool = False,
) -> Iterator[Unit]:
    """Units of ``batch_size`` valid rows (and the rejects among them); ``validated`` takes
    each row's fields as a record that is valid already. Validation time goes to
    ``report.validate_s``."""
    reader = iter(rows)
    unit = Unit()
    while True:
        chunk = list(islice(reader, batch_size - len(unit.records)))
        if not chunk:
            break
        t0 = time.perf_counter()
        results = _as_validated(chunk) if validated else _validate(schema, chunk)
        report.validate_s += time.perf_counter() - t0
        if set(map(type, results)) == _DICT:  # every row valid: no loop in Python
            unit.add(chunk, results, schema)
        else:
            _add_rows(unit, chunk, results, source, schema)
        if len(unit.records) >= batch_size:
            yield unit
            unit = Unit()
    if unit.lines or unit.rejects:
        yield unit


def _add_rows(unit: Unit, chunk: list[SourceRow], results: list[Any], source: str,
              schema: Schema) -> None:
    """Adds validated rows to the unit: each valid record, each reject at its place."""
    for row, result in zip(chunk, results, strict=True):
        if result.__class__ is dict:
            unit.add((row,), [result], schema)
            continue
        if isinstance(result, RecordValidationError):
            outcome = reject_outcome(source, row, result.errors, result.row_id)
        else:  # the reader could not split it into fields
            outcome = reject_outcome(source, row, [FieldError(None, row.error or "")])
        unit.rejects.append((len(unit.lines) + len(unit.rejects), outcome))


def reject_outcome(
    source: str, row: SourceRow, errors: Sequence[FieldError], row_id: str | None = None
) -> Outcome:
    """The outcome of a row refused as input."""
    return Outcome(source=source, line=row.line, status=Status.REJECTED, record=row.fields,
                   raw=row.raw, errors=tuple(errors), row_id=row_id)


def _validate(schema: Schema, chunk: list[SourceRow]) -> list[Any]:
    """Each row's record, its RecordValidationError, or None (no fields)."""
    if len(chunk) == 1:  # one record per call (Amazon ML): no batch to build
        row = chunk[0]
        if row.fields is None:
            return [None]
        try:
            return [schema.validate(row.fields, line=row.line)]
        except RecordValidationError as exc:
            return [exc]
    fields = [row.fields for row in chunk]
    if None not in fields:
        return schema.validate_batch(fields, _Lines(chunk))  # type: ignore[arg-type]
    some = [i for i, f in enumerate(fields) if f is not None]
    results: list[Any] = [None] * len(chunk)
    validated = schema.validate_batch([fields[i] for i in some],  # type: ignore[misc]
                                      [chunk[i].line for i in some])
    for i, result in zip(some, validated, strict=True):
        results[i] = result
    return results


def _as_validated(chunk: list[SourceRow]) -> list[Any]:
    """Rows whose fields are records already (``validated=True``), as dicts."""
    return [None if row.fields is None else row.fields if row.fields.__class__ is dict
            else dict(row.fields) for row in chunk]


class _Lines:
    """The line numbers of a chunk of rows, read only for the rows in error."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[SourceRow]) -> None:
        self.rows = rows

    def __getitem__(self, index: int) -> int:
        return self.rows[index].line

    def __len__(self) -> int:
        return len(self.rows)


def finish_unit(unit: Unit, source: str, report: Report, backend: str) -> list[Outcome]:
    """The unit's outcomes, in input order (waits for its batch; ``backend``: its name,
    for the reasons of failed rows). They are made here, just before they are written:
    objects that live that briefly cost the garbage collector next to nothing."""
    if not unit.lines:
        return [o for _, o in unit.rejects]
    if unit.future is not None:
        t0 = time.perf_counter()  # time spent waiting on the backend
        unit.result = unit.future.result()
        report.predict_s += time.perf_counter() - t0
    assert unit.result is not None
    scored, failures = unit.result
    assert failures >= 0  # (a backend's wrong count of predictions: zip raises below)
    lines = unit.lines
    row_ids = unit.row_ids if unit.row_ids is not None else [None] * len(lines)
    outcomes: list[Outcome | None]
    if not failures:
        ok, predictions = Status.OK, cast("list[Prediction]", scored)
        outcomes = [Outcome(source, line, ok, record, None, prediction, (), row_id)
                    for line, record, prediction, row_id
                    in zip(lines, unit.records, predictions, row_ids, strict=True)]
    else:
        outcomes = [
            Outcome(source, line, Status.OK, record, None, result, (), row_id)
            if isinstance(result, Prediction)
            else None if never_attempted(result)
            else _failed(source, line, raw, record, row_id, result, report, backend)
            for line, raw, record, row_id, result
            in zip(lines, unit.raws, unit.records, row_ids, scored, strict=True)
        ]
    for at, reject in unit.rejects:  # ascending places: each insert keeps the next's
        outcomes.insert(at, reject)
    if failures and None in outcomes:
        # a record not tried before the deadline is not done: neither it nor the rows
        # after it get an outcome in this run
        report.interrupted = True
        del outcomes[outcomes.index(None):]
    return outcomes  # type: ignore[return-value]  # no None is left

def _failed(
    source: str,
    line: int,
    raw: str,
    record: dict[str, Any],
    row_id: str | None,
    error: BackendError,
    report: Report,
    backend: str,
) -> Outcome:
    report.retries += max(0, error.attempts - 1)
    if isinstance(error, RetriesExhaustedError):
        report.exhausted += 1
    reason = FieldError(None, f"backend {backend}: {failure_text(error)}")
    return Outcome(source, line, Status.FAILED, record, raw, None, (reason,), row_id)


def failure_text(error: BackendError) -> str:
    """A backend failure as ``Class: message``: its cause, not only that it failed."""
    text = str(error)
    first = text.split(":", 1)[0]
    return text if first.endswith("Error") and first.isidentifier() else (
        f"{type(error).__name__}: {text}")
