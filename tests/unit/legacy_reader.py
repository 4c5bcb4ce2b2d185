"""The reference for the reader property tests: the CSV reader as it was before issue 16
(csv.reader pulling every line through a Python LineReader), kept verbatim: the old
amlproxy/core/line_reader.py, then the old read_csv. tests/unit/test_reader_properties.py
checks that the new reader (whole blocks through csv.reader) gives the same rows.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Protocol

from amlproxy.core.csv_reader import _count_error, _header_names  # unchanged helpers
from amlproxy.core.line_reader import flush_skipped as _flush
from amlproxy.core.outcome import SourceRow
from amlproxy.core.schema import Schema

CHUNK_SIZE = 64 * 1024
RAW_PREFIX_CHARS = 200  # how much of an over-long record a reject keeps
_PREFIX_BYTES = RAW_PREFIX_CHARS * 4  # enough UTF-8 for that many characters
_BOM = b"\xef\xbb\xbf"


class SupportsReadBytes(Protocol):
    """Anything with ``read(n) -> bytes``: a binary file, an S3 StreamingBody."""

    def read(self, size: int = ..., /) -> bytes: ...


class BadRecord(Exception):
    """Raised through csv.reader when a record in progress turns out unreadable."""


class LineReader:
    """The decoded physical lines of a binary stream, for csv.reader or a JSONL loop.

    Keeps the lines of the record in progress (``parts``), where it started (``start``)
    and its size; lines that cannot be decoded or are too long become rejects in
    ``skipped`` (between records) or abort the record in progress (:class:`BadRecord`).
    """

    def __init__(self, stream: SupportsReadBytes, max_record_bytes: int) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        self.max_bytes = max_record_bytes
        self.number = 0  # physical number of the last line handed out
        self.offset = 0  # byte offset of the next line in the stream
        self.start = 0  # where the record in progress starts
        self.size = 0  # bytes of the record in progress
        self.parts: list[str] = []
        self.skipped: list[SourceRow] = []
        self._physical = self._read_physical(stream)

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> str:
        while True:
            line, size = next(self._physical)
            self.number += 1
            if line.__class__ is bytes:
                try:
                    text = line.decode()
                except UnicodeDecodeError as exc:
                    at = self.offset + exc.start
                    reason = f"invalid UTF-8 at byte offset {at} (line {self.number})"
                    raw = line.decode(errors="replace").rstrip("\r\n")
                else:
                    self.offset += size
                    if self.parts:
                        self.size += size
                        if self.size > self.max_bytes:
                            raise BadRecord(self._too_long())
                    else:
                        self.start = self.number
                        self.size = size
                    self.parts.append(text)
                    return text
            else:  # an over-long line: only its beginning was kept, as text
                reason = self._too_long()
                raw = str(line)
            self.offset += size
            if self.parts:
                raise BadRecord(reason)
            self.skipped.append(SourceRow(self.number, None, raw, reason))

    def _too_long(self) -> str:
        return f"record longer than {self.max_bytes} bytes"

    def raw(self) -> str:
        """The text of the record in progress, without its final line break."""
        parts = self.parts
        text = parts[0] if len(parts) == 1 else "".join(parts)
        return text.rstrip("\r\n")

    def rejected(self, reason: str) -> SourceRow:
        """A reject for the record in progress (which is then dropped)."""
        raw = self.raw()[:RAW_PREFIX_CHARS]
        self.parts.clear()
        return SourceRow(self.start, None, raw, reason)

    def _read_physical(self, stream: SupportsReadBytes) -> Iterator[tuple[bytes | str, int]]:
        """(line with its break, size); an over-long line as (str prefix, size)."""
        limit = self.max_bytes
        rest = b""
        first = True
        while True:
            chunk = stream.read(CHUNK_SIZE)
            if not chunk:
                break
            if first:
                first = False
                while len(chunk) < len(_BOM):  # a stream may hand out the BOM piecemeal
                    more = stream.read(CHUNK_SIZE)
                    if not more:
                        break
                    chunk += more
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
                    self.offset = len(_BOM)
            lines = chunk.split(b"\n")
            if rest:
                lines[0] = rest + lines[0]
            rest = lines.pop()
            for line in lines:
                size = len(line) + 1
                if size > limit:
                    yield _prefix(line), size
                else:
                    yield line + b"\n", size
            if len(rest) > max(limit, _PREFIX_BYTES):  # no line break in sight: drop it
                prefix, size, rest = _prefix(rest), len(rest), b""
                while True:
                    chunk = stream.read(CHUNK_SIZE)
                    cut = chunk.find(b"\n")
                    if cut >= 0 or not chunk:
                        size += cut + 1 if cut >= 0 else 0
                        break
                    size += len(chunk)
                yield prefix, size
                if chunk:
                    lines = chunk[cut + 1 :].split(b"\n")
                    rest = lines.pop()
                    for line in lines:  # rare path: lines after an over-long one
                        size = len(line) + 1
                        yield (_prefix(line) if size > limit else line + b"\n"), size
        if rest:
            yield (_prefix(rest) if len(rest) > limit else rest), len(rest)


def _prefix(line: bytes) -> str:
    return line[:_PREFIX_BYTES].decode(errors="replace")[:RAW_PREFIX_CHARS] + "..."
def legacy_read_csv(
    stream: SupportsReadBytes,
    schema: Schema,
    *,
    header: bool | None = None,
    max_record_bytes: int = 1_048_576,
) -> Iterator[SourceRow]:
    """CSV records as SourceRows; see the module docstring for the rules."""
    if csv.field_size_limit() < max_record_bytes:
        csv.field_size_limit(max_record_bytes)
    lines = LineReader(stream, max_record_bytes)
    from_header = schema.has_header if header is None else header
    columns = None if from_header else schema.column_names
    count = len(columns) if columns else 0
    short: tuple[str, ...] | None = None
    if columns and schema.target:
        short = tuple(c for c in columns if c != schema.target)
    reader = csv.reader(lines, skipinitialspace=True, strict=True)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except (csv.Error, BadRecord) as exc:
            reason = str(exc) if isinstance(exc, BadRecord) else f"malformed CSV: {exc}"
            yield from _flush(lines)
            yield lines.rejected(reason)
            reader = csv.reader(lines, skipinitialspace=True, strict=True)
            continue
        if lines.skipped:
            yield from _flush(lines)
        if not values or (len(values) == 1 and not values[0].strip()):
            lines.parts.clear()  # a blank line
            continue
        if columns is None:
            columns = _header_names(values, lines.start)
            count = len(columns)
            lines.parts.clear()
            continue
        raw = lines.raw()
        lines.parts.clear()
        if len(values) == count:  # zip() needs no strict=True: the counts are checked
            yield SourceRow(lines.start, dict(zip(columns, values)), raw)  # noqa: B905
        elif short is not None and len(values) == count - 1:
            yield SourceRow(lines.start, dict(zip(short, values)), raw)  # noqa: B905
        else:
            reason = _count_error(count, len(values), schema.target, from_header)
            yield SourceRow(lines.start, None, raw, reason)
    yield from _flush(lines)
