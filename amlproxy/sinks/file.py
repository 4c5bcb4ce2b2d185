"""Local file sinks: results, rejects or shadow pairs as CSV or JSON Lines.

A regular file is written under a temporary name beside it and renamed into place when the
run ends, so that it is whole or absent. Anything else is written in place and never
renamed over: standard output (``-``), a FIFO, a character device (``/dev/null``), a
symlink to one of them, and whatever resolves through ``/dev`` or ``/proc`` (such as
``/dev/stdout`` redirected to a file): renaming over those would replace the device node or
symlink itself for every program on the machine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from amlproxy.core.outcome import Outcome
from amlproxy.core.writers import RejectWriter, ResultWriter
from amlproxy.errors import ConfigurationError, SinkError

FileFormat = Literal["csv", "jsonl"]
SinkKind = Literal["results", "rejects", "shadow"]
STDOUT = "-"
_SPECIAL_ROOTS = ("/dev/", "/proc/")


class OutcomeWriter(Protocol):
    """What a file sink needs from a writer (see :mod:`amlproxy.core.writers`)."""

    def write(self, outcomes: Sequence[Outcome]) -> int: ...

    def close(self) -> None: ...


def format_of(path: str | os.PathLike[str]) -> FileFormat:
    """The output format a file name asks for: .csv -> csv, .jsonl/.ndjson/.json -> jsonl."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise ConfigurationError(
        f"cannot tell the output format of {os.fspath(path)!r}: use .csv or .jsonl"
    )


def writes_in_place(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` must be written in place rather than replaced: standard output,
    an existing non-regular file (FIFO, device, socket; symlinks followed), or a path that
    resolves under /dev or /proc."""
    text = os.fspath(path)
    if text == STDOUT:
        return True
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        return False
    except OSError:
        return True  # a dangling /proc link or the like: never rename over it
    if not stat.S_ISREG(mode):
        return True
    real = os.path.realpath(text)
    return text.startswith(_SPECIAL_ROOTS) or real.startswith(_SPECIAL_ROOTS)


def _format_for(path: str | os.PathLike[str]) -> FileFormat:
    """The format of an output given without one: from its suffix; JSON Lines for
    standard output and devices without a suffix (``/dev/stdout``, a FIFO)."""
    try:
        return format_of(path)
    except ConfigurationError:
        if writes_in_place(path):
            return "jsonl"
        raise


class FileSink:
    """Writes results (``ok`` outcomes), rejects (``rejected`` and ``failed``) or shadow
    pairs (:mod:`amlproxy.sinks.shadow_pairs`) to a file.

    A regular file is written as ``.<name>.<pid>.partial`` beside its target (a symlink's
    target) and renamed into place by :meth:`close`: a run that dies leaves the previous
    file (or none), never half of one, and the next run to the same path removes the
    temporary files of dead runs. :meth:`abort` deletes this run's. Re-running on the same
    input rewrites the same file: no duplicates. Non-regular outputs are written in
    place, as they come (see :func:`writes_in_place`); standard output is never closed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: SinkKind = "results",
        format: FileFormat | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.kind: SinkKind = kind
        self.to_stdout = os.fspath(path) == STDOUT
        self.format: FileFormat = format or _format_for(path)
        self.name = f"{kind}:{path}"
        self.count = 0
        self._labels = labels
        self._stream: BinaryIO | None = None
        self._writer: OutcomeWriter | None = None
        self._tmp: Path | None = None

    @property
    def in_place(self) -> bool:
        """Whether this output is written in place (not whole-or-absent)."""
        return writes_in_place(self.path if not self.to_stdout else STDOUT)

    def _open(self) -> OutcomeWriter:
        try:
            self._stream = self._open_stream()
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._writer = self._make_writer(self._stream)
        return self._writer

    def _open_stream(self) -> BinaryIO:
        if self.to_stdout:
            return sys.stdout.buffer
        if self.path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        if writes_in_place(self.path):
            self._tmp = None
            return open(self.path, "ab")  # closed in close()/abort()
        target = Path(os.path.realpath(self.path))  # a symlink keeps pointing at the output
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target)
        self._tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        return open(self._tmp, "wb")  # closed in close()/abort()

    def _make_writer(self, stream: BinaryIO) -> OutcomeWriter:
        if self.kind == "results":
            return ResultWriter(stream, format=self.format, labels=self._labels)
        if self.kind == "rejects":
            return RejectWriter(stream, format=self.format)
        from amlproxy.sinks.shadow_pairs import ShadowPairWriter

        return ShadowPairWriter(stream, format=self.format)

    def write(self, outcomes: Sequence[Outcome]) -> None:
        writer = self._writer or self._open()
        try:
            self.count += writer.write(outcomes)
            if self._tmp is None:
                assert self._stream is not None
                self._stream.flush()  # a pipe's reader sees each chunk as it is written
        except BrokenPipeError:
            if self.to_stdout:
                raise  # `| head`: the reader has what it wanted (the CLI exits quietly)
            raise SinkError(f"cannot write {self.path}: its reader went away") from None
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._writer is None:
            self._open()  # an empty run still produces its (empty) output
        assert self._stream is not None and self._writer is not None
        try:
            self._writer.close()
            if self.to_stdout:
                self._stream.flush()
            else:
                self._stream.close()
            if self._tmp is not None:
                os.replace(self._tmp, os.path.realpath(self.path))
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        finally:
            self._stream = None
            self._writer = None
            self._tmp = None

    def abort(self) -> None:
        """Drops this run's temporary file; the previous output (if any) stays as it was.
        (What was written in place stays written.)"""
        if self._stream is not None and not self.to_stdout:
            with contextlib.suppress(OSError):
                self._stream.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._stream = None
        self._writer = None
        self._tmp = None


def remove_stale_partials(target: Path) -> list[Path]:
    """Deletes the temporary files that runs which are no longer alive left beside
    ``target`` (a ``kill -9`` leaves one); returns them."""
    removed = []
    for partial in target.parent.glob(f".{glob.escape(target.name)}.*partial"):
        pid_text = partial.name[len(target.name) + 2 :].removesuffix("partial").strip(".")
        if pid_text.isdigit() and int(pid_text) != os.getpid() and process_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            partial.unlink()
            removed.append(partial)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
