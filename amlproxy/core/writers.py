"""Outcome writers: results and rejects as CSV or JSON Lines on a binary stream.

:func:`result_row` is the flat row of a scored record, shared by every results sink::

    key, source, line, row_id, label, score_<label>..., value, backend, model_id,
    latency_ms, attempts

:class:`ResultWriter` writes ``ok`` outcomes, :class:`RejectWriter` ``rejected`` and
``failed`` ones (key, source, line, row_id, status, reasons, raw). Both skip the others,
so one stream of outcomes can be handed to both.

CSV: the header is written once; the columns are fixed by ``labels`` when given, else by
the first row written (scores for labels outside them are left out; JSON Lines keeps
every score). Strings that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) are prefixed with a single quote; numbers are
written as they are. The writers never close the stream they were given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, Literal

import orjson

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.result_lines import result_lines

__all__ = ["RejectWriter", "ResultWriter", "csv_cell", "reject_row", "result_row"]

OutputFormat = Literal["csv", "jsonl"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_RESULT_HEAD = ("key", "source", "line", "row_id", "label")
_RESULT_TAIL = ("value", "backend", "model_id", "latency_ms", "attempts")
_REJECT_COLUMNS = ("key", "source", "line", "row_id", "status", "reasons", "raw")
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def result_row(outcome: Outcome) -> dict[str, Any]:
    """The flat row of a scored outcome (prediction fields are None when it has none)."""
    p = outcome.prediction
    source, line = outcome.source, outcome.line
    if p is None:
        return {"key": f"{source}#{line}", "source": source, "line": line,
                "row_id": outcome.row_id, "label": None, "value": None, "backend": None,
                "model_id": None, "latency_ms": None, "attempts": None}
    row: dict[str, Any] = {"key": f"{source}#{line}", "source": source, "line": line,
                           "row_id": outcome.row_id, "label": p.label}
    scores = p.scores
    try:
        row.update(zip(map(_SCORE_COLUMNS.__getitem__, scores), scores.values(), strict=True))
    except KeyError:  # a label not seen yet (its column name is made once)
        for label, score in scores.items():
            row[_SCORE_COLUMNS.get(label) or _score_column(label)] = score
    row["value"] = p.value
    row["backend"] = p.backend
    row["model_id"] = p.model_id
    row["latency_ms"] = round(p.latency_ms, 3)
    row["attempts"] = p.attempts
    return row


_SCORE_COLUMNS: dict[str, str] = {}  # label -> "score_<label>", made once per label


def _score_column(label: str) -> str:
    name = f"score_{label}"
    if len(_SCORE_COLUMNS) < 1024:  # labels are few; a model with many stays bounded
        _SCORE_COLUMNS[label] = name
    return name


def reject_row(outcome: Outcome) -> dict[str, Any]:
    """The flat row of a rejected or failed outcome; ``reasons`` is a list."""
    return {
        "key": outcome.key,
        "source": outcome.source,
        "line": outcome.line,
        "row_id": outcome.row_id,
        "status": outcome.status.value,
        "reasons": outcome.reasons,
        "raw": outcome.raw,
    }


class _OutcomeWriter:
    """What both writers share: the format, the CSV header, the JSON lines."""

    _keeps_ok_only = False  # results: JSON Lines in bulk (amlproxy.core.result_lines)

    def __init__(
        self,
        stream: BinaryIO,
        *,
        format: OutputFormat,
        labels: Sequence[str] | None = None,
        include_record: bool = False,
    ) -> None:
        if format not in ("csv", "jsonl"):
            raise ValueError(f"unknown output format {format!r} (expected 'csv' or 'jsonl')")
        self.stream = stream
        self.format: OutputFormat = format
        self.labels = tuple(labels) if labels is not None else None
        self.include_record = include_record
        self.columns: tuple[str, ...] | None = None  # CSV: fixed by the header once written

    def _keeps(self, status: Status) -> bool:
        raise NotImplementedError

    def _row(self, outcome: Outcome) -> dict[str, Any]:
        raise NotImplementedError

    def _csv_columns(self, first: Outcome | None) -> tuple[str, ...] | None:
        """The CSV columns, from the labels or the first outcome; None if not known yet."""
        raise NotImplementedError

    def _csv_values(self, outcome: Outcome) -> list[Any]:
        raise NotImplementedError

    def write(self, outcomes: Iterable[Outcome]) -> int:
        """Writes the outcomes this writer keeps; returns how many it wrote."""
        ok = Status.OK  # (an identity test: a StrEnum hashes in Python)
        kept = ([o for o in outcomes if o.status is ok] if self._keeps(ok)
                else [o for o in outcomes if o.status is not ok])
        if self.format == "jsonl":
            self._write_jsonl(kept)
        else:
            self._write_csv(kept)
        return len(kept)

    def close(self) -> None:
        """Writes the CSV header if no row came but the columns are known, and flushes.
        The stream stays open."""
        if self.format == "csv" and self.columns is None:
            self._write_csv([])
        self.stream.flush()

    def _write_jsonl(self, kept: list[Outcome]) -> None:
        row_of, dumps = self._row, orjson.dumps
        if self.include_record:
            parts = []
            for outcome in kept:
                row = row_of(outcome)
                row["record"] = dict(outcome.record) if outcome.record is not None else None
                parts.append(dumps(row, option=_JSON_OPTIONS, default=str))
        else:
            lines = result_lines(kept) if self._keeps_ok_only else None
            if lines is not None:
                if lines:
                    self.stream.write(lines)
                return
            parts = [dumps(row_of(o), option=_JSON_OPTIONS, default=str) for o in kept]
        if parts:
            self.stream.write(b"".join(parts))

    def _write_csv(self, kept: list[Outcome]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180; quotes a bare CR
        if self.columns is None:
            columns = self._csv_columns(kept[0] if kept else None)
            if columns is None:
                return  # no row, and no way to know the columns yet
            self.columns = columns
            writer.writerow(columns)
        writer.writerows([csv_cell(v) for v in self._csv_values(o)] for o in kept)
        self.stream.write(buffer.getvalue().encode())


class ResultWriter(_OutcomeWriter):
    """Writes ``ok`` outcomes as :func:`result_row` rows, in CSV or JSON Lines.

    ``labels`` fixes the ``score_<label>`` columns of a CSV file (else the first outcome's
    scores do); ``include_record`` adds the validated record (``record.<name>`` columns in
    CSV, named after the first outcome's record; a ``record`` object in JSON).
    """

    _row_columns: tuple[str, ...] = ()
    _record_names: tuple[str, ...] = ()
    _keeps_ok_only = True

    def _keeps(self, status: Status) -> bool:
        return status is Status.OK

    def _row(self, outcome: Outcome) -> dict[str, Any]:
        return result_row(outcome)

    def _csv_columns(self, first: Outcome | None) -> tuple[str, ...] | None:
        if self.labels is not None:
            labels: Sequence[str] = self.labels
        elif first is not None and first.prediction is not None:
            labels = list(first.prediction.scores)
        elif first is not None:
            labels = []
        else:
            return None
        self._row_columns = (*_RESULT_HEAD, *(f"score_{x}" for x in labels), *_RESULT_TAIL)
        if self.include_record and first is not None and first.record is not None:
            self._record_names = tuple(first.record)
        return self._row_columns + tuple(f"record.{name}" for name in self._record_names)

    def _csv_values(self, outcome: Outcome) -> list[Any]:
        row = result_row(outcome)
        values = [row.get(c) for c in self._row_columns]
        if self._record_names:
            record = outcome.record or {}
            values += [record.get(name) for name in self._record_names]
        return values


class RejectWriter(_OutcomeWriter):
    """Writes ``rejected`` and ``failed`` outcomes: key, source, line, row_id, status,
    reasons (joined by "; " in CSV) and the raw input; ``include_record`` adds the record
    when there is one (as JSON text in a ``record`` column of a CSV file). ``labels`` is
    accepted for symmetry and unused.
    """

    def _keeps(self, status: Status) -> bool:
        return status is not Status.OK

    def _row(self, outcome: Outcome) -> dict[str, Any]:
        return reject_row(outcome)

    def _csv_columns(self, first: Outcome | None) -> tuple[str, ...] | None:
        return (*_REJECT_COLUMNS, "record") if self.include_record else _REJECT_COLUMNS

    def _csv_values(self, outcome: Outcome) -> list[Any]:
        row = reject_row(outcome)
        row["reasons"] = "; ".join(row["reasons"])
        values = list(row.values())
        if self.include_record:
            values.append(dict(outcome.record) if outcome.record is not None else None)
        return values


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: None -> empty, bools as true/false, formula-like strings
    defused with a leading single quote, containers as JSON; numbers untouched."""
    if value is None:
        return ""
    if value.__class__ is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict | list | tuple):
        return csv_cell(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode())
    return csv_cell(str(value))
