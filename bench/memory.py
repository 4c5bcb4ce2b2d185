"""Memory: peak RSS of ``amlproxy score`` (local backend) on 10,000 and 1,000,000 rows.

    python bench/memory.py [--small 10000] [--large 1000000]

Each run is a fresh subprocess (``python -m amlproxy score IN --out OUT.jsonl --rejects
REJ.jsonl``); its peak RSS comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that one
child). Streaming keeps memory flat: the figure is large / small, target <= 1.05. Writes
``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import clean_env, figure, setup_env, write_census_file, write_result

setup_env()
TARGET = 1.05


def peak_rss(infile: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "amlproxy", "score", str(infile),
               "--out", str(out / "predictions.jsonl"), "--rejects", str(out / "rejects.jsonl")]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=clean_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"amlproxy score failed ({process.returncode}): {stderr[-500:]}")
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "seconds": time.perf_counter() - started,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "output_bytes": (out / "predictions.jsonl").stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="amlproxy-memory-") as tmp:
        for rows in (args.small, args.large):
            infile = write_census_file(Path(tmp) / f"census-{rows}.csv", rows)
            out = Path(tmp) / f"out-{rows}"
            out.mkdir()
            runs[str(rows)] = {"rows": rows, **peak_rss(infile, out)}
            run = runs[str(rows)]
            print(f"{rows:>9} rows: peak RSS {run['peak_rss_mib']:.1f} MiB, "
                  f"{run['seconds']:.1f} s, {run['cpu_s'] / rows * 1e6:.1f} us CPU/row")
            for path in (infile, *out.iterdir()):
                path.unlink()
    small, large = runs[str(args.small)], runs[str(args.large)]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    figures = [figure(
        f"peak RSS {args.large:,} rows / {args.small:,} rows (CLI, local backend)",
        round(ratio, 3), "x", f"<= {TARGET}x", ratio <= TARGET,
        f"{large['peak_rss_mib']:.1f} MiB vs {small['peak_rss_mib']:.1f} MiB")]
    write_result("memory", {"runs": runs, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
