"""Scale-out of the chunk flow: the wall time of one census file scored in chunks by 1, 2,
4 and 8 chunk workers (ChunkMaxConcurrency), on the local stack of sam/template.yaml
(``amlproxy local up``: planner, ChunkQueue, workers, assembly), against the endpoint
emulator at 20 ms latency.

    python bench/chunks_scaleout.py [--rows 1000000] [--aml-rows 20000] [--workers 1 2 4 8]

- SageMaker, the multi-record path: ``--rows`` lines (default 1,000,000). The speed-up over
  1 worker, and its ratio to the bound of this machine's CPUs (2 cores: 2.0), since the
  workers, the emulator and moto share them.
- Amazon ML, with the endpoint's limit of 200 requests/s (the emulator's ``rps_limit``:
  a token bucket that throttles beyond it): one record per request, so ``--aml-rows``
  lines (default 20,000: 100 s at the limit; 1,000,000 would take 83 min per worker count)
  and each worker held to ``AMLPROXY_AML_MAX_RPS`` = floor(200 / workers) by the template.
  The fleet must stay at or under 200 requests/s with 0 throttles (the target); its
  speed-up is reported (near 1: the endpoint's limit binds, not the workers).

For each run: the wall time from the upload to the assembled completion item, and the
endpoint's own request rate and throttles from the emulator's counts (its mean over the
run, and the highest over 2-second windows). Lambda's MaximumConcurrency is at least 2,
so the 1-worker baseline runs a copy of the template whose ChunkMaxConcurrency allows 1
(and whose AmlChunkRates mapping has its row: 200 requests/s). Chunks:
``--chunk-bytes`` (default: the file's size / 32, at least 100,000 bytes, so that 8
workers have 4 chunks each), run with the longest ``FunctionTimeout`` (900 s): a chunk set by
hand must fit in one invocation even when 8 workers share moto, or the deadline cuts every
attempt and each redo starts the chunk again (at the default 120 s, on a machine where
moto ran at half speed, the 8-worker run saw 118 redeliveries in 45 minutes). Each run
reports the chunk messages redelivered, and stops with an error once they outnumber
twice the chunks. Writes ``bench/results/chunks_scaleout.json``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, census_bytes, figure, setup_env, write_result
from _servers import s3_client

sys.path.insert(0, str(ROOT))
from amlproxy.emulator.client import EmulatorAdmin
from amlproxy.local.config import load_config
from amlproxy.local.event_sources import SqsEventSource
from amlproxy.local.stack import LocalDeployment
from amlproxy.local.template import TEMPLATE_PATH

AML_LIMIT_RPS = 200
LATENCY_MS = 20
CPU_BOUND = 2.0  # the speed-up 2 cores allow at most
FUNCTION_TIMEOUT_S = 900  # the template's longest: a hand-sized chunk fits in one invocation
KEY = "input/scaleout.csv"


def one_worker_template(directory: Path) -> Path:
    """sam/template.yaml with ChunkMaxConcurrency 1 allowed (the baseline)."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    head, tail = text.split("  ChunkMaxConcurrency:\n", 1)
    assert "    MinValue: 2\n" in tail
    text = head + "  ChunkMaxConcurrency:\n" + tail.replace("    MinValue: 2\n",
                                                            "    MinValue: 1\n", 1)
    row = '    "2": {WorkerMaxRps: 100, WorkerBytesPerSecond: 12200}\n'
    assert row in text
    text = text.replace(row, f'    "1": {{WorkerMaxRps: {AML_LIMIT_RPS}, WorkerBytesPerSecond: '
                             f'{AML_LIMIT_RPS * 122}}}\n' + row)
    path = directory / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_once(backend: str, workers: int, body: bytes, chunk_bytes: int, template: Path,
             wait_s: float) -> dict[str, Any]:
    """One file through a fresh stack; wall time and the endpoint's counts."""
    config = load_config(None, api_port=0, moto_port=0, echo_logs=False, prewarm=True,
                         template=template if workers == 1 else None, parameters={
                             "Backend": backend, "ChunkMaxConcurrency": str(workers),
                             "ChunkBytes": str(chunk_bytes),
                             "FunctionTimeout": str(FUNCTION_TIMEOUT_S)})
    stack = LocalDeployment(config)
    stack.start()
    try:
        admin = EmulatorAdmin(stack.endpoints["emulator"])
        admin.set_faults(latency_ms=LATENCY_MS,
                         rps_limit=AML_LIMIT_RPS if backend == "aml" else 0)
        s3 = s3_client(stack.endpoints["aws"])
        samples: list[tuple[float, int, int]] = []
        started = time.perf_counter()
        s3.put_object(Bucket="amlproxy-input", Key=KEY, Body=body)
        done: list[dict[str, Any]] = []
        while not done:
            if time.perf_counter() - started > wait_s:
                raise RuntimeError(f"{backend} x{workers}: not assembled in {wait_s:.0f} s")
            time.sleep(0.5)
            samples.append((time.perf_counter(), *_requests(admin)))
            done = [o for o in stack.objects() if o["status"] == "assembled"]
            redelivered = _redelivered(stack)
            if not done and redelivered > 2 * max(1, len(body) // chunk_bytes):
                raise RuntimeError(f"{backend} x{workers}: {redelivered} chunk messages"
                                   " redelivered: the chunks do not fit in one invocation")
        wall = time.perf_counter() - started
        requests, throttled = _requests(admin)
        (obj,) = done
        assert obj["counts"]["ok"] == len(body.splitlines()), obj["counts"]
        return {"backend": backend, "workers": workers, "wall_s": round(wall, 2),
                "chunks": obj["chunks"], "rows": obj["counts"]["total"],
                "requests": requests, "throttled": throttled,
                "redelivered": redelivered,
                "mean_rps": round(requests / _active_s(samples, started), 1),
                "peak_rps_2s": round(_peak(samples, 2.0), 1)}
    finally:
        stack.stop()


def _redelivered(stack: LocalDeployment) -> int:
    """Chunk messages left on the queue for redelivery so far (cut, failed)."""
    return sum(source.failed_messages for source in stack.sources
               if isinstance(source, SqsEventSource))


def _requests(admin: EmulatorAdmin) -> tuple[int, int]:
    endpoints = admin.counts()["endpoints"]
    requests = sum(e["requests"] for e in endpoints.values())
    throttled = sum(e["by_outcome"]["throttled"] for e in endpoints.values())
    return requests, throttled


def _active_s(samples: list[tuple[float, int, int]], started: float) -> float:
    """From the upload to the last sample that saw a new request."""
    last = started + 1e-3
    for (_, before, _), (at, now, _) in itertools.pairwise(samples):
        if now > before:
            last = at
    return last - started


def _peak(samples: list[tuple[float, int, int]], window_s: float) -> float:
    best = 0.0
    for i, (at, count, _) in enumerate(samples):
        for later, later_count, _ in samples[i + 1:]:
            if later - at >= window_s:
                best = max(best, (later_count - count) / (later - at))
                break
    return best


def figures_of(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for backend in ("sagemaker", "aml"):
        mine = {r["workers"]: r for r in runs if r["backend"] == backend}
        if 1 not in mine:
            continue
        base = mine[1]["wall_s"]
        for workers, run in sorted(mine.items()):
            if workers == 1:
                continue
            speedup = base / run["wall_s"]
            detail = (f"{run['rows']:,} rows, {run['chunks']} chunks: {base:.1f} s with 1 "
                      f"worker, {run['wall_s']:.1f} s with {workers}; endpoint "
                      f"{run['mean_rps']:g} req/s (2-s peak {run['peak_rps_2s']:g}), "
                      f"{run['throttled']} throttled, "
                      f"{run['redelivered']} chunk messages redelivered")
            if backend == "sagemaker":
                detail += f"; {speedup / min(CPU_BOUND, workers):.2f} of the 2-core bound"
            out.append(figure(f"chunk scale-out {backend}, {workers} workers vs 1",
                              round(speedup, 2), "x", "reported", None, detail))
        if backend == "aml":
            rate = max(r["mean_rps"] for r in mine.values())
            throttled = sum(r["throttled"] for r in mine.values())
            out.append(figure("chunk fleet on AML: endpoint request rate (highest mean)",
                              rate, "req/s", f"<= {AML_LIMIT_RPS} req/s",
                              rate <= AML_LIMIT_RPS,
                              f"workers {sorted(mine)}; per worker floor(200 / workers)"))
            out.append(figure("chunk fleet on AML: throttles", throttled, "calls", "0",
                              throttled == 0, f"over workers {sorted(mine)}"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="SageMaker file lines")
    parser.add_argument("--aml-rows", type=int, default=20_000,
                        help="AML file lines (20,000 = 100 s at 200 requests/s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--chunk-bytes", type=int, default=None)
    parser.add_argument("--backends", nargs="+", default=["sagemaker", "aml"],
                        choices=["sagemaker", "aml"])
    args = parser.parse_args()
    setup_env()
    print(f"AML: {args.aml_rows:,} rows (one request each: {args.aml_rows / AML_LIMIT_RPS:.0f}"
          f" s at the endpoint's {AML_LIMIT_RPS} requests/s; 1,000,000 would take "
          f"{1_000_000 / AML_LIMIT_RPS / 60:.0f} min per run)", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        template = one_worker_template(Path(tmp))
        for backend in args.backends:
            rows = args.rows if backend == "sagemaker" else args.aml_rows
            body = census_bytes(rows)
            chunk_bytes = args.chunk_bytes or max(100_000, len(body) // 32)
            expected = rows / AML_LIMIT_RPS if backend == "aml" else rows / 1000
            for workers in args.workers:
                run = run_once(backend, workers, body, chunk_bytes, template,
                               wait_s=max(600.0, 5 * expected))
                runs.append(run)
                print(f"{backend} x{workers}: {run}", flush=True)
    figures = figures_of(runs)
    path = write_result("chunks_scaleout", {"figures": figures, "runs": runs,
                                            "arguments": vars(args),
                                            "latency_ms": LATENCY_MS,
                                            "aml_limit_rps": AML_LIMIT_RPS})
    for item in figures:
        print(f"{item['figure']}: {item['value']:g} {item['unit']} ({item['detail']})")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
