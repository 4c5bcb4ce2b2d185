"""The CLI's exit codes, outputs and one-line error messages (run as a real subprocess)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "census-income-sample.csv"
ROW = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
       "White, Male, 2174, 0, 40, United-States")


def amlproxy(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "amlproxy", *args], cwd=cwd, env=env, input=stdin,
        capture_output=True, text=True, timeout=120,
    )


def test_score_the_sample_writes_results_rejects_and_sqlite(tmp_path):
    r = amlproxy("score", str(SAMPLE), "--out", "out/p.csv", "--rejects", "out/r.jsonl",
                 "--sink", "sqlite:out/p.db", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["reconciles"] and report["failed"] == 0
    assert report["rejected"] > 0 and report["ok"] > 100
    results = (tmp_path / "out/p.csv").read_text().splitlines()
    assert len(results) == report["ok"] + 1  # header
    rejects = [json.loads(line) for line in (tmp_path / "out/r.jsonl").read_text().splitlines()]
    assert len(rejects) == report["rejected"]
    assert all(r["line"] and r["reasons"] for r in rejects)
    with sqlite3.connect(tmp_path / "out/p.db") as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == report["total"]
    # Again: the same outputs, no duplicate rows in the database.
    r2 = amlproxy("score", str(SAMPLE), "--out", "out/p.csv", "--rejects", "out/r.jsonl",
                  "--sink", "sqlite:out/p.db", "-q", cwd=tmp_path)
    assert r2.returncode == 0 and r2.stdout == ""
    with sqlite3.connect(tmp_path / "out/p.db") as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == report["total"]
    assert _without_latency((tmp_path / "out/p.csv").read_text()) == _without_latency(
        "\n".join(results))


def _without_latency(csv_text: str) -> list[dict]:
    """Rows of a results CSV minus the measured latency, which differs run to run."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    for row in rows:
        row.pop("latency_ms")
    return rows


def test_summary_names_the_outputs(tmp_path):
    r = amlproxy("score", str(SAMPLE), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "rejected" in r.stdout
    assert (tmp_path / "census-income-sample.predictions.jsonl").exists()
    assert "census-income-sample.rejects.jsonl" in r.stdout


def test_strict_exits_1_on_rejects(tmp_path):
    r = amlproxy("score", str(SAMPLE), "--strict", "-q", cwd=tmp_path)
    assert r.returncode == 1


def test_stdin_needs_a_format_and_then_works(tmp_path):
    r = amlproxy("score", "-", cwd=tmp_path, stdin=ROW + "\n")
    assert r.returncode == 2 and "--format" in r.stderr
    r = amlproxy("score", "-", "--format", "csv", "--out", "p.jsonl", "-q", cwd=tmp_path,
                 stdin=ROW + "\n")
    assert r.returncode == 0, r.stderr
    (line,) = (tmp_path / "p.jsonl").read_text().splitlines()
    assert json.loads(line)["label"] in {">50K", "<=50K"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["score", "nope.csv"], "no such file: nope.csv"),
        (["validate", "nope.csv"], "no such file: nope.csv"),
        (["score", "SAMPLE", "--schema", "no-such-schema"], "no-such-schema"),
        (["schema", "export", "no-such-schema"], "no-such-schema"),
        (["score", "SAMPLE", "--sink", "mongo:x"], "unknown kind 'mongo'"),
        (["score", "SAMPLE", "--backend", "sagemaker"], "AMLPROXY_SAGEMAKER_ENDPOINT"),
        (["score", "data.parquet"], "parquet"),
    ],
)
def test_errors_are_one_line_with_exit_2(tmp_path, args, message):
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    args = [str(SAMPLE) if a == "SAMPLE" else a for a in args]
    r = amlproxy(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("amlproxy: error:"), r.stderr
    assert message in lines[0]


def test_usage_error_exit_2(tmp_path):
    r = amlproxy("score", cwd=tmp_path)
    assert r.returncode == 2 and "amlproxy: error:" in r.stderr


def test_validate_reports_rejects_with_line_and_field(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(ROW + "\n" + ROW.replace("39,", "abc,", 1) + "\n"
                   + ROW.replace("State-gov", "Mars", 1) + "\n")
    r = amlproxy("validate", str(bad), "--rejects", "rej.csv", cwd=tmp_path)
    assert r.returncode == 1
    assert "line 2: age:" in r.stderr
    assert "line 3: workclass:" in r.stderr and "Mars" in r.stderr
    assert "3 records: 1 valid, 2 rejected" in r.stdout
    assert len((tmp_path / "rej.csv").read_text().splitlines()) == 3  # header + 2
    good = tmp_path / "good.csv"
    good.write_text(ROW + "\n")
    assert amlproxy("validate", str(good), cwd=tmp_path).returncode == 0


def test_schema_export_jsonschema(tmp_path):
    r = amlproxy("schema", "export", "census-income", "--format", "jsonschema", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "age" in doc["properties"]
    r = amlproxy("schema", "list", cwd=tmp_path)
    assert "census-income" in r.stdout.split()
