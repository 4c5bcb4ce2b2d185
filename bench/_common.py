"""What the benchmarks share: paths, dummy AWS credentials, the census-income workload
and the result files.

Every benchmark writes ``bench/results/<name>.json``: its raw measurements plus a list of
``figures``, each a ratio (or a size) with its target, which ``bench/run.py`` gathers into
``bench/results/summary.md``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# where the figures go (AMLPROXY_BENCH_RESULTS: elsewhere, as the smoke test runs them)
RESULTS = Path(os.environ.get("AMLPROXY_BENCH_RESULTS") or ROOT / "bench" / "results")
SAMPLE = ROOT / "examples" / "census-income-sample.csv"
MODEL = "census-income"

DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def setup_env() -> None:
    """Dummy credentials and a region (never real AWS); the source tree importable."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for key, value in DUMMY_AWS.items():
        os.environ.setdefault(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(key, None)


def clean_env(**extra: str) -> dict[str, str]:
    """An environment for a benchmark subprocess: no AMLPROXY_* from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLPROXY_")}
    env.update(DUMMY_AWS)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@functools.cache
def valid_sample_lines() -> list[bytes]:
    """The raw lines of the sample file that the census schema accepts (its planted bad
    rows left out), in file order."""
    setup_env()
    from amlproxy.core.readers import read_csv
    from amlproxy.core.schema import load_schema
    from amlproxy.errors import RecordValidationError

    schema = load_schema(MODEL)
    raw = SAMPLE.read_bytes()
    lines = raw.splitlines(keepends=False)
    good: list[bytes] = []
    with open(SAMPLE, "rb") as handle:
        for row in read_csv(handle, schema):
            if row.fields is None:
                continue
            with contextlib.suppress(RecordValidationError):
                schema.validate(row.fields, line=row.line)
                good.append(lines[row.line - 1])
    return good


def census_bytes(rows: int) -> bytes:
    """A deterministic ``rows``-line census-income CSV: the valid sample rows, cycled."""
    good = valid_sample_lines()
    return b"\n".join(good[i % len(good)] for i in range(rows)) + b"\n"


def write_census_file(path: Path, rows: int) -> Path:
    """Writes :func:`census_bytes` to ``path`` in chunks (bounded memory)."""
    good = valid_sample_lines()
    with open(path, "wb") as out:
        for start in range(0, rows, 10_000):
            count = min(10_000, rows - start)
            out.write(b"".join(good[(start + i) % len(good)] + b"\n" for i in range(count)))
    return path


def s3_event(bucket: str, key: str, etag: str, size: int) -> dict[str, Any]:
    """An ``s3:ObjectCreated:Put`` event (tests/events/s3_put.json) for one object."""
    import copy

    event: dict[str, Any] = copy.deepcopy(
        json.loads((ROOT / "tests" / "events" / "s3_put.json").read_text()))
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"].update(key=key, eTag=etag, size=size)
    return event


def figure(name: str, value: float, unit: str, target: str, met: bool | None,
           detail: str = "") -> dict[str, Any]:
    """One line of the summary table."""
    return {"figure": name, "value": value, "unit": unit, "target": target, "met": met,
            "detail": detail}


def write_result(name: str, data: dict[str, Any]) -> Path:
    """``bench/results/<name>.json`` with the machine it ran on."""
    data = {"benchmark": name, "python": platform.python_version(), "cpus": os.cpu_count(),
            **data}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or with None unset) environment variables for the block."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def timed_loop(call: Callable[[int], Any], threads: int, seconds: float) -> dict[str, Any]:
    """Run ``call(i)`` in a loop on ``threads`` threads for ``seconds``; calls/s, CPU/call."""
    stop = threading.Event()
    counts = [0] * threads

    def worker(slot: int) -> None:
        i = slot
        while not stop.is_set():
            call(i)
            counts[slot] += 1
            i += threads

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    calls = sum(counts)
    return {"calls": calls, "seconds": wall, "calls_per_s": calls / wall,
            "cpu_s_per_call": cpu / calls if calls else float("nan")}
