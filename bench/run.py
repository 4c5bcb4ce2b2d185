"""``make bench``: run every benchmark in bench/, then write and print the summary.

    python bench/run.py [--only overhead coldstart ...] [--quick]
    python bench/run.py --only api_inprocess --keep   (re-measure one, keep the others)
    python bench/run.py --check      (``make bench-check``)

Each benchmark runs as a subprocess (``python bench/<name>.py``) and writes
``bench/results/<name>.json``; this script gathers their ``figures`` (amlproxy divided by
the peer a user would pick instead, measured side by side in the same run, and sizes)
into ``bench/results/summary.json`` and ``bench/results/summary.md`` and prints the table,
each missed target marked. ``--quick`` shrinks the workloads (for trying the suite, not
for the figures). The exit status is 1 when a benchmark failed; with ``--check`` also when
a figure misses its target (``--check`` alone reads the last full run's summary, and runs
the benchmarks first if there is none). ``--keep`` with ``--only``: the other benchmarks'
results stay those of the last summary, and the summary names the command and time that
measured each one.
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
    "overhead": ([], ["--rows", "5000", "--rounds", "2"]),
    "api_inprocess": ([], ["--requests", "200", "--rounds", "2"]),
    # the collector as the Lambda triggers leave it after init (gc.freeze(), thresholds), for
    # all sides
    "sagemaker_batch": (["--gc-freeze"], ["--rows", "3000", "--rounds", "1", "--batches",
                                          "50", "500"]),
    "throughput": (["--seconds", "3"], ["--seconds", "1", "--rounds", "1"]),
    "batch": ([], ["--rows", "5000", "--naive-rows", "100"]),
    "api_latency": ([], ["--seconds", "3", "--rounds", "1"]),
    "coldstart": ([], ["--repeat", "2"]),
    "memory": ([], ["--large", "100000"]),
    "package_size": ([], []),
    # the local stack's chunk flow with 1, 2, 4, 8 workers: about 25 min in full
    "chunks_scaleout": ([], ["--rows", "20000", "--aml-rows", "2000", "--workers", "1", "2"]),
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


def markdown(results: list[dict[str, Any]], by: str) -> str:
    """The summary table; ``by``: the command(s) that measured it, with their times."""
    lines = [
        f"Measured by {by}, Python "
        f"{platform.python_version()}, {_cpus()} CPUs. Ratios are taken side by side in "
        "the same run.",
        "",
        "| figure | measured | target | met | detail |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in figure_rows(results)]
    return "\n".join(lines) + "\n"


def figure_rows(results: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """The cells of the summary table: figure, measured, target, met, detail (the README's
    Figures table shows the first four, ``tests/docs/test_readme_figures.py``)."""
    rows = []
    for result in results:
        if not result["ok"]:
            rows.append((result["benchmark"], "failed", "", "no", "see its output"))
        for fig in result["figures"]:
            met = {True: "yes", False: "**MISSED**", None: "-"}[fig["met"]]
            value = f"{fig['value']:g} {fig['unit']}".replace(" x", "x")
            rows.append((fig["figure"], value, fig["target"], met, fig["detail"]))
    return rows


def _kept_results(names: list[str]) -> dict[str, dict[str, Any]]:
    """The last summary's results of the benchmarks not in ``names`` (for ``--keep``)."""
    summary = RESULTS / "summary.json"
    if not summary.exists():
        return {}
    last = json.loads(summary.read_text())
    written = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.stat().st_mtime))
    return {r["benchmark"]: {"command": last.get("command", "?"), "measured": written, **r}
            for r in last["results"] if r["benchmark"] not in names}


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def missed(results: list[dict[str, Any]]) -> list[str]:
    """The figures that miss their target, and the benchmarks that failed."""
    out = [f"{r['benchmark']}: failed" for r in results if not r["ok"]]
    out += [f"{f['figure']}: {f['value']:g} {f['unit']} (target {f['target']})"
            for r in results for f in r["figures"] if f["met"] is False]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a figure misses its target")
    parser.add_argument("--keep", action="store_true",
                        help="with --only: keep the other benchmarks' last results")
    args = parser.parse_args(argv)
    summary = RESULTS / "summary.json"
    if args.check and not (args.only or args.quick) and summary.exists():
        results = json.loads(summary.read_text())["results"]
        print((RESULTS / "summary.md").read_text())
    else:
        results = run_all(args, argv)
    misses = missed(results)
    if misses:
        print(f"{len(misses)} target(s) missed:\n  " + "\n  ".join(misses))
    if not all(r["ok"] for r in results):
        return 1
    return 1 if args.check and misses else 0


def run_all(args: argparse.Namespace, argv: list[str] | None) -> list[dict[str, Any]]:
    names = args.only or list(BENCHMARKS)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--check"]
    command = "make bench" if not given else "python " + " ".join(["bench/run.py", *given])
    kept = _kept_results(names) if args.keep and args.only else {}
    results = []
    started, measured = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M")
    for name in names:
        print(f"\n== {name} ==", flush=True)
        full, quick = BENCHMARKS[name]
        results.append({**run(name, quick if args.quick else full), "command": command,
                        "measured": measured})
        print(f"({name}: {results[-1]['seconds']:.0f} s)", flush=True)
    done = {r["benchmark"]: r for r in results}
    results = [done.get(name) or kept[name] for name in BENCHMARKS if name in done or name in kept]
    commands = sorted({f"`{r['command']}` ({r['measured']})" for r in results})
    table = markdown(results, " and ".join(commands))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text(table)
    (RESULTS / "summary.json").write_text(json.dumps(
        {"command": command, "seconds": time.perf_counter() - started, "results": results},
        indent=2) + "\n")
    print(f"\n== summary ({time.perf_counter() - started:.0f} s; "
          f"bench/results/summary.md) ==\n")
    print(table)
    return results


if __name__ == "__main__":
    raise SystemExit(main())
