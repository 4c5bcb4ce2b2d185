"""A one-line progress display on stderr, for long files (only on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import BinaryIO, TextIO

from amlproxy.core.report import Report


class TrackedReader:
    """Wraps a binary stream and counts the bytes read, for a percentage."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.bytes_read += len(data)
        return data


class Progress:
    """Redraws ``  42% 13,680 records  9,120/s`` at most a few times per second."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._reader: TrackedReader | None = None
        self._size: int | None = None
        self._last = 0.0
        self._drawn = False

    @classmethod
    def for_stderr(cls, *, enabled: bool = True) -> Progress | None:
        return cls(sys.stderr) if enabled and sys.stderr.isatty() else None

    def attach(self, reader: TrackedReader, size: int | None) -> None:
        self._reader, self._size = reader, size

    def update(self, report: Report) -> None:
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        pct = ""
        if self._reader is not None and self._size:
            pct = f"{min(100.0, 100.0 * self._reader.bytes_read / self._size):5.1f}% "
        rate = report.records_per_s
        self._out.write(f"\r  {pct}{report.total:,} records  {rate:,.0f}/s ")
        self._out.flush()
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self._out.write("\r\033[K")
            self._out.flush()
