"""The record boundaries of a byte stream, as the readers find them: the scans of
:func:`amlproxy.chunks.plan.plan_stream` (its module docstring gives the rules).

A scan is fed whole lines and reports each boundary its :class:`Cutter` wants (the first at
or after the next cut's target; every one while the CSV header is looked for), so that a
block of plain lines costs a few C-level searches and no Python call per line.
"""

from __future__ import annotations

from typing import Protocol

_QUOTE, _SPACE, _COMMA, _CR, _LF = 0x22, 0x20, 0x2C, 0x0D, 0x0A
_FIELD_ENDS = (_COMMA, _LF)  # the next byte starts a field


class Cutter(Protocol):
    """Where a scan reports boundaries (the planner's cutter)."""

    want_header: bool  # every boundary is wanted while the header is looked for
    target: int  # else the least boundary wanted

    def boundary(self, at: int, lines_before: int, header_ok: bool = True) -> None:
        """A record ends at ``at``, after ``lines_before`` line breaks; ``header_ok``: it
        may be read as the header (it is not a line or record the reader drops)."""

    def wants(self, at: int) -> bool:
        """Whether a boundary at ``at`` is wanted."""

    def next_wanted(self) -> int:
        """The least offset of a boundary worth reporting."""


class LineScan:
    """JSON Lines: every line break is a record boundary."""

    def __init__(self, cutter: Cutter) -> None:
        self.cutter = cutter

    def feed(self, data: bytes, base: int, lines_before: int, skip: int = 0) -> None:
        newlines(self.cutter, data, skip, len(data), base, lines_before)

    def drop(self, end: int, lines_before: int) -> None:
        """An over-long line ends at ``end``."""
        if self.cutter.wants(end):
            self.cutter.boundary(end, lines_before, header_ok=False)


class CsvScan:
    """CSV: the record boundaries of the reader (the module docstring's rules), found one
    quote or bare CR at a time: a block of plain lines takes a few C scans."""

    def __init__(self, cutter: Cutter, max_record_bytes: int) -> None:
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


def newlines(cutter: Cutter, data: bytes, i: int, end: int, base: int,
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
