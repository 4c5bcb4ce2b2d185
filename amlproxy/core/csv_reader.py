"""CSV records from a binary stream: whole blocks of lines through csv.reader when they
allow it, line by line when they do not. The rules are in :mod:`amlproxy.core.readers`.

Blocks without a quote character (most files) hold one record per line: csv.reader parses
the block's list of lines, and each record's raw text is its line, with no Python call
per line. Quoted records that may span lines, bad UTF-8 and over-long lines go through
:class:`~amlproxy.core.line_reader.LineReader` one line at a time, which keeps the record in
progress and its size, until the next block boundary between records.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import repeat

from amlproxy.core.line_reader import (
    DEFAULT_MAX_RECORD_BYTES,
    RAW_PREFIX_CHARS,
    BadRecord,
    LineReader,
    SupportsReadBytes,
    flush_skipped,
)
from amlproxy.core.outcome import SourceRow
from amlproxy.core.schema import Schema
from amlproxy.errors import InputError


def read_csv(
    stream: SupportsReadBytes,
    schema: Schema,
    *,
    header: bool | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    first_line: int = 1,
    header_line: str | None = None,
    first_offset: int = 0,
) -> Iterator[SourceRow]:
    """CSV records as SourceRows; see the module docstring for the rules (and
    :func:`amlproxy.core.readers.read_records` for ``first_line``, ``header_line`` and
    ``first_offset``)."""
    if csv.field_size_limit() < max_record_bytes:
        csv.field_size_limit(max_record_bytes)
    lines = LineReader(stream, max_record_bytes, pause=True, first_line=first_line,
                       first_offset=first_offset)
    shape = _CsvShape(schema, header)
    if header_line is not None:
        shape.take_header(header_line)
    while True:
        block = lines.clean_lines(quotes=False)
        if block is not None:
            yield from _read_block(block, lines.number - len(block), lines.crlf, shape)
        elif lines.exhausted:
            break
        else:
            yield from _read_lines(lines, shape)
    yield from flush_skipped(lines)


class _CsvShape:
    """The columns a CSV row maps to (from the schema, or the header once read)."""

    def __init__(self, schema: Schema, header: bool | None) -> None:
        self.target = schema.target
        self.from_header = schema.has_header if header is None else header
        self.columns: tuple[str, ...] | None = None if self.from_header else schema.column_names
        self.count = len(self.columns) if self.columns else 0
        self.short: tuple[str, ...] | None = None
        if self.columns and schema.target:
            self.short = tuple(c for c in self.columns if c != schema.target)

    def take_header(self, text: str) -> None:
        """Names the columns by ``text``, the header line of the object this stream is a
        part of (so that no line of the stream is taken as the header)."""
        try:
            values = next(csv.reader([text.rstrip("\r\n")], skipinitialspace=True,
                                     strict=True), [])
        except csv.Error as exc:
            raise InputError(f"the CSV header is malformed: {exc}") from exc
        self.columns = _header_names(values, 1)
        self.count = len(self.columns)
        self.from_header = True
        self.short = None

    def row(self, line: int, values: list[str], raw: str) -> SourceRow | None:
        """The SourceRow of a parsed record; None for a blank line or the header."""
        if not values or (len(values) == 1 and not values[0].strip()):
            return None
        if self.columns is None:
            self.columns = _header_names(values, line)
            self.count = len(self.columns)
            return None
        if len(values) == self.count:  # zip() needs no strict=True: the counts are checked
            return SourceRow(line, dict(zip(self.columns, values)), raw)  # noqa: B905
        if self.short is not None and len(values) == self.count - 1:
            return SourceRow(line, dict(zip(self.short, values)), raw)  # noqa: B905
        reason = _count_error(self.count, len(values), self.target, self.from_header)
        return SourceRow(line, None, raw, reason)


def _read_block(block: list[str], before: int, crlf: bool, shape: _CsvShape
                ) -> Iterator[SourceRow]:
    """The records of whole lines without quotes (one record per line, the first at line
    ``before + 1``): csv.reader over the list, with no Python call per line; ``crlf``
    says whether any line ends with a carriage return."""
    rows = _whole_block(block, before, crlf, shape)
    if rows is not None:
        yield from rows
        return
    done = 0
    while done < len(block):
        reader = csv.reader(block[done:] if done else block, skipinitialspace=True, strict=True)
        columns, count = shape.columns or (), shape.count if shape.count > 1 else -1
        try:
            for values in reader:
                raw = block[done]
                done += 1
                if crlf:
                    raw = raw.rstrip("\r")
                if len(values) == count:  # zip() needs no strict=True: the counts are checked
                    yield SourceRow(before + done, dict(zip(columns, values)), raw)  # noqa: B905
                    continue
                row = shape.row(before + done, values, raw)  # blank, header, other counts
                columns, count = shape.columns or (), shape.count if shape.count > 1 else -1
                if row is not None:
                    yield row
        except csv.Error as exc:  # a bare CR inside a line
            done += 1
            raw = block[done - 1].rstrip("\r")[:RAW_PREFIX_CHARS]
            yield SourceRow(before + done, None, raw, f"malformed CSV: {exc}")


def _whole_block(block: list[str], before: int, crlf: bool, shape: _CsvShape
                 ) -> list[SourceRow] | None:
    """The usual block, in C loops: every line a record with the expected count of fields
    (no blank line, no header to read, no other count, no bare CR). None otherwise: the
    block is then read record by record."""
    columns, count = shape.columns, shape.count
    if not columns or count < 2:
        return None
    try:
        parsed = list(csv.reader(block, skipinitialspace=True, strict=True))
    except csv.Error:
        return None
    names = {count: columns}
    if shape.short is not None:
        names[count - 1] = shape.short  # a row without the target
    if len(parsed) != len(block) or not set(map(len, parsed)).issubset(names):
        return None
    raws = [line.rstrip("\r") for line in block] if crlf else block
    if len(names) == 1 or count - 1 not in set(map(len, parsed)):
        fields = map(dict, map(zip, repeat(columns), parsed))
    else:
        fields = map(dict, map(zip, map(names.__getitem__, map(len, parsed)), parsed))
    return list(map(SourceRow, range(before + 1, before + 1 + len(block)), fields, raws))


def _read_lines(lines: LineReader, shape: _CsvShape) -> Iterator[SourceRow]:
    """The records of the lines iterated one by one, up to the next pause (quoted records
    across lines, bad bytes, over-long lines)."""
    reader = csv.reader(lines, skipinitialspace=True, strict=True)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            yield from flush_skipped(lines)  # bad lines after the last record of the region
            return
        except (csv.Error, BadRecord) as exc:
            reason = str(exc) if isinstance(exc, BadRecord) else f"malformed CSV: {exc}"
            yield from flush_skipped(lines)
            yield lines.rejected(reason)
            reader = csv.reader(lines, skipinitialspace=True, strict=True)
            continue
        if lines.skipped:
            yield from flush_skipped(lines)
        raw = lines.raw()
        lines.parts.clear()
        row = shape.row(lines.start, values, raw)
        if row is not None:
            yield row


def _header_names(values: list[str], line: int) -> tuple[str, ...]:
    names = tuple(v.strip() for v in values)
    seen: set[str] = set()
    for name in names:
        if not name or name in seen:
            what = "an empty column name" if not name else f"column {name!r} twice"
            raise InputError(f"the CSV header (line {line}) has {what}")
        seen.add(name)
    return names


def _count_error(expected: int, got: int, target: str | None, from_header: bool) -> str:
    if from_header:
        return f"expected {expected} fields (as in the header), got {got}"
    if target is not None:
        without = f"{expected - 1} without the target {target!r}"
        return f"expected {expected} fields ({without}), got {got}"
    return f"expected {expected} fields, got {got}"
