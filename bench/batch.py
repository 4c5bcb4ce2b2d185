"""Batch throughput: the S3 trigger scoring a census-income file, next to the naive handler
a user of the Amazon ML blog post would have, in one run.

    python bench/batch.py [--rows 50000] [--naive-rows 300] [--latency-ms 20]

moto server (S3) and the endpoint emulator run as subprocesses, so their CPU is not ours.
The input object (``--rows`` valid census rows, cycled) is read from moto S3 by
``amlproxy.triggers.s3.handler`` with a real ``s3:ObjectCreated:Put`` event
(tests/events/s3_put.json), scored through the emulator with ``--latency-ms`` added, at
concurrency 32, and the results are written back to S3 as one object (no DynamoDB here:
moto's ~1,100 items/s would be what we measured). Measured side by side:

1. the naive handler, written the way the Amazon ML blog post did it: ``GetObject``, then
   one sequential ``predict`` per row, then one ``PutObject`` (on ``--naive-rows`` rows);
2. the S3 handler, AML backend (one record per call), concurrency 32;
3. the S3 handler, SageMaker backend (multi-record requests of up to 500 rows).

Figures: (2) / (1) >= 10, (3) / (1) >= 100. (The comparison with bare boto3 at the same
concurrency is bench/throughput.py's; the SageMaker multi-record path against its peers,
bench/sagemaker_batch.py's.) Writes ``bench/results/batch.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    MODEL,
    census_bytes,
    environ,
    figure,
    s3_event,
    setup_env,
    write_result,
)
from _servers import emulator_process, moto_process, s3_client

setup_env()

BUCKET = "amlproxy-bench"
CONCURRENCY = 32


class Context:
    """The attributes of the Lambda context object the handlers read."""

    function_name = "amlproxy-bench"
    aws_request_id = "bench"

    def __init__(self, timeout_s: float = 900.0) -> None:
        self.deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def make_naive_handler(moto_url: str, emulator_url: str) -> Callable[[Any, Any], Any]:
    """A handler as the Amazon ML blog post wrote it: clients with default settings, the
    whole object read, one ``predict`` per row in sequence, one ``PutObject``."""
    import boto3

    session = boto3.session.Session(region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=moto_url)
    ml = session.client("machinelearning", endpoint_url=emulator_url)
    from amlproxy.core.schema import load_schema

    columns = load_schema(MODEL).feature_names

    def handler(event: Any, context: Any) -> Any:
        for record in event["Records"]:
            bucket = record["s3"]["bucket"]["name"]
            key = record["s3"]["object"]["key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            out = []
            for row in csv.reader(io.StringIO(body), skipinitialspace=True):
                fields = dict(zip(columns, row[: len(columns)], strict=True))
                answer = ml.predict(MLModelId=MODEL, Record=fields, PredictEndpoint=emulator_url)
                out.append(json.dumps(answer["Prediction"]))
            s3.put_object(Bucket=bucket, Key="naive-output/" + key, Body="\n".join(out).encode())
        return {"rows": len(out)}

    return handler


def run_handler(event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Builds the runtime from ``env`` (cold start not counted), then times one event."""
    from amlproxy.triggers import _runtime
    from amlproxy.triggers.s3 import handler

    with environ(**env):
        _runtime.reset_runtime()
        runtime = _runtime.get_runtime()
        runtime.clients.client("s3")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the EMF metrics lines
            summary = handler(event, Context())
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        _runtime.reset_runtime()
    obj = summary["objects"][0]
    rows = int(obj["ok"])
    return {"rows": rows, "total": obj["total"], "seconds": wall, "cpu_s": cpu,
            "rows_per_s": rows / wall, "cpu_us_per_row": cpu / max(1, rows) * 1e6,
            "retries": obj.get("retries"), "results": obj.get("results"),
            "threads_after": threading.active_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--naive-rows", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--skip-aml", action="store_true", help="SageMaker path only")
    args = parser.parse_args(argv)
    from amlproxy.emulator import EmulatorAdmin

    data = census_bytes(args.rows)
    with moto_process() as moto, emulator_process() as emulator:
        admin = EmulatorAdmin(emulator.url)
        s3 = s3_client(moto.url)
        s3.create_bucket(Bucket=BUCKET)
        big_key, naive_key = f"input/census-{args.rows}.csv", f"input/naive-{args.naive_rows}.csv"
        etag = s3.put_object(Bucket=BUCKET, Key=big_key, Body=data)["ETag"].strip('"')
        naive_data = census_bytes(args.naive_rows)
        naive_etag = s3.put_object(Bucket=BUCKET, Key=naive_key, Body=naive_data)["ETag"]
        event = s3_event(BUCKET, big_key, etag, len(data))
        naive_event = s3_event(BUCKET, naive_key, naive_etag.strip('"'), len(naive_data))

        admin.set_faults(latency_ms=args.latency_ms)
        naive = make_naive_handler(moto.url, emulator.url)
        t0 = time.perf_counter()
        answer = naive(naive_event, Context())
        naive_s = time.perf_counter() - t0
        naive_rate = answer["rows"] / naive_s
        print(f"naive handler: {naive_rate:.1f} rows/s ({answer['rows']} rows)")

        common = {
            "AMLPROXY_ENDPOINT_URL": emulator.url, "AMLPROXY_AWS_ENDPOINT_URL": moto.url,
            "AMLPROXY_CONCURRENCY": str(CONCURRENCY), "AMLPROXY_SINKS": "s3",
            "AMLPROXY_LABELS": "<=50K,>50K", "AMLPROXY_LOG_LEVEL": "WARNING",
            "AMLPROXY_REGION": "us-east-1",
        }
        runs: dict[str, Any] = {}
        sagemaker_env = {**common, "AMLPROXY_BACKEND": "sagemaker",
                         "AMLPROXY_SAGEMAKER_ENDPOINT": MODEL}
        runs["sagemaker"] = run_handler(event, sagemaker_env)
        print(f"S3 handler, SageMaker (multi-record): {runs['sagemaker']['rows_per_s']:.0f} rows/s")
        if not args.skip_aml:
            aml_env = {**common, "AMLPROXY_BACKEND": "aml", "AMLPROXY_AML_MODEL_ID": MODEL,
                       "AMLPROXY_AML_PREDICT_ENDPOINT": emulator.url}
            runs["aml"] = run_handler(event, aml_env)
            print(f"S3 handler, AML (1 record/call): {runs['aml']['rows_per_s']:.0f} rows/s")
        counts = admin.counts()
        for name, run in runs.items():
            assert run["rows"] == args.rows, (name, run)
            head = s3.head_object(Bucket=BUCKET, Key=run["results"].split("/", 3)[3])
            run["results_bytes"] = head["ContentLength"]

    figures = []
    if "aml" in runs:
        aml = runs["aml"]["rows_per_s"]
        figures.append(figure(
            "batch: S3 handler AML path / naive handler", round(aml / naive_rate, 1), "x",
            ">= 10x", aml / naive_rate >= 10,
            f"{aml:.0f} vs {naive_rate:.1f} rows/s, {args.rows} rows, {args.latency_ms:.0f} "
            f"ms latency, concurrency {CONCURRENCY}; {runs['aml']['cpu_us_per_row']:.0f} us "
            "CPU/row"))
    sm = runs["sagemaker"]["rows_per_s"]
    figures.append(figure(
        "batch: S3 handler SageMaker path (multi-record) / naive handler",
        round(sm / naive_rate, 1), "x", ">= 100x", sm / naive_rate >= 100,
        f"{sm:.0f} vs {naive_rate:.1f} rows/s; "
        f"{runs['sagemaker']['cpu_us_per_row']:.1f} us CPU/row"))
    write_result("batch", {
        "rows": args.rows, "latency_ms": args.latency_ms, "concurrency": CONCURRENCY,
        "naive": {"rows": answer["rows"], "seconds": naive_s,
                                      "rows_per_s": naive_rate},
        "handler": runs, "emulator_counts": counts, "figures": figures,
    })
    os.environ.pop("AMLPROXY_BACKEND", None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
