"""Per-record CPU: amlproxy against the peers a user would write, on the same rows.

    python bench/overhead.py [--rows 50000] [--rounds 7]

The job: a census-income CSV in memory (valid rows, cycled) is read, validated, scored by
the bundled model and written as JSON Lines to memory. Implementations, run in
interleaved rounds (a busy machine slows them alike):

- ``amlproxy``: the pipeline as the CLI and the S3 trigger chain it (read_csv, the schema,
  the local backend, a JSON Lines results sink);
- ``powertools``: a Lambda handler written with Powertools' Parser (``parse`` per row),
  Logger and Metrics (bench/peers/powertools_s3.py), its S3 I/O on memory;
- ``pydantic``: a loop of csv.reader and ``model_validate`` (bench/peers/pydantic_direct.py);
- ``naive``: csv.reader and the model, no validation (the floor, for reference).

Each peer validates with a hand-written pydantic model of the same rules
(bench/peers/census_model.py) and scores with the same model. Figures: amlproxy's process
CPU per record divided by each peer's, the median of the per-round ratios with their
spread. A cProfile run splits amlproxy's time into stages. Writes
``bench/results/overhead.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODEL, census_bytes, figure, s3_event, setup_env, write_result

setup_env()

import orjson  # noqa: E402

from amlproxy.backends.local import LocalBackend  # noqa: E402
from amlproxy.core.outcome import Outcome  # noqa: E402
from amlproxy.core.pipeline import Pipeline  # noqa: E402
from amlproxy.core.readers import read_csv  # noqa: E402
from amlproxy.core.schema import load_schema  # noqa: E402
from amlproxy.core.writers import ResultWriter  # noqa: E402
from amlproxy.localmodel.logreg import load_bundled  # noqa: E402

TARGETS = {"powertools": 1.0, "pydantic": 1.1}  # amlproxy / peer, at most

# profile buckets: the first pattern found in "file:function" names the bucket
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("reader", ("core/readers.py", "core/csv_reader.py", "core/line_reader.py", "_csv.reader")),
    ("validate", ("core/schema", "pydantic", "validate_python", "core/units.py")),
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


class Context:
    """The Lambda context attributes Powertools' Logger reads."""

    function_name = "census-scoring"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:census-scoring"
    aws_request_id = "bench"


def amlproxy_job() -> Callable[[bytes], int]:
    """The pipeline, built once (as at a cold start), run on each input."""
    schema = load_schema(MODEL)
    pipeline = Pipeline(schema, LocalBackend(), concurrency=1)

    def job(data: bytes) -> int:
        report = pipeline.run(read_csv(io.BytesIO(data), schema), source="bench",
                              sinks=[BytesSink()])
        return report.ok

    return job


def powertools_job() -> Callable[[bytes], int]:
    from peers import powertools_s3

    model = load_bundled()
    written: dict[str, bytes] = {}
    handler = powertools_s3.make_s3_handler(
        lambda bucket, key: written["input"], lambda bucket, key, body: None, model.predict)
    event = s3_event("bench", "input.csv", "etag", 0)

    def job(data: bytes) -> int:
        written["input"] = data
        with contextlib.redirect_stdout(io.StringIO()):  # the EMF metrics line
            answer = handler(event, Context())
        return int(answer["records"])

    return job


def pydantic_job() -> Callable[[bytes], int]:
    from peers import pydantic_direct

    model = load_bundled()
    return lambda data: pydantic_direct.score(data, "bench", model.predict)[2]


def naive_job() -> Callable[[bytes], int]:
    model = load_bundled()
    columns = load_schema(MODEL).column_names
    option = orjson.OPT_APPEND_NEWLINE

    def job(data: bytes) -> int:
        out = []
        for line, row in enumerate(csv.reader(io.StringIO(data.decode()),
                                              skipinitialspace=True), 1):
            label, scores = model.predict(dict(zip(columns, row, strict=False)))
            out.append(orjson.dumps({"line": line, "label": label, "scores": scores},
                                    option=option))
        b"".join(out)
        return len(out)

    return job


def measure(jobs: dict[str, Callable[[bytes], int]], data: bytes, rows: int, rounds: int
            ) -> dict[str, list[float]]:
    """CPU microseconds per record of each job, per round (interleaved)."""
    runs: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():  # warm up imports and caches
        job(census_bytes(500))
    for _ in range(rounds):
        for name, job in jobs.items():
            t0 = time.process_time()
            done = job(data)
            runs[name].append((time.process_time() - t0) / rows * 1e6)
            assert done == rows, (name, done, rows)
    return runs


def profile_breakdown(data: bytes) -> dict[str, float]:
    job = amlproxy_job()
    profiler = cProfile.Profile()
    profiler.enable()
    job(data)
    profiler.disable()
    stats = pstats.Stats(profiler)
    shares = {name: 0.0 for name, _ in BUCKETS}
    shares["other"] = 0.0
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, func), (_cc, _nc, tottime, _ct, callers) in raw.items():
        named = _bucket(f"{filename}:{func}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    data = census_bytes(args.rows)
    jobs = {"amlproxy": amlproxy_job(), "powertools": powertools_job(),
            "pydantic": pydantic_job(), "naive": naive_job()}
    runs = measure(jobs, data, args.rows, args.rounds)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    ratios = {peer: [ours / theirs for ours, theirs in zip(runs["amlproxy"], runs[peer],
                                                          strict=True)]
              for peer in ("powertools", "pydantic", "naive")}
    shares = profile_breakdown(census_bytes(min(args.rows, 20_000)))
    breakdown = {k: round(v * medians["amlproxy"], 2) for k, v in shares.items()}
    for name, values in runs.items():
        print(f"{name:<11} {medians[name]:6.2f} us/record CPU (median; rounds "
              + ", ".join(f"{v:.1f}" for v in values) + ")")
    print("amlproxy breakdown (cProfile shares of the median, us/record): "
          + ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items()))
    figures = []
    for peer, target in TARGETS.items():
        ratio = statistics.median(ratios[peer])
        figures.append(figure(
            f"per-record CPU, amlproxy / {_PEER_NAMES[peer]}", round(ratio, 2), "x",
            f"<= {target}x", ratio <= target,
            f"{medians['amlproxy']:.1f} vs {medians[peer]:.1f} us/record; median of "
            f"{args.rounds} interleaved rounds, spread {min(ratios[peer]):.2f}-"
            f"{max(ratios[peer]):.2f}; CSV in, JSONL out, {args.rows} rows; naive loop "
            f"(no validation) {medians['naive']:.1f} us; amlproxy: "
            + ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items())))
    write_result("overhead", {
        "rows": args.rounds and args.rows, "rounds": args.rounds, "us_per_record_runs": runs,
        "us_per_record": medians, "ratios": ratios, "breakdown_us": breakdown,
        "figures": figures,
    })
    return 0


_PEER_NAMES = {"powertools": "Powertools Parser handler", "pydantic": "pydantic direct loop"}


if __name__ == "__main__":
    raise SystemExit(main())
