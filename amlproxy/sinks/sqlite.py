"""SQLite, the embedded default database: one row per record, upserted by key, and one row
per run in ``runs`` saying whether it completed."""

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
from amlproxy.sinks.file import process_alive

_COLUMNS = (
    "source", "line", "status", "row_id", "label", "scores", "value", "backend",
    "model_id", "latency_ms", "attempts", "reasons", "record", "updated_at", "run_id",
)  # fmt: skip
RUNNING, COMPLETED, ABORTED, KILLED = "running", "completed", "aborted", "killed"
_RUNS = (
    "CREATE TABLE IF NOT EXISTS runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "source TEXT, pid INTEGER, started_at REAL NOT NULL, finished_at REAL, "
    "status TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0)"
)


class SqliteSink:
    """Upserts every outcome into a SQLite table keyed by ``(source, line)``.

    A re-run of the same input overwrites the rows it wrote before and adds none: the key
    is the record's source and position, not a counter. All statuses are kept, so the
    table holds the latest fate of each record; query ``WHERE status = 'ok'`` for results.

    Each run (first write to :meth:`close` or :meth:`abort`) is a row of the ``runs``
    table, and each record row names the ``run_id`` that last wrote it. A run's ``status``
    is ``running`` while it runs, then ``completed`` (closed) or ``aborted`` (an error,
    Ctrl-C, a deadline cut: the whole chunks written so far stay); a run found ``running``
    whose process is gone (``kill -9``) is marked ``killed`` by the next run. So
    ``SELECT * FROM runs`` tells which rows come from a run that did not complete.
    """

    def __init__(self, path: str | os.PathLike[str], *, table: str = "predictions") -> None:
        if not table.isidentifier():
            raise SinkError(f"invalid SQLite table name {table!r}")
        self.path = Path(path)
        self.table = table
        self.name = f"sqlite:{self.path}"
        self._db: sqlite3.Connection | None = None
        self.run_id: int | None = None
        self._records = 0
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
                "record TEXT, updated_at REAL NOT NULL, run_id INTEGER, "
                "PRIMARY KEY (source, line))"
            )
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({self.table})")}
            if "run_id" not in columns:  # a database from before runs were recorded
                db.execute(f"ALTER TABLE {self.table} ADD COLUMN run_id INTEGER")
            db.execute(_RUNS)
            with db:
                _mark_killed_runs(db)
        except (sqlite3.Error, OSError) as exc:
            raise SinkError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._db = db
        return db

    def _begin(self, source: str | None) -> tuple[sqlite3.Connection, int]:
        db = self._db or self._connect()
        if self.run_id is None:
            with db:
                cursor = db.execute(
                    "INSERT INTO runs (source, pid, started_at, status) VALUES (?, ?, ?, ?)",
                    (source, os.getpid(), time.time(), RUNNING),
                )
            assert cursor.lastrowid is not None
            self.run_id, self._records = cursor.lastrowid, 0
        return db, self.run_id

    def write(self, outcomes: Sequence[Outcome]) -> None:
        try:
            db, run_id = self._begin(outcomes[0].source if outcomes else None)
            now = time.time()
            rows = [_row(o, now, run_id) for o in outcomes]
            with db:  # one transaction per chunk, the run's count with it
                db.executemany(self._upsert, rows)
                db.execute("UPDATE runs SET records = records + ? WHERE run_id = ?",
                           (len(rows), run_id))
        except sqlite3.Error as exc:
            raise SinkError(f"cannot write to {self.path}: {exc}") from exc
        self._records += len(rows)

    def close(self) -> None:
        """Ends the run as ``completed`` (every chunk is already committed); the sink can
        be written again (a new run)."""
        self._end(COMPLETED)

    def abort(self) -> None:
        """Ends the run as ``aborted``. Chunks already written stay: they are keyed, so a
        re-run overwrites them."""
        self._end(ABORTED)

    def _end(self, status: str) -> None:
        try:
            db, run_id = self._begin(None)
            with db:
                db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                           (status, time.time(), run_id))
        except sqlite3.Error as exc:
            raise SinkError(f"cannot write to {self.path}: {exc}") from exc
        finally:
            if self._db is not None:
                self._db.close()
            self._db, self.run_id = None, None


def _mark_killed_runs(db: sqlite3.Connection) -> None:
    """Runs still ``running`` whose process is gone were killed: say so."""
    for run_id, pid in db.execute("SELECT run_id, pid FROM runs WHERE status = ?", (RUNNING,)):
        if pid is None or not process_alive(pid):
            db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                       (KILLED, time.time(), run_id))


def _row(o: Outcome, now: float, run_id: int) -> tuple[Any, ...]:
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
        run_id,
    )
