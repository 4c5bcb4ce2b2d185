"""What the workers log: their stdout/stderr lines and their telemetry-fd frames, decoded.

Lambda reads a function's logs from two outputs: stdout/stderr (one record per line), or,
when the runtime is given ``_LAMBDA_TELEMETRY_LOG_FD``, that file descriptor, where
awslambdaric writes one frame per record::

    +--------------------+------------------+----------------------+-----------------+
    | frame type, 4 bytes| length, 4 bytes  | timestamp, 8 bytes   | message         |
    | 0xa55a00XX         | (big-endian)     | (microseconds, BE)   | (length bytes)  |
    +--------------------+------------------+----------------------+-----------------+

The low byte of the type carries the format (odd: text, even: JSON) and the level: text
``0x03`` / JSON ``0x02`` without a level, DEBUG ``0x0b``/``0x0a``, INFO ``0x0f``/``0x0e``,
WARN ``0x13``/``0x12``, ERROR ``0x17``/``0x16``, FATAL ``0x1b``/``0x1a``.
:class:`WorkerLogs` keeps the last records of every function for tests and
``amlproxy local status``, and can echo them (``amlproxy local up`` prints them on stderr).
"""

from __future__ import annotations

import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Literal

FRAME_MAGIC = 0xA55A0000
_HEADER = struct.Struct(">IIQ")
_LEVELS = {0x02: None, 0x0A: "DEBUG", 0x0E: "INFO", 0x12: "WARN", 0x16: "ERROR", 0x1A: "FATAL"}
Output = Literal["stdout", "telemetry"]


@dataclass(frozen=True)
class LogRecord:
    """One record a worker wrote: where, when (µs, telemetry only) and what."""

    function: str
    worker: int
    output: Output
    text: str
    frame_type: int | None = None
    timestamp_us: int | None = None
    received: float = field(default_factory=time.monotonic)

    @property
    def frame_format(self) -> str | None:
        """``text`` or ``json`` for a telemetry frame, from its type."""
        if self.frame_type is None:
            return None
        return "json" if (self.frame_type & 0xFF) % 2 == 0 else "text"

    @property
    def frame_level(self) -> str | None:
        if self.frame_type is None:
            return None
        return _LEVELS.get(self.frame_type & 0xFE)


def decode_frames(data: bytes) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """The whole frames at the start of ``data`` ((type, timestamp, message) each) and
    what is left over (a partial frame). Raises ValueError on a frame without the magic."""
    frames = []
    offset = 0
    while len(data) - offset >= _HEADER.size:
        frame_type, length, timestamp = _HEADER.unpack_from(data, offset)
        if frame_type & 0xFFFF0000 != FRAME_MAGIC:
            raise ValueError(f"not a telemetry log frame: type {frame_type:#010x}")
        end = offset + _HEADER.size + length
        if end > len(data):
            break
        frames.append((frame_type, timestamp, data[offset + _HEADER.size:end]))
        offset = end
    return frames, data[offset:]


class WorkerLogs:
    """The log records of every worker of a service (the last ``keep`` per function)."""

    def __init__(self, keep: int = 20000,
                 echo: Callable[[LogRecord], None] | None = None) -> None:
        self.keep = keep
        self.echo = echo
        self._records: dict[str, deque[LogRecord]] = {}
        self._lock = threading.Lock()

    def add(self, record: LogRecord) -> None:
        with self._lock:
            found = self._records.get(record.function)
            if found is None:
                found = self._records[record.function] = deque(maxlen=self.keep)
            found.append(record)
        if self.echo is not None:
            self.echo(record)

    def records(self, function: str | None = None) -> list[LogRecord]:
        """The kept records of ``function`` (every function's when None), oldest first."""
        with self._lock:
            if function is not None:
                return list(self._records.get(function, ()))
            return [r for found in self._records.values() for r in found]

    def of_worker(self, function: str, worker: int, since: float) -> list[LogRecord]:
        """What ``worker`` of ``function`` wrote from ``since`` (monotonic) on."""
        return [r for r in self.records(function) if r.worker == worker and r.received >= since]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def read_lines(self, stream: IO[bytes], function: str, worker: int) -> None:
        """Read a worker's stdout (and stderr) until EOF: one record per line."""
        for line in stream:
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text:
                self.add(LogRecord(function, worker, "stdout", text))
        stream.close()

    def read_frames(self, stream: IO[bytes], function: str, worker: int) -> None:
        """Read a worker's telemetry fd until EOF: one record per frame."""
        buffered = b""
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            try:
                frames, buffered = decode_frames(buffered + chunk)
            except ValueError as exc:
                self.add(LogRecord(function, worker, "telemetry", f"<undecodable: {exc}>"))
                break
            for frame_type, timestamp, message in frames:
                self.add(LogRecord(function, worker, "telemetry",
                                   message.decode("utf-8", "replace"), frame_type, timestamp))
        stream.close()


def echo_to_stderr(record: LogRecord) -> None:
    """``[Function#worker] text``, on this process's stderr."""
    sys.stderr.write(f"[{record.function}#{record.worker}] {record.text.rstrip()}\n")
