"""Every benchmark of `make bench` runs to the end and measures what it says: the quick form
of bench/run.py (small inputs, one round), its figures written elsewhere. A benchmark that
breaks (an API it calls changed, its requests fail) fails here instead of printing
figures of nothing; the figures themselves are not checked (no timing in tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_benchmark_runs_in_its_quick_form(tmp_path: Path) -> None:
    env = {**os.environ, "AMLPROXY_BENCH_RESULTS": str(tmp_path)}
    run = subprocess.run([sys.executable, "bench/run.py", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1700)
    summary = json.loads((tmp_path / "summary.json").read_text())
    broken = [r["benchmark"] for r in summary["results"] if not r["ok"]]
    assert broken == [], f"{broken}: {run.stdout[-3000:]}{run.stderr[-3000:]}"
    assert all(r["figures"] for r in summary["results"])


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_the_cold_start_instruction_count_runs(tmp_path: Path) -> None:
    """bench/coldstart_instructions.py (outside make bench: it needs valgrind) counts both
    sides of one trigger and writes its figure."""
    env = {**os.environ, "AMLPROXY_BENCH_RESULTS": str(tmp_path)}
    run = subprocess.run([sys.executable, "bench/coldstart_instructions.py", "--triggers",
                          "sqs"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=550)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "coldstart_instructions.json").read_text())
    counts = result["counts"]["sqs"]
    assert counts["amlproxy"] > 0 and counts["powertools"] > 0
    assert [f["figure"] for f in result["figures"]] == [
        "cold start in instructions, sqs: amlproxy / Powertools handler"]
