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

from amlproxy.core.line_reader import DEFAULT_MAX_RECORD_BYTES, SupportsReadBytes

BLOCK_SIZE = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_QUOTE = 0x22
_SPACE = 0x20
_COMMA, _CR, _LF = 0x2C, 0x0D, 0x0A
_FIELD_ENDS = (_COMMA, _LF)  # the next byte starts a field
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
    scan: _CsvScan | _LineScan = (_CsvScan(cutter, max_record_bytes) if format == "csv"
                                  else _LineScan(cutter))
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
                carry = data + carry
                continue
        if cutter.want_header:
            cutter.head += data
            if cutter.head_base + len(cutter.head) > _HEADER_LIMIT:
                cutter.want_header = False  # no header in sight: no cut before it either
        scan.feed(data, base, lines_before, skip)
        base += len(data)
        lines_before += data.count(b"\n")
    size = base
    if cutter.want_header and cutter.head:
        cutter.boundary(size, lines_before)  # a header without a line break
    if size > cutter.last_cut or not cutter.plan.spans:
        cutter.cut(size, lines_before)
    cutter.plan.size = size
    return cutter.plan


def _drop_long_line(stream: SupportsReadBytes, scan: _CsvScan | _LineScan, cutter: _Cutter,
                    data: bytes, line: bytes, base: int, lines_before: int, skip: int,
                    block_size: int) -> tuple[int, int, bytes]:
    """Scans ``data`` (whole lines), then reads past the over-long ``line`` that follows it
    to its line break and drops it; the new (base, lines_before, carry)."""
    if data:
        if cutter.want_header:
            cutter.head += data
        scan.feed(data, base, lines_before, skip)
        base += len(data)
        lines_before += data.count(b"\n")
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


class _LineScan:
    """JSON Lines: every line break is a record boundary."""

    def __init__(self, cutter: _Cutter) -> None:
        self.cutter = cutter

    def feed(self, data: bytes, base: int, lines_before: int, skip: int = 0) -> None:
        newlines(self.cutter, data, skip, len(data), base, lines_before)

    def drop(self, end: int, lines_before: int) -> None:
        """An over-long line ends at ``end``."""
        if self.cutter.wants(end):
            self.cutter.boundary(end, lines_before, header_ok=False)


class _CsvScan:
    """CSV: the record boundaries of the reader (the module docstring's rules), found one
    quote or bare CR at a time: a block of plain lines takes a few C scans."""

    def __init__(self, cutter: _Cutter, max_record_bytes: int) -> None:
        self.cutter = cutter
        self.limit = max_record_bytes
        self.quoted = False
        self.field_start = True  # whether the next byte that is not a blank starts a field
        self.record_start = 0  # where the record in progress starts (its size is limited)

    def feed(self, data: bytes, base: int, lines_before: int, skip: int = 0) -> None:
        """Scans ``data``, whole lines (the last one may end the object without a break)
        at offset ``base``; ``skip``: the BOM's length at the start of the object."""
        if skip:
            self.record_start = skip
        i = skip
        for start, end in _bad_lines(data, skip, self.limit):
            if start > i:
                self._scan(data, i, start, base, lines_before)
            self.drop(base + end, lines_before + data.count(b"\n", 0, end))
            i = end
        if i < len(data):
            self._scan(data, i, len(data), base, lines_before)

    def drop(self, end: int, lines_before: int) -> None:
        """A line that the reader drops whole ends at ``end``: the record ends with it."""
        self.quoted, self.field_start, self.record_start = False, True, end
        if self.cutter.wants(end):
            self.cutter.boundary(end, lines_before, header_ok=False)

    def _scan(self, data: bytes, i: int, stop: int, base: int, lines_before: int) -> None:
        find, cutter = data.find, self.cutter
        crs = find(b"\r", i, stop) >= 0  # (most blocks have none: no search for one)
        while i < stop:
            if self.quoted:
                i = self._quoted(data, i, stop, base, lines_before)
                continue
            q = find(b'"', i, stop)
            end = stop if q < 0 else q
            if base + end - self.record_start > self.limit:  # (else no record is too long)
                first = find(b"\n", i, end)
                if first >= 0 and base + first + 1 - self.record_start > self.limit:
                    # a record over lines (quoted newlines) ends here too long: dropped
                    self.drop(base + first + 1, lines_before + data.count(b"\n", 0, first + 1))
                    i = first + 1
                    continue
            if crs and find(b"\r", i, end) >= 0:
                bad = _bare_cr(data, i, end)
                if bad >= 0:  # an error: the record ends with the CR's line
                    newlines(cutter, data, i, bad, base, lines_before)
                    i = self._line_end(data, bad, stop, base, lines_before)
                    continue
            if end > i:
                if cutter.want_header or base + end >= cutter.target:
                    newlines(cutter, data, i, end, base, lines_before)
                j = end - 1
                while j >= i and data[j] == _SPACE:
                    j -= 1
                if j >= i:
                    self.field_start = data[j] in _FIELD_ENDS
                last = data.rfind(b"\n", i, end)
                if last >= 0:
                    self.record_start = base + last + 1
            if q < 0:
                return
            self.quoted = self.field_start  # a quote opens a field only at its start
            self.field_start, i = False, q + 1

    def _quoted(self, data: bytes, i: int, stop: int, base: int, lines_before: int) -> int:
        """Scans from ``i`` inside a quoted field; where to go on."""
        q = data.find(b'"', i, stop)
        upto = stop if q < 0 else q
        over = self.record_start + self.limit - base  # a line break there: too long
        if over < upto:
            found = data.find(b"\n", max(i, over), upto)
            if found >= 0:  # the reader drops the record at the end of this line
                self.drop(base + found + 1, lines_before + data.count(b"\n", 0, found + 1))
                return found + 1
        if q < 0:
            return stop
        after = q + 1
        if after < stop and data[after] == _QUOTE:
            return q + 2  # an escaped quote
        self.quoted = False
        if after < stop and data[after] == _COMMA:
            self.field_start = True
            return after + 1
        # a line break ends the record; anything else is an error that ends it too
        return self._line_end(data, after, stop, base, lines_before)

    def _line_end(self, data: bytes, i: int, stop: int, base: int, lines_before: int) -> int:
        """The record ends with the line that ``i`` is on: where the next one starts."""
        found = data.find(b"\n", i, stop)
        if found < 0:
            return stop  # (the end of the object)
        at = found + 1
        whole = base + at - self.record_start <= self.limit  # (else the reader drops it)
        self.quoted, self.field_start, self.record_start = False, True, base + at
        if self.cutter.wants(base + at):
            self.cutter.boundary(base + at, lines_before + data.count(b"\n", 0, at), whole)
        return at


def _bare_cr(data: bytes, i: int, end: int) -> int:
    """The offset in ``data[i:end]`` of a CR outside quotes that the csv module refuses
    (one followed by anything but more CRs and a line break); -1 when there is none."""
    if data.count(b"\r", i, end) == data.count(b"\r\n", i, end):
        return -1
    n = len(data)
    cr = data.find(b"\r", i, end)
    while cr >= 0:
        k = cr + 1
        while k < n and data[k] == _CR:
            k += 1
        if k < n and data[k] != _LF:
            return cr
        cr = data.find(b"\r", k, end)
    return -1


def _bad_lines(data: bytes, skip: int, limit: int) -> list[tuple[int, int]]:
    """The lines of ``data`` (whole lines) that the reader drops whole: not UTF-8, or longer
    than ``limit`` (their size counts the line break, not the BOM); usually none, found
    with one decode."""
    if len(data) - skip <= limit:
        try:
            data.decode()
        except UnicodeDecodeError:
            pass
        else:
            return []
    bad, start, n = [], 0, len(data)
    while start < n:
        found = data.find(b"\n", start)
        end = n if found < 0 else found + 1
        if end - max(start, skip) > limit or not _utf8(data[start:end]):
            bad.append((start, end))
        start = end
    return bad


def _utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


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
