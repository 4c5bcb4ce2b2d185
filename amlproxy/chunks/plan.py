"""Plan: an object's byte ranges ("chunks"), cut at record boundaries, in one pass.

:func:`plan_stream` reads the object once, 64 KiB at a time (never the whole object), and
cuts it at the first record boundary at or after every ``chunk_bytes``. A record boundary
is the offset just after a line break where the reader of the whole object
(:mod:`amlproxy.core.csv_reader` over :class:`~amlproxy.core.line_reader.LineReader`)
starts a new record, so that reading the chunks one by one gives exactly its rows:

- JSON Lines: every ``\\n``;
- CSV: a ``\\n`` outside a quoted field, quoting as :mod:`csv` reads it (strict; a ``"``
  opens a quoted field only at the start of a field, blanks after the separator skipped;
  ``""`` inside one is an escaped quote). A newline inside quotes is not a boundary. CRLF
  ends on its ``\\n``; a UTF-8 BOM belongs to the first chunk.
- CSV, broken input, as the reader resynchronises: after a bare CR outside quotes, or
  after a closing quote, anything but a separator or a line break is an error that ends
  the record at the end of its line (the rest of the line, quotes included, is not
  parsed); a line that is not UTF-8 or is longer than ``max_record_bytes`` is dropped
  whole; a quoted record longer than ``max_record_bytes`` is dropped at the end of the
  line that makes it so. In every case the next line starts a record.

Each :class:`Span` records ``[start, end)`` and the physical line number of its first
byte, so that a worker reading the range numbers its records as a read of the whole object
would. With a CSV header (``header=True``) the first chunk holds it, and
:attr:`Plan.header` carries its text to the others. Planning is deterministic: the same
bytes and ``chunk_bytes`` give the same spans.

A quote never closed has no boundary after it until the record grows past
``max_record_bytes`` (where the reader drops it). Every physical line lies in exactly one
chunk whatever the input, so every line gets exactly one outcome.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Literal

from amlproxy.chunks.scan import CsvScan, LineScan
from amlproxy.core.line_reader import DEFAULT_MAX_RECORD_BYTES, SupportsReadBytes

BLOCK_SIZE = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_HEADER_LIMIT = 1_048_576  # a header longer than this is not looked for further

PlanFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True, slots=True)
class Span:
    """One chunk: bytes ``[start, end)`` of the object; its first line's number."""

    index: int
    start: int
    end: int
    first_line: int


@dataclass(slots=True)
class Plan:
    """The chunks of one object (``size`` bytes) and its CSV header line, if any."""

    size: int = 0
    spans: list[Span] = field(default_factory=list)
    header: str | None = None


class _Cutter:
    """The state of one pass (a :class:`~amlproxy.chunks.scan.Cutter`): where the next cut
    may go, the header, the lines counted."""

    def __init__(self, chunk_bytes: int, *, want_header: bool) -> None:
        self.chunk_bytes = chunk_bytes
        self.plan = Plan()
        self.last_cut = 0
        self.first_line = 1
        self.target = chunk_bytes
        self.want_header = want_header
        self.head = bytearray()  # while the header is looked for: the bytes from head_base
        self.head_base = 0  # where the record in ``head`` starts

    def boundary(self, at: int, lines_before: int, header_ok: bool = True) -> None:
        """A record ends at ``at`` (``lines_before`` line breaks before it); ``header_ok``:
        the reader may take it as the header (it is not a dropped line or record)."""
        if self.want_header:
            taken = at - self.head_base
            text = bytes(self.head[:taken])
            del self.head[:taken]
            if self.head_base == 0:  # (the object's BOM; one further on is text)
                text = text.removeprefix(_BOM)
            self.head_base = at
            header = _header_text(text) if header_ok else None
            if header is not None:
                self.plan.header = header
                self.want_header = False
                self.head = bytearray()
                self.target = max(self.target, at + 1)
            return
        if at < self.target:
            return
        self.cut(at, lines_before)

    def cut(self, at: int, lines_before: int) -> None:
        spans = self.plan.spans
        spans.append(Span(len(spans), self.last_cut, at, self.first_line))
        self.last_cut, self.first_line = at, lines_before + 1
        self.target = at + self.chunk_bytes

    def next_wanted(self) -> int:
        """The least offset of a boundary worth reporting."""
        return 0 if self.want_header else self.target

    def wants(self, at: int) -> bool:
        return self.want_header or at >= self.target


def _header_text(record: bytes) -> str | None:
    """The record's text if the CSV reader takes it as the header: it decodes, parses and
    is not blank (else the reader rejects or skips it and the header comes later)."""
    try:
        text = record.decode().rstrip("\r\n")
        values = next(csv.reader([text], skipinitialspace=True, strict=True), [])
    except (UnicodeDecodeError, csv.Error):
        return None
    if not values or (len(values) == 1 and not values[0].strip()):
        return None
    return text


def plan_stream(stream: SupportsReadBytes, *, format: PlanFormat, chunk_bytes: int,
                header: bool = False, block_size: int = BLOCK_SIZE,
                max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Plan:
    """The chunks of ``stream`` (see the module docstring); ``header``: the CSV has one;
    ``max_record_bytes``: the workers' reader's limit."""
    if chunk_bytes < 1 or max_record_bytes < 1:
        raise ValueError("chunk_bytes and max_record_bytes must be positive")
    cutter = _Cutter(chunk_bytes, want_header=header and format == "csv")
    scan: CsvScan | LineScan = (CsvScan(cutter, max_record_bytes) if format == "csv"
                                  else LineScan(cutter))
    base = 0  # offset of data[0] in the object
    lines_before = 0  # line breaks before data[0]
    carry = b""  # the line in progress (the pieces scanned are whole lines)
    while True:
        block = stream.read(block_size)
        while base == 0 and not carry and block and len(block) < len(_BOM):
            more = stream.read(block_size)  # the BOM may come piecemeal
            if not more:
                break
            block += more
        data = carry + block if carry else block
        if not data:
            break
        carry = b""
        skip = len(_BOM) if base == 0 and data.startswith(_BOM) else 0
        if block:
            whole = data.rfind(b"\n") + 1
            data, carry = data[:whole], data[whole:]
            if len(carry) - (skip if not whole else 0) > max_record_bytes:
                # an over-long line (the reader drops it): never held whole
                base, lines_before, carry = _drop_long_line(
                    stream, scan, cutter, data, carry, base, lines_before, skip, block_size)
                continue
            if not data:
                continue  # no line break yet: the line goes on in the next read
        base, lines_before = _feed(scan, cutter, data, base, lines_before, skip)
    size = base
    if cutter.want_header and cutter.head:
        cutter.boundary(size, lines_before)  # a header without a line break
    if size > cutter.last_cut or not cutter.plan.spans:
        cutter.cut(size, lines_before)
    cutter.plan.size = size
    return cutter.plan


def _feed(scan: CsvScan | LineScan, cutter: _Cutter, data: bytes, base: int,
          lines_before: int, skip: int) -> tuple[int, int]:
    """Scans ``data`` (whole lines at offset ``base``); the offset and line count after it."""
    if cutter.want_header:
        cutter.head += data
        if cutter.head_base + len(cutter.head) > _HEADER_LIMIT:
            cutter.want_header = False  # no header in sight: no cut before it either
    scan.feed(data, base, lines_before, skip)
    return base + len(data), lines_before + data.count(b"\n")


def _drop_long_line(stream: SupportsReadBytes, scan: CsvScan | LineScan, cutter: _Cutter,
                    data: bytes, line: bytes, base: int, lines_before: int, skip: int,
                    block_size: int) -> tuple[int, int, bytes]:
    """Scans ``data`` (whole lines), then reads past the over-long ``line`` that follows it
    to its line break and drops it; the new (base, lines_before, carry)."""
    if data:
        base, lines_before = _feed(scan, cutter, data, base, lines_before, skip)
    size, rest, ended = len(line), b"", False
    while True:
        block = stream.read(block_size)
        if not block:
            break
        found = block.find(b"\n")
        if found >= 0:
            size, rest, ended = size + found + 1, block[found + 1:], True
            break
        size += len(block)
    scan.drop(base + size, lines_before + ended)
    return base + size, lines_before + ended, rest
