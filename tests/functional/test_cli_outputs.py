"""Outputs never harm what they replace (run as real subprocesses): FIFOs and devices are
written in place, ``--out -`` streams, default outputs are not overwritten, a cut run
leaves no partial file behind, SQLite records each run, Ctrl-C says what was done."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "census-income-sample.csv"
ROW = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
       "White, Male, 2174, 0, 40, United-States\n")
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amlproxy", *args], cwd=cwd, env=ENV,
                          input=stdin, capture_output=True, text=True, timeout=120)


def start(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """A score run reading stdin, which the test feeds (and may leave open). Its SIGINT is
    the default, as a terminal gives it: a suite started in the background of a script
    (``make test &``) inherits SIGINT ignored, and so would the run."""
    return subprocess.Popen([sys.executable, "-m", "amlproxy", *args], cwd=cwd, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_a_fifo_is_written_in_place_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "rejects-link"
    rejects_fifo = tmp_path / "rejects.fifo"
    os.mkfifo(rejects_fifo)
    link.symlink_to(rejects_fifo)
    got: dict[str, bytes] = {}

    def reader(path: Path) -> None:
        with open(path, "rb") as f:
            got[path.name] = f.read()

    threads = [threading.Thread(target=reader, args=(p,), daemon=True)
               for p in (fifo, rejects_fifo)]
    for t in threads:
        t.start()
    r = run("score", str(SAMPLE), "--out", str(fifo), "--rejects", str(link), "-q",
            cwd=tmp_path)
    for t in threads:
        t.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISFIFO(os.stat(rejects_fifo).st_mode)
    assert link.is_symlink() and os.readlink(link) == str(rejects_fifo)
    assert len(got["results.fifo"].splitlines()) == 327  # JSON Lines: no suffix, a FIFO
    assert len(got["rejects.fifo"].splitlines()) == 8
    assert not list(tmp_path.glob(".*partial"))


def test_a_device_and_a_symlink_to_it_are_written_not_replaced(tmp_path):
    link = tmp_path / "null-link.jsonl"
    link.symlink_to(os.devnull)
    r = run("score", str(SAMPLE), "--out", os.devnull, "--rejects", str(link),
            "--sink", f"csv:{os.devnull}", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert not list(Path("/dev").glob(".null*partial"))


def test_out_dash_streams_json_lines_with_the_summary_on_stderr(tmp_path):
    proc = start("score", "-", "--format", "csv", "--out", "-", "--rejects", "r.jsonl",
                 cwd=tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(ROW.encode() * 600)  # more than one sink chunk (500)
    proc.stdin.flush()
    # The first chunk arrives while the input is still open: the results stream.
    first = [proc.stdout.readline() for _ in range(500)]
    assert all(json.loads(line)["label"] for line in first)
    assert proc.poll() is None
    rest, err = proc.communicate(timeout=60)  # closes stdin: the end of the input
    assert proc.returncode == 0, err
    assert len(rest.splitlines()) == 100
    assert b"600 records: 600 ok" in err and b"-> results:-" in err


def test_out_dash_with_out_format_csv(tmp_path):
    r = run("score", str(SAMPLE), "--out", "-", "--out-format", "csv", "--rejects", "r.csv",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("key,source,line,row_id,label,") and len(lines) == 328
    assert "327 ok" in r.stderr and "327 ok" not in r.stdout


def test_default_outputs_are_not_overwritten_without_force(tmp_path):
    assert run("score", str(SAMPLE), "-q", cwd=tmp_path).returncode == 0
    results = tmp_path / "census-income-sample.predictions.jsonl"
    before = results.read_bytes()
    r = run("score", str(SAMPLE), cwd=tmp_path)
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert "census-income-sample.predictions.jsonl" in line and "--force" in line
    assert results.read_bytes() == before
    assert run("score", str(SAMPLE), "--force", "-q", cwd=tmp_path).returncode == 0
    # Explicit paths are the user's choice: replaced without --force.
    for _ in range(2):
        r = run("score", str(SAMPLE), "--out", "p.csv", "--rejects", "r.csv", "-q",
                cwd=tmp_path)
        assert r.returncode == 0, r.stderr


def test_kill_9_leaves_a_partial_file_that_the_next_run_removes(tmp_path):
    proc = start("score", "-", "--format", "csv", "--out", "p.jsonl", "--rejects", "r.jsonl",
                 "-q", cwd=tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(ROW.encode() * 600)
    proc.stdin.flush()
    wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(".p.jsonl.*.partial")))
    proc.kill()
    proc.wait(30)
    proc.stdin.close()
    assert list(tmp_path.glob(".p.jsonl.*.partial")) and not (tmp_path / "p.jsonl").exists()
    r = run("score", "-", "--format", "csv", "--out", "p.jsonl", "--rejects", "r.jsonl", "-q",
            cwd=tmp_path, stdin=ROW)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "r.jsonl"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_says_what_was_done_and_leaves_outputs_whole(tmp_path, signum):
    (tmp_path / "p.jsonl").write_text("the previous run's results\n")
    proc = start("score", "-", "--format", "csv", "--out", "p.jsonl", "--rejects", "r.jsonl",
                 "--sink", "sqlite:runs.db", cwd=tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(ROW.encode() * 1200)
    proc.stdin.flush()
    wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(".p.jsonl.*.partial")))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    message = err.decode().strip().splitlines()[-1]
    done = re.match(r"amlproxy: interrupted after ([\d,]+) records \(([\d,]+) ok", message)
    assert done, message
    assert int(done[1].replace(",", "")) >= 500 and done[1] == done[2]  # a chunk was written
    assert "outputs are whole or absent" in message and "marked aborted" in message
    assert (tmp_path / "p.jsonl").read_text() == "the previous run's results\n"
    assert not list(tmp_path.glob(".*partial"))
    with sqlite3.connect(tmp_path / "runs.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("aborted",)]


def test_sqlite_records_each_run_and_marks_a_killed_one(tmp_path):
    assert run("score", str(SAMPLE), "--out", "p.jsonl", "--rejects", "r.jsonl",
               "--sink", "sqlite:s.db", "-q", cwd=tmp_path).returncode == 0
    proc = start("score", "-", "--format", "csv", "--out", "p2.jsonl", "--rejects", "r2.jsonl",
                 "--sink", "sqlite:s.db", "-q", cwd=tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(ROW.encode() * 1200)
    proc.stdin.flush()

    def running() -> bool:
        with sqlite3.connect(tmp_path / "s.db") as db:
            return db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'"
                              ).fetchone()[0] == 1

    wait_for(running)
    proc.kill()
    proc.wait(30)
    proc.stdin.close()
    assert run("score", str(SAMPLE), "--out", "p.jsonl", "--rejects", "r.jsonl",
               "--sink", "sqlite:s.db", "-q", cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "s.db") as db:
        runs = db.execute("SELECT run_id, status, records FROM runs ORDER BY run_id").fetchall()
        assert [(s, n) for _, s, n in runs] == [("completed", 335), ("killed", 500),
                                                 ("completed", 335)]
        last = runs[-1][0]
        assert db.execute("SELECT COUNT(*) FROM predictions WHERE run_id = ?",
                          (last,)).fetchone() == (335,)
