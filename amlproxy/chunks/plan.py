"""Plan: an object's byte ranges ("chunks"), cut at record boundaries, in one pass.

:func:`plan_stream` reads the object once, 64 KiB at a time (never the whole object), and
cuts it at the first record boundary at or after every ``chunk_bytes``. A record boundary
is the offset just after a line break that ends a record:

- JSON Lines: every ``\\n``;
- CSV: a ``\\n`` outside a quoted field, quoting as :mod:`csv` reads it (a ``"`` opens a
  quoted field only at the start of a field, blanks after the separator skipped; ``""``
  inside one is an escaped quote). A newline inside quotes is not a boundary. CRLF ends
  on its ``\\n``; a UTF-8 BOM belongs to the first chunk.

Each :class:`Span` records ``[start, end)`` and the physical line number of its first
byte, so that a worker reading the range numbers its records as a read of the whole object
would. With a CSV header (``header=True``) the first chunk holds it, and
:attr:`Plan.header` carries its text to the others. Planning is deterministic: the same
bytes and ``chunk_bytes`` give the same spans.

Input whose quoting is broken (a quote never closed) has no boundary after the break: the
rest is one chunk, whose reader rejects what it cannot read. Every physical line lies in
exactly one chunk whatever the input, so every line gets exactly one outcome.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Literal

from amlproxy.core.line_reader import SupportsReadBytes

BLOCK_SIZE = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_QUOTE = 0x22
_SPACE = 0x20
_FIELD_ENDS = (0x2C, 0x0A)  # "," and "\n": the next byte starts a field
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
    """The state of one pass: where the next cut may go, the header, the lines counted."""

    def __init__(self, chunk_bytes: int, *, want_header: bool) -> None:
        self.chunk_bytes = chunk_bytes
        self.plan = Plan()
        self.last_cut = 0
        self.first_line = 1
        self.target = chunk_bytes
        self.want_header = want_header
        self.head = bytearray()  # the bytes before the header is found
        self.head_start = 0  # where the record in ``head`` starts

    def boundary(self, at: int, lines_before: int) -> None:
        """A record ends at ``at`` (``lines_before`` line breaks before it)."""
        if self.want_header:
            text = bytes(self.head[self.head_start:at])
            self.head_start = at
            if text.startswith(_BOM):
                text = text[len(_BOM):]
            header = _header_text(text)
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
                header: bool = False, block_size: int = BLOCK_SIZE) -> Plan:
    """The chunks of ``stream`` (see the module docstring); ``header``: the CSV has one."""
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    cutter = _Cutter(chunk_bytes, want_header=header and format == "csv")
    scan = _CsvScan(cutter) if format == "csv" else _LineScan(cutter)
    base = 0  # offset of data[0] in the object
    lines_before = 0  # line breaks before data[0]
    carry = b""
    first = True
    while True:
        block = stream.read(block_size)
        while first and block and len(block) < len(_BOM):  # the BOM may come piecemeal
            more = stream.read(block_size)
            if not more:
                break
            block += more
        data = carry + block if carry else block
        if not data:
            break
        carry = b""
        if block and data.endswith(b'"'):  # a run of quotes ("") may go on in the next read
            kept = len(data.rstrip(b'"'))
            data, carry = data[:kept], data[kept:]
        if cutter.want_header:
            cutter.head += data
            if len(cutter.head) > _HEADER_LIMIT:
                cutter.want_header = False  # no header in sight: no cut before it either
        skip = len(_BOM) if first and data.startswith(_BOM) else 0
        first = False
        scan.feed(data, base, lines_before, skip)
        base += len(data)
        lines_before += data.count(b"\n")
    size = base
    if cutter.want_header and len(cutter.head) > cutter.head_start:
        cutter.boundary(size, lines_before)  # a header without a line break
    if size > cutter.last_cut or not cutter.plan.spans:
        cutter.cut(size, lines_before)
    cutter.plan.size = size
    return cutter.plan


class _LineScan:
    """JSON Lines: every line break is a record boundary."""

    def __init__(self, cutter: _Cutter) -> None:
        self.cutter = cutter

    def feed(self, data: bytes, base: int, lines_before: int, skip: int = 0) -> None:
        newlines(self.cutter, data, skip, len(data), base, lines_before)


class _CsvScan:
    """CSV: line breaks outside quoted fields are record boundaries."""

    def __init__(self, cutter: _Cutter) -> None:
        self.cutter = cutter
        self.quoted = False
        self.field_start = True  # whether the next byte that is not a blank starts a field

    def feed(self, data: bytes, base: int, lines_before: int, skip: int = 0) -> None:
        cutter, find = self.cutter, data.find
        quoted, field_start = self.quoted, self.field_start
        i, n = skip, len(data)
        while i < n:  # one turn per quote character: blocks without one take a single turn
            q = find(b'"', i)
            if quoted:
                if q < 0:
                    break
                if q + 1 < n and data[q + 1] == _QUOTE:
                    i = q + 2  # an escaped quote
                    continue
                quoted, field_start, i = False, False, q + 1
                continue
            end = n if q < 0 else q
            if end > i:
                if cutter.want_header or base + end >= cutter.target:
                    newlines(cutter, data, i, end, base, lines_before)
                j = end - 1
                while j >= i and data[j] == _SPACE:
                    j -= 1
                if j >= i:
                    field_start = data[j] in _FIELD_ENDS
            if q < 0:
                break
            quoted = field_start  # a quote opens a field only at its start
            field_start, i = False, q + 1
        self.quoted, self.field_start = quoted, field_start


def newlines(cutter: _Cutter, data: bytes, i: int, end: int, base: int,
             lines_before: int) -> None:
    """Reports the boundaries after the line breaks of ``data[i:end]`` that the cutter
    wants (the first at or after its target; every one while it looks for the header)."""
    while True:
        start = max(i, cutter.next_wanted() - base - 1)
        if start >= end:
            return
        found = data.find(b"\n", start, end)
        if found < 0:
            return
        cutter.boundary(base + found + 1, lines_before + data.count(b"\n", 0, found + 1))
        i = found + 1
