"""Local file sinks: results or rejects as CSV or JSON Lines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal

from amlproxy.core.outcome import Outcome
from amlproxy.core.writers import RejectWriter, ResultWriter
from amlproxy.errors import ConfigurationError, SinkError

FileFormat = Literal["csv", "jsonl"]
SinkKind = Literal["results", "rejects"]


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


class FileSink:
    """Writes results (``ok`` outcomes) or rejects (``rejected`` and ``failed``) to a file.

    The file is written under a temporary name and renamed into place by :meth:`close`, so
    it is always whole: a run that dies leaves the previous file (or none), never half of
    one. Re-running on the same input rewrites the same file: no duplicates.
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
        self.format: FileFormat = format or format_of(self.path)
        self.name = f"{kind}:{self.path}"
        self.count = 0
        self._labels = labels
        self._stream: BinaryIO | None = None
        self._writer: ResultWriter | RejectWriter | None = None
        self._tmp = self.path.with_name(f".{self.path.name}.partial")

    def _open(self) -> ResultWriter | RejectWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        if self.kind == "results":
            self._writer = ResultWriter(self._stream, format=self.format, labels=self._labels)
        else:
            self._writer = RejectWriter(self._stream, format=self.format)
        return self._writer

    def write(self, outcomes: Sequence[Outcome]) -> None:
        writer = self._writer or self._open()
        try:
            self.count += writer.write(outcomes)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._writer is None:
            self._open()  # an empty run still produces its (empty) output
        assert self._stream is not None and self._writer is not None
        try:
            close = getattr(self._writer, "close", None)
            if callable(close):
                close()
            self._stream.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        finally:
            self._stream = None
            self._writer = None

    def abort(self) -> None:
        """Drops this run's temporary file; the previous output (if any) stays as it was."""
        if self._stream is not None:
            self._stream.close()
        self._tmp.unlink(missing_ok=True)
        self._stream = None
        self._writer = None
