"""``POST /predict`` bodies: JSON and CSV in, records and their validation errors out.

Every problem here is the caller's and becomes a 400 listing what is wrong (never a 500):
:class:`BadRequest` carries the error entries ``{"index", "field", "reason"}`` (``line``
too for CSV), at most :data:`MAX_ERRORS_LISTED` of them.

- JSON: one record (an object), a list of records, or ``{"records": [...]}``; a key given
  twice in one object is refused (ambiguous).
- CSV: a header as the schema says, or as ``?header=`` says (``true``/``false``,
  ``1``/``0``, ``yes``/``no``, any case; any other value is a 400). A header with an empty,
  blank or repeated column name, or one the schema does not have (unless it ignores extra
  fields), is a 400 naming the column.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from amlproxy.core.readers import duplicate_json_key, read_records
from amlproxy.core.schema import Schema
from amlproxy.core.schema_json import any_case
from amlproxy.errors import InputError, RecordValidationError

MAX_ERRORS_LISTED = 100
_DICT = {dict}
MAX_REASON_CHARS = 300
HEADER_PARAMETER = "header"
HEADER_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# The values of ?header= as a pattern (for the OpenAPI document): the same words, any case.
HEADER_PATTERN = "^(?:" + "|".join(any_case(w) for w in HEADER_VALUES) + ")$"


class BadRequest(InputError):
    """The request cannot be scored as sent (internal: becomes a 400 with ``errors``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e["reason"]) for e in errors[:3]))


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """The records of a body (mappings, or rows a reader could not split), their CSV lines,
    and whether the body was a single record (answered with one ``prediction``)."""

    records: list[Any]
    lines: list[int] | None
    single: bool


def error_entry(index: int | None, field: str | None, reason: str, line: int | None = None
                ) -> dict[str, Any]:
    """One entry of a 400's ``errors`` list."""
    entry: dict[str, Any] = {"index": index, "field": field, "reason": reason[:MAX_REASON_CHARS]}
    if line is not None:
        entry["line"] = line
    return entry


def bad_request_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a 400: the first :data:`MAX_ERRORS_LISTED` errors, and how many more."""
    body: dict[str, Any] = {"errors": errors[:MAX_ERRORS_LISTED]}
    if len(errors) > MAX_ERRORS_LISTED:
        body["truncated"] = len(errors) - MAX_ERRORS_LISTED
    return body


def header_flag(query: Mapping[str, str]) -> bool | None:
    """``?header=``: True, False, or None when absent (the schema decides)."""
    value = query.get(HEADER_PARAMETER)
    if value is None:
        return None
    flag = HEADER_VALUES.get(value.lower())
    if flag is None:
        raise BadRequest([error_entry(None, None, f"?header={value[:40]!r}: use true or false "
                                      "(or 1/0, yes/no)")])
    return flag


def json_records(body: bytes) -> ParsedBody:
    """The records of a JSON body."""
    try:
        doc = parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest([error_entry(None, None, f"invalid JSON: {exc}")]) from None
    single = False
    if isinstance(doc, dict):
        if len(doc) == 1 and "records" in doc:
            if not isinstance(doc["records"], list):
                raise BadRequest([error_entry(None, "records", "must be a list of records")])
            doc = doc["records"]
        else:
            doc, single = [doc], True
    if not isinstance(doc, list):
        raise BadRequest([error_entry(None, None, "expected a record (a JSON object), a list "
                                      'of records or {"records": [...]}')])
    if not doc:
        raise BadRequest([error_entry(None, None, "no records")])
    duplicate = _duplicate_key(body, doc, wrapped=not single and isinstance(parsed, dict))
    if duplicate is not None:
        raise BadRequest([error_entry(None, duplicate, "a key given twice in one object "
                                      "(ambiguous)")])
    return ParsedBody(doc, None, single)


def _duplicate_key(body: bytes, records: list[Any], *, wrapped: bool) -> str | None:
    """A key some object of ``body`` names twice, or None. Cheap unless the body has more
    ':' than the parsed records have keys."""
    keys = wrapped + sum(len(r) for r in records if isinstance(r, dict))
    if body.count(b":") <= keys:
        return None
    return duplicate_json_key(body)


def csv_records(body: bytes, schema: Schema, header: bool | None, limit: int) -> ParsedBody:
    """The rows of a CSV body (at most ``limit`` + 1: one more tells the caller "too many")."""
    rows = []
    try:
        for row in read_records(io.BytesIO(body), schema, format="csv", header=header):
            rows.append(row)
            if len(rows) > limit:
                break  # the caller answers 413; no need to read the rest
    except InputError as exc:  # the header line: an empty, blank or repeated name
        raise BadRequest([error_entry(None, None, str(exc))]) from None
    if not rows:
        raise BadRequest([error_entry(None, None, "no records")])
    with_header = schema.has_header if header is None else header
    if with_header and schema.extra_fields == "reject":
        _check_header_names(schema, rows[0].fields)
    records = [row.fields if row.fields is not None else row for row in rows]
    return ParsedBody(records, [row.line for row in rows], False)


def _check_header_names(schema: Schema, fields: Mapping[str, Any] | None) -> None:
    """A header column the schema does not have: one error naming it (not one per row)."""
    if fields is None:  # the first row could not be split: its own error says why
        return
    known = set(schema.column_names)
    unknown = [name for name in fields if name not in known]
    if unknown:
        raise BadRequest([error_entry(None, name, "the CSV header names a column the schema "
                                      "does not have") for name in unknown])


def validate_all(schema: Schema, parsed: ParsedBody) -> list[dict[str, Any]]:
    """Every record validated (features, typed) in one call (:meth:`Schema.validate_batch`);
    :class:`BadRequest` listing every bad field of every record when any is invalid
    (nothing is scored then)."""
    records, lines = parsed.records, parsed.lines
    if lines is None and set(map(type, records)) == _DICT:  # JSON: objects only (C loops)
        results = schema.validate_batch(records)
        if set(map(type, results)) == _DICT:
            return results  # type: ignore[return-value]  # every record valid
    objects = [i for i, record in enumerate(records) if isinstance(record, Mapping)]
    checked = dict(zip(objects, schema.validate_batch(
        [records[i] for i in objects], [lines[i] for i in objects] if lines else None),
        strict=True))
    validated: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        line = lines[index] if lines is not None else None
        result = checked.get(index)
        if result is None:
            reason = getattr(record, "error", None) or "not a JSON object"
            errors.append(error_entry(index, None, reason, line))
        elif isinstance(result, RecordValidationError):
            errors.extend(error_entry(index, e.field, e.reason, line) for e in result.errors)
        else:
            validated.append(result)
    if errors:
        raise BadRequest(errors)
    return validated
