"""SQLite, the embedded default database: one row per record, upserted by key."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from amlproxy.core.outcome import Outcome
from amlproxy.errors import SinkError

_COLUMNS = (
    "source", "line", "status", "row_id", "label", "scores", "value", "backend",
    "model_id", "latency_ms", "attempts", "reasons", "record", "updated_at",
)  # fmt: skip


class SqliteSink:
    """Upserts every outcome into a SQLite table keyed by ``(source, line)``.

    A re-run of the same input overwrites the rows it wrote before and adds none: the key
    is the record's source and position, not a counter. All statuses are kept, so the
    table holds the latest fate of each record; query ``WHERE status = 'ok'`` for results.
    """

    def __init__(self, path: str | os.PathLike[str], *, table: str = "predictions") -> None:
        if not table.isidentifier():
            raise SinkError(f"invalid SQLite table name {table!r}")
        self.path = Path(path)
        self.table = table
        self.name = f"sqlite:{self.path}"
        self._db: sqlite3.Connection | None = None
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
        self._upsert = (
            f"INSERT INTO {table} ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)}) "
            f"ON CONFLICT (source, line) DO UPDATE SET {updates}"
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "source TEXT NOT NULL, line INTEGER NOT NULL, status TEXT NOT NULL, "
                "row_id TEXT, label TEXT, scores TEXT, value REAL, backend TEXT, "
                "model_id TEXT, latency_ms REAL, attempts INTEGER, reasons TEXT, "
                "record TEXT, updated_at REAL NOT NULL, PRIMARY KEY (source, line))"
            )
        except (sqlite3.Error, OSError) as exc:
            raise SinkError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._db = db
        return db

    def write(self, outcomes: Sequence[Outcome]) -> None:
        db = self._db or self._connect()
        now = time.time()
        rows = [_row(o, now) for o in outcomes]
        try:
            with db:  # one transaction per chunk
                db.executemany(self._upsert, rows)
        except sqlite3.Error as exc:
            raise SinkError(f"cannot write to {self.path}: {exc}") from exc

    def close(self) -> None:
        """Ends the run (every chunk is already committed); the sink can be written again."""
        if self._db is not None:
            self._db.close()
            self._db = None


    def abort(self) -> None:
        """Chunks already written stay: they are keyed, so a re-run overwrites them."""
        self.close()


def _row(o: Outcome, now: float) -> tuple[Any, ...]:
    p = o.prediction
    return (
        o.source,
        o.line,
        o.status.value,
        o.row_id,
        p.label if p else None,
        orjson.dumps(dict(p.scores)).decode() if p else None,
        p.value if p else None,
        p.backend if p else None,
        p.model_id if p else None,
        p.latency_ms if p else None,
        p.attempts if p else None,
        orjson.dumps(o.reasons).decode() if o.errors else None,
        orjson.dumps(dict(o.record), default=str).decode() if o.record is not None else o.raw,
        now,
    )
