"""Physical lines of a binary stream, decoded and bounded in size, for the record readers.

:class:`LineReader` reads 64 KiB at a time and never holds more than one record (at most
``max_record_bytes``) plus one chunk: a longer line is dropped as it streams past, keeping
only a short prefix for the reject. See :mod:`amlproxy.core.readers`.

Two ways through it. :meth:`LineReader.clean_lines` hands out a whole block of lines at
once (one ``decode`` and one ``split`` per 64 KiB), when no record is in progress and the
block's lines are all whole, valid UTF-8 and short enough (for CSV, also without a quote
character, so that every record is one line): the readers then parse them with no Python
call per line. Anything else goes line by line through the iterator, which keeps the
record in progress, its start and size, and turns bad lines into rejects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from amlproxy.core.outcome import SourceRow

CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_RECORD_BYTES = 1_048_576
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

    Iterating gives one line at a time and keeps the lines of the record in progress
    (``parts``), where it started (``start``) and its size; lines that cannot be decoded or
    are too long become rejects in ``skipped`` (between records) or abort the record in
    progress (:class:`BadRecord`). With ``pause=True`` the iteration stops at the end of a
    block when no record is in progress, so that the caller may take the next block whole
    with :meth:`clean_lines`; ``exhausted`` then tells the end of the stream from a pause.
    ``first_line`` numbers the stream's first line and ``first_offset`` is its byte offset
    (a byte range of a larger object); a BOM is skipped only at offset 0.
    """

    def __init__(self, stream: SupportsReadBytes, max_record_bytes: int, *,
                 pause: bool = False, first_line: int = 1, first_offset: int = 0) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        if first_line < 1:
            raise ValueError("first_line must be positive")
        self.max_bytes = max_record_bytes
        self.number = first_line - 1  # physical number of the last line handed out
        self.offset = first_offset  # byte offset of the next line in the object
        self.start = 0  # where the record in progress starts
        self.size = 0  # bytes of the record in progress
        self.parts: list[str] = []
        self.skipped: list[SourceRow] = []
        self.exhausted = False
        self.crlf = False  # whether the last block from clean_lines has a carriage return
        self._pause = pause
        self._blocks = self._read_blocks(stream)
        self._peeked: bytes | tuple[str, int] | None = None
        self._lines: Iterator[tuple[bytes | str, int]] = iter(())

    def __iter__(self) -> LineReader:
        return self

    def clean_lines(self, *, quotes: bool = True) -> list[str] | None:
        """The lines of the next block, without their line breaks, when it can be read
        whole (see the module docstring; ``quotes=False`` refuses a block with a ``"``).
        Otherwise None, and the block is left to iteration (or the stream is exhausted).
        Call it between records only: after a pause, or before iterating at all."""
        item = self._peek()
        if item is None:
            return None
        self._peeked = None
        lines = self._whole_lines(item, quotes) if not self.parts else None
        if lines is None:
            self._lines = self._split(item)
            return None
        assert isinstance(item, bytes)
        self.crlf = b"\r" in item
        self.number += len(lines)
        self.offset += len(item)
        return lines

    def _whole_lines(self, item: bytes | tuple[str, int], quotes: bool) -> list[str] | None:
        if item.__class__ is not bytes:
            return None
        assert isinstance(item, bytes)
        if not item.endswith(b"\n") or (not quotes and b'"' in item):
            return None
        limit = self.max_bytes
        if len(item) > limit and max(map(len, item.split(b"\n"))) >= limit:
            return None  # a line (with its break) longer than the limit
        try:
            text = item.decode()
        except UnicodeDecodeError:
            return None
        lines = text.split("\n")
        lines.pop()  # what follows the last line break: nothing
        return lines

    def _peek(self) -> bytes | tuple[str, int] | None:
        if self._peeked is None:
            self._peeked = next(self._blocks, None)
            if self._peeked is None:
                self.exhausted = True
        return self._peeked

    def __next__(self) -> str:
        while True:
            try:
                line, size = next(self._lines)
            except StopIteration:
                if self._pause and not self.parts:
                    raise  # between records at the end of a block: the caller goes on
                item = self._peek()
                if item is None:
                    raise
                self._peeked = None
                self._lines = self._split(item)
                continue
            self.number += 1
            if line.__class__ is bytes:
                assert isinstance(line, bytes)
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

    def _split(self, item: bytes | tuple[str, int]) -> Iterator[tuple[bytes | str, int]]:
        """The lines of a block one by one: (line with its break, size); an over-long one
        as (str prefix, size)."""
        if item.__class__ is not bytes:
            assert isinstance(item, tuple)
            yield item
            return
        assert isinstance(item, bytes)
        limit = self.max_bytes
        lines = item.split(b"\n")
        last = lines.pop()  # b"" unless the stream ended without a line break
        for line in lines:
            size = len(line) + 1
            yield (_prefix(line) if size > limit else line + b"\n"), size
        if last:
            yield (_prefix(last) if len(last) > limit else last), len(last)

    def _read_blocks(self, stream: SupportsReadBytes) -> Iterator[bytes | tuple[str, int]]:
        """Blocks of whole lines (bytes ending with a line break); an over-long line without
        a break in sight as (str prefix, size); last, the final line if it has no break."""
        limit = self.max_bytes
        rest = b""
        first = True
        while True:
            chunk = stream.read(CHUNK_SIZE)
            if not chunk:
                break
            if first and not self.offset:  # (a range after the object's start has no BOM)
                while len(chunk) < len(_BOM):  # a stream may hand out the BOM piecemeal
                    more = stream.read(CHUNK_SIZE)
                    if not more:
                        break
                    chunk += more
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
                    self.offset = len(_BOM)
            first = False
            cut = chunk.rfind(b"\n") + 1
            if cut:
                yield rest + chunk[:cut] if rest else chunk[:cut]
                rest = chunk[cut:]
            else:
                rest += chunk
            while len(rest) > max(limit, _PREFIX_BYTES):  # no line break in sight: drop it
                prefix, size, rest = _prefix(rest), len(rest), b""
                while True:
                    chunk = stream.read(CHUNK_SIZE)
                    found = chunk.find(b"\n")
                    if found >= 0 or not chunk:
                        size += found + 1 if found >= 0 else 0
                        break
                    size += len(chunk)
                yield prefix, size
                if chunk:  # what follows the over-long line in its last chunk
                    tail = chunk[found + 1 :]
                    cut = tail.rfind(b"\n") + 1
                    if cut:
                        yield tail[:cut]
                    rest = tail[cut:]
        if rest:
            yield rest


def _prefix(line: bytes) -> str:
    return line[:_PREFIX_BYTES].decode(errors="replace")[:RAW_PREFIX_CHARS] + "..."


def flush_skipped(lines: LineReader) -> Iterator[SourceRow]:
    """The rejects of bad lines between records, once (then forgotten)."""
    skipped = lines.skipped
    if skipped:
        yield from skipped
        skipped.clear()
