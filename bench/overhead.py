"""Per-record CPU overhead of the pipeline with the in-process local backend (no I/O).

    python bench/overhead.py [--rows 50000] [--repeat 5]

A census-income CSV in memory is read, validated, scored by the bundled model and written
as JSON Lines to a BytesIO results sink, exactly as the CLI and the S3 trigger chain them.
The figure is process CPU time per record (best of ``--repeat``, the least disturbed run),
next to two floors measured in the same run: ``csv.reader`` alone over the same bytes and
``orjson.dumps`` of a result row. A cProfile run splits the time into reader, validation,
model, Prediction/Outcome construction, writer and pipeline bookkeeping (profile shares,
scaled to the measured total). Writes ``bench/results/overhead.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODEL, census_bytes, figure, setup_env, write_result

setup_env()

from amlproxy.backends.local import LocalBackend  # noqa: E402
from amlproxy.core.outcome import Outcome  # noqa: E402
from amlproxy.core.pipeline import Pipeline  # noqa: E402
from amlproxy.core.readers import read_csv  # noqa: E402
from amlproxy.core.schema import load_schema  # noqa: E402
from amlproxy.core.writers import ResultWriter, result_row  # noqa: E402

TARGET_US = 30.0

# profile buckets: the first pattern found in "file:function" names the bucket
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("reader", ("core/readers.py", "core/line_reader.py", "_csv.reader", "csv.py")),
    ("validate", ("core/schema", "pydantic", "validate_python")),
    ("model", ("localmodel/", "backends/local.py")),
    ("Prediction/Outcome", ("core/prediction.py", "core/outcome.py", "<string>:")),
    ("writer", ("core/writers.py", "orjson", "BytesIO")),
    ("pipeline", ("core/pipeline.py", "core/report.py")),
]


class BytesSink:
    """A results sink writing JSON Lines into memory (the cost of the writer, no disk)."""

    name = "results:memory"
    kind = "results"

    def __init__(self) -> None:
        self.stream = io.BytesIO()
        self.writer = ResultWriter(self.stream, format="jsonl")

    def write(self, outcomes: Sequence[Outcome]) -> None:
        self.writer.write(outcomes)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def run_pipeline(data: bytes) -> tuple[int, int]:
    schema = load_schema(MODEL)
    pipeline = Pipeline(schema, LocalBackend(), [BytesSink()], concurrency=1)
    report = pipeline.run(read_csv(io.BytesIO(data), schema), source="bench")
    pipeline.close()
    return report.total, report.ok


def cpu_per_record(data: bytes, rows: int, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        total, ok = run_pipeline(data)
        out.append((time.process_time() - t0) / rows * 1e6)
        assert total == rows and ok == rows, (total, ok)
    return out


def csv_floor(data: bytes, rows: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        count = sum(1 for _ in csv.reader(io.StringIO(data.decode()), skipinitialspace=True))
        best = min(best, (time.process_time() - t0) / rows * 1e6)
        assert count == rows
    return best


def profile_breakdown(data: bytes) -> dict[str, float]:
    profiler = cProfile.Profile()
    profiler.enable()
    run_pipeline(data)
    profiler.disable()
    stats = pstats.Stats(profiler)
    shares = {name: 0.0 for name, _ in BUCKETS}
    shares["other"] = 0.0
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, func), (_cc, _nc, tottime, _ct, callers) in raw.items():
        where = f"{filename}:{func}"
        named = _bucket(where)
        if named != "other" or filename != "~" or not callers:
            shares[named] += tottime
            continue
        # a builtin (dict.get, str.strip...) counts for the code that called it
        for (caller_file, _l, caller_func), (_a, _b, caller_tt, _d) in callers.items():
            shares[_bucket(f"{caller_file}:{caller_func}")] += caller_tt
    total = sum(shares.values()) or 1.0
    return {k: v / total for k, v in shares.items()}


def _bucket(where: str) -> str:
    for name, patterns in BUCKETS:
        if any(p in where for p in patterns):
            return name
    return "other"


def top_functions(data: bytes, limit: int = 15) -> list[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    run_pipeline(data)
    profiler.disable()
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(limit)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines() if line.strip()]
    return [line.replace(str(Path.cwd()), ".") for line in lines[-limit - 1:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    data = census_bytes(args.rows)
    run_pipeline(census_bytes(1000))  # warm up imports and caches
    runs = cpu_per_record(data, args.rows, args.repeat)
    best = min(runs)
    floor_csv = csv_floor(data, args.rows, args.repeat)
    row_sample = run_sample_row()
    shares = profile_breakdown(census_bytes(min(args.rows, 20_000)))
    breakdown = {k: round(v * best, 2) for k, v in shares.items()}
    top = top_functions(census_bytes(min(args.rows, 20_000)))
    print(f"per-record CPU: {best:.1f} us (runs: {', '.join(f'{r:.1f}' for r in runs)}); "
          f"target <= {TARGET_US:.0f} us; csv.reader alone {floor_csv:.2f} us")
    print("breakdown (profile shares scaled to the measured total, us/record):")
    for name, value in breakdown.items():
        print(f"  {name:<20} {value:6.2f}")
    print("top functions by own time (cProfile):")
    for line in top:
        print("  " + line)
    figures = [
        figure("per-record CPU (local backend, CSV in, JSONL out)", round(best, 2), "us/record",
               f"<= {TARGET_US:.0f} us", best <= TARGET_US,
               f"{best / floor_csv:.1f}x csv.reader alone ({floor_csv:.2f} us); "
               + ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items())),
    ]
    write_result("overhead", {
        "rows": args.rows, "us_per_record_runs": runs, "us_per_record": best,
        "csv_reader_us": floor_csv, "breakdown_us": breakdown, "sample_row": row_sample,
        "profile_top": top, "figures": figures,
    })
    return 0


def run_sample_row() -> dict[str, Any]:
    """One result row, to show what the writer produces."""
    schema = load_schema(MODEL)
    pipeline = Pipeline(schema, LocalBackend(), concurrency=1)
    row = next(read_csv(io.BytesIO(census_bytes(1)), schema))
    assert row.fields is not None
    outcomes, _ = pipeline.score_records([row.fields], source="bench")
    pipeline.close()
    return result_row(outcomes[0])


if __name__ == "__main__":
    raise SystemExit(main())
