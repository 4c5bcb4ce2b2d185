"""SQLite's idempotent upsert: a re-run adds no duplicate."""

from __future__ import annotations

import sqlite3

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.prediction import Prediction
from amlproxy.errors import FieldError
from amlproxy.sinks.sqlite import SqliteSink


def outcome(line: int, label: str = ">50K", status: Status = Status.OK) -> Outcome:
    p = Prediction(label, {">50K": 0.8, "<=50K": 0.2}, None, "local", "m", 1.5)
    if status is Status.OK:
        return Outcome("s3://b/k.csv", line, status, {"age": 39.0}, None, p)
    return Outcome("s3://b/k.csv", line, status, None, "raw", None, (FieldError("age", "bad"),))


def count(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT line, status, label FROM predictions ORDER BY line").fetchall()


def test_rerun_overwrites_and_never_duplicates(tmp_path):
    db = tmp_path / "out.db"
    sink = SqliteSink(db)
    sink.write([outcome(1), outcome(2), outcome(3, status=Status.REJECTED)])
    sink.close()
    first = count(db)
    assert first == [(1, "ok", ">50K"), (2, "ok", ">50K"), (3, "rejected", None)]

    sink = SqliteSink(db)
    sink.write([outcome(1), outcome(2, label="<=50K"), outcome(3, status=Status.REJECTED)])
    sink.write([outcome(1)])
    sink.close()
    assert count(db) == [(1, "ok", ">50K"), (2, "ok", "<=50K"), (3, "rejected", None)]


def test_the_same_line_of_another_source_is_another_row(tmp_path):
    db = tmp_path / "out.db"
    sink = SqliteSink(db)
    sink.write([outcome(1)])
    sink.write([Outcome("s3://b/other.csv", 1, Status.OK, {}, None, outcome(1).prediction)])
    sink.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone() == (2,)


def test_reasons_and_scores_are_stored_as_json(tmp_path):
    db = tmp_path / "out.db"
    sink = SqliteSink(db)
    sink.write([outcome(1), outcome(2, status=Status.REJECTED)])
    sink.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT scores, reasons FROM predictions ORDER BY line").fetchall()
    assert rows == [('{">50K":0.8,"<=50K":0.2}', None), (None, '["age: bad"]')]


def test_each_run_is_recorded_with_whether_it_completed(tmp_path):
    db = tmp_path / "out.db"
    sink = SqliteSink(db)
    sink.write([outcome(1), outcome(2)])
    sink.close()
    sink.write([outcome(1)])
    sink.abort()
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT run_id, source, status, records FROM runs").fetchall()
        assert runs == [(1, "s3://b/k.csv", "completed", 2), (2, "s3://b/k.csv", "aborted", 1)]
        assert conn.execute("SELECT line, run_id FROM predictions ORDER BY line").fetchall() \
            == [(1, 2), (2, 1)]


def test_a_database_from_before_runs_were_recorded_is_upgraded(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE predictions (source TEXT NOT NULL, line INTEGER NOT NULL, "
            "status TEXT NOT NULL, row_id TEXT, label TEXT, scores TEXT, value REAL, "
            "backend TEXT, model_id TEXT, latency_ms REAL, attempts INTEGER, reasons TEXT, "
            "record TEXT, updated_at REAL NOT NULL, PRIMARY KEY (source, line))")
    sink = SqliteSink(db)
    sink.write([outcome(1)])
    sink.close()
    assert count(db) == [(1, "ok", ">50K")]
