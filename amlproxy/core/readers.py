"""Record readers: CSV and JSON Lines from a binary stream, in bounded memory.

A reader takes anything with ``.read(n) -> bytes`` (a file opened ``"rb"``, an S3
``StreamingBody``) and yields one :class:`~amlproxy.core.outcome.SourceRow` per record,
numbered by the physical line where the record starts. It reads 64 KiB at a time and never
holds more than one record (at most ``max_record_bytes``) plus one chunk.

A record that cannot even be split into fields (too long, not UTF-8, malformed CSV quoting,
wrong number of fields, invalid JSON...) becomes a SourceRow with ``fields=None`` and an
``error``; reading goes on with the next record. Whether the fields are *valid* is the
schema's business (:meth:`amlproxy.core.schema.Schema.validate`), not the reader's.

CSV: header or not as the schema says (``header=`` overrides), UTF-8 with or without BOM,
``"quoted, fields"`` including newlines, CRLF, blanks after separators skipped (``a, b``
as in the UCI files), blank lines skipped. Without a header a row maps to the schema's
columns in order; a row one field short is taken as lacking the target (scoring files
usually do). With a header, fields are named by it; columns the schema does not know are
passed on and judged by the schema's extra-field policy. After a quoted multi-line record
is given up (too long, not UTF-8), reading resumes at the next physical line, so what is
left of it is read as records of its own (and usually rejected). ``csv.field_size_limit``
is raised to ``max_record_bytes`` when it is lower (it is process-wide).

JSON Lines: one JSON object per line. Refused per line: invalid JSON (NaN and Infinity
included), anything but an object, duplicate keys (ambiguous), values nested deeper than
:data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, Literal

import orjson

from amlproxy.core.csv_reader import read_csv
from amlproxy.core.line_reader import (
    DEFAULT_MAX_RECORD_BYTES,
    LineReader,
    SupportsReadBytes,
    flush_skipped,
)
from amlproxy.core.outcome import SourceRow
from amlproxy.core.schema import Schema
from amlproxy.core.schema_format import json_type_name
from amlproxy.errors import InputError

__all__ = ["detect_format", "read_csv", "read_jsonl", "read_records"]

RecordFormat = Literal["csv", "jsonl"]
MAX_JSON_DEPTH = 32
_FORMATS: dict[str, RecordFormat] = {
    ".csv": "csv",
    ".txt": "csv",
    ".data": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def detect_format(name: str) -> RecordFormat:
    """The record format a file or object name implies, from its extension."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    try:
        return _FORMATS[suffix]
    except KeyError:
        known = ", ".join(_FORMATS)
        raise InputError(
            f"cannot tell the record format of {name!r} from its extension (expected {known})"
        ) from None


def read_records(
    stream: SupportsReadBytes,
    schema: Schema,
    *,
    format: RecordFormat,
    header: bool | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    first_line: int = 1,
    header_line: str | None = None,
    first_offset: int = 0,
) -> Iterator[SourceRow]:
    """The records of ``stream`` in ``format`` ("csv" or "jsonl"); ``header`` is CSV only.

    ``first_line`` and ``first_offset`` are the number and the byte offset of the stream's
    first physical line (a byte range of a larger object starts there: rejects then name
    lines and offsets of the object, and a BOM is skipped only at offset 0);
    ``header_line`` (CSV) is the header of that object when the range does not hold it: its
    columns name the fields, and no line is taken as one.
    """
    if format == "csv":
        return read_csv(stream, schema, header=header, max_record_bytes=max_record_bytes,
                        first_line=first_line, header_line=header_line,
                        first_offset=first_offset)
    if format == "jsonl":
        return read_jsonl(stream, schema, max_record_bytes=max_record_bytes,
                          first_line=first_line, first_offset=first_offset)
    raise InputError(f"unknown record format {format!r} (expected 'csv' or 'jsonl')")


def read_jsonl(
    stream: SupportsReadBytes,
    schema: Schema,
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    first_line: int = 1,
    first_offset: int = 0,
) -> Iterator[SourceRow]:
    """JSON Lines records as SourceRows; see the module docstring for the rules."""
    lines = LineReader(stream, max_record_bytes, first_line=first_line,
                       first_offset=first_offset)
    loads = orjson.loads
    for text in lines:
        if lines.skipped:
            yield from flush_skipped(lines)
        lines.parts.clear()
        number = lines.number
        body = text.strip()
        if not body:
            continue
        raw = text.rstrip("\r\n")
        try:
            record = loads(body)
        except orjson.JSONDecodeError as exc:
            yield SourceRow(number, None, raw, _json_error(body, exc))
            continue
        if record.__class__ is not dict:
            reason = f"expected a JSON object, got {json_type_name(record)}"
            yield SourceRow(number, None, raw, reason)
            continue
        problem = _json_problem(body, record)
        if problem:
            yield SourceRow(number, None, raw, problem)
        else:
            yield SourceRow(number, record, raw)
    yield from flush_skipped(lines)


def _json_error(body: str, exc: orjson.JSONDecodeError) -> str:
    where = f"column {exc.colno}"
    at = exc.pos
    if body.startswith(("NaN", "Infinity"), at) or body.startswith("-Infinity", max(at - 1, 0)):
        return f"invalid JSON: NaN and Infinity are not JSON numbers ({where})"
    if "depth" in exc.msg:  # orjson's wording differs between releases (>= 3.9.15)
        return f"invalid JSON: depth limit exceeded ({where})"
    return f"invalid JSON: {exc.msg} ({where})"


def _json_problem(body: str, record: dict[str, Any]) -> str | None:
    """Why a parsed object is refused anyway: too deep, or a key given twice."""
    if "[" in body or body.count("{") > 1:
        depth = _depth(record)
        if depth > MAX_JSON_DEPTH:
            return f"values nested deeper than {MAX_JSON_DEPTH} levels"
    if body.count(":") > len(record):  # more key-value pairs in the text than in the object?
        duplicate = duplicate_json_key(body)
        if duplicate is not None:
            return f"duplicate key {duplicate!r} (ambiguous)"
    return None


def _depth(value: Any) -> int:
    """How deeply containers nest in ``value`` (iterative: no RecursionError)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > MAX_JSON_DEPTH:
                break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def duplicate_json_key(body: str | bytes) -> str | None:
    """A key that some object of the JSON ``body`` names twice, or None. (orjson keeps the
    last value silently; a record with two ages is ambiguous, so it is refused.)"""
    found: list[str] = []

    def check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out and not found:
                found.append(key)
            out[key] = value
        return out

    try:
        json.loads(body, object_pairs_hook=check)
    except (ValueError, RecursionError):
        return None  # orjson accepted it; only the duplicate check failed to run
    return found[0] if found else None
