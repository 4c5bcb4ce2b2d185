"""``make bench``: run every benchmark in bench/, then write and print the summary.

    python bench/run.py [--only overhead coldstart ...] [--quick]

Each benchmark runs as a subprocess (``python bench/<name>.py``) and writes
``bench/results/<name>.json``; this script gathers their ``figures`` (ratios measured side
by side in the same run, and sizes) into ``bench/results/summary.json`` and
``bench/results/summary.md`` and prints the table. ``--quick`` shrinks the workloads (for
trying the suite, not for the figures). The exit status is 0 even when a target is missed:
the table says so; it is 1 only when a benchmark itself failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT

# name -> (arguments of the full run, arguments of --quick); in the order they run
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "overhead": ([], ["--rows", "10000", "--repeat", "2"]),
    "batch": ([], ["--rows", "5000", "--naive-rows", "100"]),
    "api_latency": ([], ["--seconds", "3", "--rounds", "1"]),
    "coldstart": ([], ["--repeat", "2"]),
    "memory": ([], ["--large", "100000"]),
    "package_size": ([], []),
    "throughput": (["--seconds", "3"], ["--seconds", "1", "--rounds", "1"]),
}


def run(name: str, args: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    answer = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
                            cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    path = RESULTS / f"{name}.json"
    if answer.returncode != 0 or not path.exists():
        return {"benchmark": name, "ok": False, "seconds": seconds, "figures": []}
    result: dict[str, Any] = json.loads(path.read_text())
    return {"benchmark": name, "ok": True, "seconds": seconds,
            "figures": result.get("figures", [])}


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"Measured by `{command}` on {time.strftime('%Y-%m-%d')}, Python "
        f"{platform.python_version()}, {_cpus()} CPUs. Ratios are taken side by side in "
        "the same run.",
        "",
        "| figure | measured | target | met | detail |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        if not result["ok"]:
            lines.append(f"| {result['benchmark']} | failed | | no | see its output |")
        for fig in result["figures"]:
            met = {True: "yes", False: "**no**", None: "-"}[fig["met"]]
            value = f"{fig['value']:g} {fig['unit']}".replace(" x", "x")
            lines.append(f"| {fig['figure']} | {value} | {fig['target']} | {met} | "
                         f"{fig['detail']} |")
    return "\n".join(lines) + "\n"


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    results = []
    started = time.perf_counter()
    for name in names:
        print(f"\n== {name} ==", flush=True)
        full, quick = BENCHMARKS[name]
        results.append(run(name, quick if args.quick else full))
        print(f"({name}: {results[-1]['seconds']:.0f} s)", flush=True)
    command = "make bench" if not (args.quick or args.only) else "python " + " ".join(
        ["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    table = markdown(results, command)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text(table)
    (RESULTS / "summary.json").write_text(json.dumps(
        {"command": command, "seconds": time.perf_counter() - started, "results": results},
        indent=2) + "\n")
    print(f"\n== summary ({time.perf_counter() - started:.0f} s; "
          f"bench/results/summary.md) ==\n")
    print(table)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
