"""Scoring throughput of the AML and SageMaker backends against the endpoint emulator.

    python bench/throughput.py [--seconds 4] [--latency-ms 20] [--batch 50]

The emulator runs as a subprocess (its CPU is not ours). Measured side by side:

1. the client CPU bound: bare boto3 calls in one thread with no added latency, as calls/s
   and process CPU seconds per call (AML ``Predict``; SageMaker ``InvokeEndpoint`` with a
   ``--batch``-record CSV body). One Python process cannot beat ``1 / cpu_s_per_call``;
2. each backend (retry policy, encoding, parsing included) with ``--latency-ms`` added by
   the emulator, at concurrency 1 and 32: AmlBackend one record per call, SageMakerBackend
   ``--batch`` records per call; next to it, bare boto3 doing the same calls.

Each figure is reported as calls/s, as its ratio to the ideal bound
``min(concurrency / latency, client CPU bound)`` and as its ratio to bare boto3 at the same
latency and concurrency (what our layers cost). The emulator's CPU per call is shown too:
on a small machine the emulator and the client share the cores. Prints a table and writes
``bench/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _key, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(_key, _value)
os.environ.pop("AWS_PROFILE", None)

from _common import RESULTS, timed_loop  # noqa: E402  (bench/ is sys.path[0])

from amlproxy.backends._aws import make_client  # noqa: E402
from amlproxy.backends.aml import AmlBackend, aml_record  # noqa: E402
from amlproxy.backends.sagemaker import SageMakerBackend  # noqa: E402
from amlproxy.backends.sagemaker_codec import CsvEncoder  # noqa: E402
from amlproxy.core.retry import RetryPolicy  # noqa: E402
from amlproxy.core.schema import load_schema  # noqa: E402
from amlproxy.emulator import EmulatorAdmin  # noqa: E402
from amlproxy.emulator.process import start_process  # noqa: E402
from amlproxy.errors import RecordValidationError  # noqa: E402

MODEL = "census-income"
OUT = RESULTS / "throughput.json"


def census_records() -> list[dict[str, Any]]:
    schema = load_schema(MODEL)
    records = []
    with open(ROOT / "examples" / "census-income-sample.csv", newline="") as handle:
        for row in csv.reader(handle, skipinitialspace=True):
            if len(row) != len(schema.column_names):
                continue
            with contextlib.suppress(RecordValidationError):
                records.append(schema.validate(dict(zip(schema.column_names, row, strict=True))))
    return records


def measure_pair(
    pair: list[tuple[str, str, Callable[[int], Any], int]],
    concurrency: int,
    args: argparse.Namespace,
    emulator: Any,
    admin: EmulatorAdmin,
) -> list[dict[str, Any]]:
    """Alternate short runs of the clients of ``pair`` (``--rounds`` each), so that a busy
    machine slows them alike; the median calls/s of each, with CPU per call."""
    rounds: list[list[dict[str, Any]]] = [[] for _ in pair]
    for _ in range(args.rounds):
        for slot, (protocol, _client, call, _per_call) in enumerate(pair):
            timed_loop(call, concurrency, 0.2)  # warm the connection pool
            before = admin.counts()["endpoints"][MODEL]["by_protocol"][protocol]["requests"]
            cpu = emulator.cpu_seconds()
            run = timed_loop(call, concurrency, args.seconds / args.rounds)
            run["emulator_cpu_s"] = emulator.cpu_seconds() - cpu
            after = admin.counts()["endpoints"][MODEL]["by_protocol"][protocol]["requests"]
            run["emulator_requests"] = after - before
            rounds[slot].append(run)
    out = []
    for runs in rounds:
        calls = sum(r["calls"] for r in runs)
        requests = sum(r["emulator_requests"] for r in runs)
        out.append({
            "calls": calls,
            "emulator_requests": requests,
            "calls_per_s": statistics.median(r["calls_per_s"] for r in runs),
            "calls_per_s_rounds": [r["calls_per_s"] for r in runs],
            "cpu_s_per_call": sum(r["cpu_s_per_call"] * r["calls"] for r in runs) / calls,
            "emulator_cpu_s_per_call": sum(r["emulator_cpu_s"] for r in runs) / max(1, requests),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternated runs per figure")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=50, help="records per SageMaker call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args(argv)

    records = census_records()
    features = load_schema(MODEL).feature_names
    n, batch = len(records), args.batch
    aml_fields = [aml_record(r) for r in records]
    encoder = CsvEncoder(features)
    bodies = [encoder.body([encoder.encode(records[(i + k) % n]) for k in range(batch)])
              for i in range(0, n, 7)]
    batches = [[records[(i + k) % n] for k in range(batch)] for i in range(0, n, 7)]
    results: dict[str, Any] = {
        "latency_ms": args.latency_ms, "batch": batch, "seconds": args.seconds,
        "rounds": args.rounds,
        "python": platform.python_version(), "cpus": os.cpu_count(), "bound": {}, "runs": [],
    }
    emulator = start_process()
    admin = EmulatorAdmin(emulator.url)
    try:
        # 1. client CPU bound: bare boto3, one thread, no added latency
        aml_client = make_client("machinelearning", concurrency=64, region="us-east-1",
                                 endpoint_url=emulator.url)
        sm_client = make_client("sagemaker-runtime", concurrency=64, region="us-east-1",
                                endpoint_url=emulator.url)

        def bare_aml(i: int) -> None:
            aml_client.predict(MLModelId=MODEL, Record=aml_fields[i % n],
                               PredictEndpoint=emulator.url)

        def bare_sm(i: int) -> None:
            response = sm_client.invoke_endpoint(EndpointName=MODEL, Body=bodies[i % len(bodies)],
                                                 ContentType="text/csv", Accept="text/csv")
            response["Body"].read()

        admin.reset()
        for name, call in (("aml", bare_aml), ("sagemaker", bare_sm)):
            timed_loop(call, 1, 0.5)  # warm up connections and caches
            rounds = [timed_loop(call, 1, args.seconds / args.rounds) for _ in range(args.rounds)]
            bound = min(rounds, key=lambda r: r["cpu_s_per_call"])  # the least disturbed
            bound["cpu_bound_calls_per_s"] = 1.0 / bound["cpu_s_per_call"]
            results["bound"][name] = bound

        # 2. the backends, with latency
        admin.set_faults(latency_ms=args.latency_ms)
        for concurrency in args.concurrency:
            policy = RetryPolicy(max_attempts=5)
            aml = AmlBackend(MODEL, predict_endpoint=emulator.url, endpoint_url=emulator.url,
                             concurrency=concurrency, retry_policy=policy)
            sm = SageMakerBackend(MODEL, schema_feature_names=features, endpoint_url=emulator.url,
                                  max_batch_size=batch, concurrency=concurrency,
                                  retry_policy=policy)
            def ours_aml(i: int, backend: AmlBackend = aml) -> None:
                backend.predict(records[i % n])

            def ours_sm(i: int, backend: SageMakerBackend = sm) -> None:
                backend.predict_batch(batches[i % len(batches)])

            runs: list[tuple[str, str, Callable[[int], Any], int]] = [
                ("aml", "bare boto3", bare_aml, 1),
                ("aml", "AmlBackend", ours_aml, 1),
                ("sagemaker", "bare boto3", bare_sm, batch),
                ("sagemaker", "SageMakerBackend", ours_sm, batch),
            ]
            for protocol in ("aml", "sagemaker"):
                pair = [run for run in runs if run[0] == protocol]
                measured = measure_pair(pair, concurrency, args, emulator, admin)
                bare = measured[0]["calls_per_s"]
                for (_, client, _call, per_call), run in zip(pair, measured, strict=True):
                    cpu_bound = results["bound"][protocol]["cpu_bound_calls_per_s"]
                    latency_bound = concurrency / (args.latency_ms / 1000.0)
                    ideal = min(latency_bound, cpu_bound)
                    run.update({
                        "protocol": protocol, "client": client, "concurrency": concurrency,
                        "records_per_call": per_call,
                        "records_per_s": run["calls_per_s"] * per_call,
                        "latency_bound": latency_bound, "cpu_bound": cpu_bound,
                        "ideal_calls_per_s": ideal, "ratio_to_ideal": run["calls_per_s"] / ideal,
                        "ratio_to_bare": run["calls_per_s"] / bare,
                    })
                    results["runs"].append(run)
            aml.close()
            sm.close()
    finally:
        emulator.stop()

    print_table(results)
    results["figures"] = figures_of(results)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {OUT}")
    return 0


AML_TARGET = 0.9  # AmlBackend / bare boto3, at least, at every concurrency


def figures_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each backend over bare boto3 at the same concurrency and latency: the median of the
    per-round ratios, with their spread. The AML path has a target; SageMaker is reported
    (bench/sagemaker_batch.py compares the multi-record path)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import figure

    bare = {(r["protocol"], r["concurrency"]): r for r in results["runs"]
            if r["client"] == "bare boto3"}
    figures = []
    for run in results["runs"]:
        if run["client"] == "bare boto3":
            continue
        peer = bare[(run["protocol"], run["concurrency"])]
        ratios = [ours / theirs for ours, theirs in
                  zip(run["calls_per_s_rounds"], peer["calls_per_s_rounds"], strict=True)]
        ratio = statistics.median(ratios)
        aml = run["protocol"] == "aml"
        figures.append(figure(
            f"{'AML' if aml else 'SageMaker'} path at concurrency {run['concurrency']}: "
            f"{run['client']} / bare boto3", round(ratio, 2), "x",
            f">= {AML_TARGET}x" if aml else "reported", ratio >= AML_TARGET if aml else None,
            f"{run['calls_per_s']:.0f} vs {peer['calls_per_s']:.0f} calls/s "
            f"({run['records_per_call']} record(s) per call), {results['latency_ms']:.0f} ms "
            f"latency; median of {len(ratios)} interleaved rounds, spread {min(ratios):.2f}-"
            f"{max(ratios):.2f}; CPU {run['cpu_s_per_call'] * 1e3:.2f} vs "
            f"{peer['cpu_s_per_call'] * 1e3:.2f} ms per call"))
    return figures


def print_table(results: dict[str, Any]) -> None:
    print(f"client CPU bound (bare boto3, 1 thread, no latency; SageMaker: "
          f"{results['batch']} records/call)")
    for name, bound in results["bound"].items():
        print(f"  {name:<10} {bound['calls_per_s']:8.0f} calls/s wall   "
              f"{bound['cpu_s_per_call'] * 1e3:6.3f} ms CPU/call   "
              f"bound {bound['cpu_bound_calls_per_s']:8.0f} calls/s")
    print(f"\n{results['latency_ms']:.0f} ms added latency; ideal = min(concurrency / latency,"
          " client CPU bound)")
    print(f"  {'client':<17} {'conc':>4} {'calls/s':>8} {'records/s':>9} {'ideal':>7} "
          f"{'/ideal':>6} {'/bare':>6} {'CPU ms/call':>11} {'emu CPU ms':>10}")
    for run in results["runs"]:
        print(f"  {run['client']:<17} {run['concurrency']:>4} {run['calls_per_s']:>8.1f} "
              f"{run['records_per_s']:>9.0f} {run['ideal_calls_per_s']:>7.1f} "
              f"{run['ratio_to_ideal']:>6.2f} {run['ratio_to_bare']:>6.2f} "
              f"{run['cpu_s_per_call'] * 1e3:>11.3f} {run['emulator_cpu_s_per_call'] * 1e3:>10.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
