"""FileSink: regular files are replaced whole, everything else is written in place."""

from __future__ import annotations

import os
import subprocess

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.prediction import Prediction
from amlproxy.sinks.file import FileSink, remove_stale_partials, writes_in_place


def ok(line: int) -> Outcome:
    p = Prediction("<=50K", {"<=50K": 0.9, ">50K": 0.1}, None, "local", "m", 1.0)
    return Outcome("f.csv", line, Status.OK, {"age": 39.0}, None, p)


def test_what_is_written_in_place(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "file.jsonl").write_text("")
    (tmp_path / "to-fifo").symlink_to(fifo)
    (tmp_path / "to-file.jsonl").symlink_to(tmp_path / "file.jsonl")
    assert writes_in_place("-") and writes_in_place(os.devnull) and writes_in_place(fifo)
    assert writes_in_place(tmp_path / "to-fifo")
    assert not writes_in_place(tmp_path / "file.jsonl")
    assert not writes_in_place(tmp_path / "to-file.jsonl")
    assert not writes_in_place(tmp_path / "absent.jsonl")
    # /dev/fd/N resolves to whatever the descriptor is, a regular file included: in place.
    with open(tmp_path / "file.jsonl", "ab") as f:
        assert writes_in_place(f"/proc/self/fd/{f.fileno()}")


def test_a_symlink_to_a_regular_file_keeps_pointing_at_the_new_output(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    sink = FileSink(link)
    sink.write([ok(1), ok(2)])
    sink.close()
    assert link.is_symlink() and len(real.read_text().splitlines()) == 2


def test_abort_keeps_the_previous_file_and_leaves_no_partial(tmp_path):
    out = tmp_path / "p.jsonl"
    out.write_text("previous\n")
    sink = FileSink(out)
    sink.write([ok(1)])
    assert list(tmp_path.glob(".p.jsonl.*.partial"))
    sink.abort()
    assert out.read_text() == "previous\n" and sorted(tmp_path.iterdir()) == [out]


def test_partials_of_dead_runs_are_removed_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "p.jsonl"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [tmp_path / f".p.jsonl.{dead.pid}.partial", tmp_path / ".p.jsonl.partial"]
    live = tmp_path / f".p.jsonl.{os.getppid()}.partial"
    other = tmp_path / f".q.jsonl.{dead.pid}.partial"
    for path in [*stale, live, other]:
        path.write_text("half")
    assert sorted(remove_stale_partials(target)) == sorted(stale)
    assert live.exists() and other.exists()
