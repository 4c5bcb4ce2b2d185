"""The SageMaker multi-record path: amlproxy against a pydantic peer and bare boto3, at
the same concurrency, latency and batch size, in interleaved rounds.

    python bench/sagemaker_batch.py [--rows 30000] [--batches 50 200 500] [--rounds 5]
                                    [--gc-freeze]

The endpoint emulator runs as a subprocess (its CPU is not ours) with ``--latency-ms``
added. For each batch size, each round runs, one after the other:

- ``amlproxy``: the pipeline (read_csv over the CSV in memory, the census schema, the
  SageMaker backend with ``--concurrency`` workers and batches of that size, a JSON Lines
  results sink in memory): what the S3 trigger does between GetObject and PutObject;
- ``pydantic``: the same job as a user would write it on the same thread pool: csv.reader
  (line numbers kept), each batch validated in one ``TypeAdapter(list[CensusRecord])`` call
  (a batch with a bad record again record by record, its rejects written with their line,
  reasons and row), one ``InvokeEndpoint`` per batch with a CSV body, the answer parsed,
  JSON Lines out with amlproxy's result fields (key, line, row_id, label, scores, value,
  backend, model_id, the call's latency and attempts);
- ``bare boto3``: the same calls (one per batch of the same records, their bodies encoded
  in advance) on as many threads, nothing else: the client's bound on the same work.

After each round, bare boto3 also runs in a steady state: its threads kept busy for as
long as the amlproxy job took, with no first wave to start and no last one to wait for.
That rate is reported beside the figure (the figure itself compares the same work, as
the other peers do).

With ``--gc-freeze`` (as ``make bench`` runs it), the setup of every side is followed by
what the Lambda triggers do to the collector at the end of their init
(:func:`amlproxy.triggers._collector.after_init`: ``gc.freeze()`` and a first threshold
of 50,000); each side gets it, in the same process.

Figures: amlproxy's records/s over the peer's (median of the per-round ratios, with their
spread): at least 1.0x the pydantic peer at 200 and 500 records per call, at least 0.35x
bare boto3 at 500; the other sizes are reported. Writes
``bench/results/sagemaker_batch.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODEL, census_bytes, figure, setup_env, timed_loop, write_result
from _servers import emulator_process

setup_env()

from overhead import BytesSink  # noqa: E402

from amlproxy.backends.sagemaker import SageMakerBackend  # noqa: E402
from amlproxy.core.pipeline import Pipeline  # noqa: E402
from amlproxy.core.readers import read_csv  # noqa: E402
from amlproxy.core.retry import RetryPolicy  # noqa: E402
from amlproxy.core.schema import load_schema  # noqa: E402
from amlproxy.triggers._collector import THRESHOLDS, after_init  # noqa: E402

# (batch size, peer) -> amlproxy / peer, at least; the other pairs are reported
TARGETS = {(200, "pydantic"): 1.0, (500, "pydantic"): 1.0, (500, "bare boto3"): 0.35}
STEADY = "bare boto3, steady"  # kept busy for as long as the amlproxy job took


def amlproxy_job(url: str, batch: int, concurrency: int) -> Callable[[bytes], int]:
    schema = load_schema(MODEL)
    backend = SageMakerBackend(MODEL, schema_feature_names=schema.feature_names,
                               endpoint_url=url, region="us-east-1", max_batch_size=batch,
                               concurrency=concurrency, retry_policy=RetryPolicy())
    pipeline = Pipeline(schema, backend, concurrency=concurrency)

    def job(data: bytes) -> int:
        report = pipeline.run(read_csv(io.BytesIO(data), schema), source="bench",
                              sinks=[BytesSink()])
        return report.ok

    return job


def pydantic_job(url: str, batch: int, concurrency: int) -> Callable[[bytes], int]:
    """The peer: the same work as amlproxy's job, as a user would write it (see the
    module docstring): line numbers kept, a batch with a bad record validated again record
    by record (its rejects written with line, reasons and row, the others scored), and the
    same result fields as amlproxy's (latency and attempts of the call included)."""
    import boto3
    from botocore.config import Config
    from peers.census_model import BATCH, COLUMNS, FEATURES, CensusRecord
    from peers.scoring import reject_line, result_line
    from pydantic import ValidationError

    client = boto3.session.Session(region_name="us-east-1").client(
        "sagemaker-runtime", endpoint_url=url,
        config=Config(max_pool_connections=concurrency, retries={"mode": "standard"}))
    pool = ThreadPoolExecutor(concurrency)
    Batch = tuple[list[int], list[dict[str, Any]], list[list[str]]]

    def validated(lines: list[int], rows: list[dict[str, Any]], raws: list[list[str]]
                  ) -> tuple[list[int], list[CensusRecord], list[bytes]]:
        try:
            return lines, BATCH.validate_python(rows), []
        except ValidationError:  # one bad record must not fail its neighbours
            pass
        ok_lines, records, rejects = [], [], []
        for line, row, raw in zip(lines, rows, raws, strict=True):
            try:
                records.append(CensusRecord.model_validate(row))
                ok_lines.append(line)
            except ValidationError as exc:
                rejects.append(reject_line(line, exc, raw))
        return ok_lines, records, rejects

    def score(lines: list[int], rows: list[dict[str, Any]], raws: list[list[str]]
              ) -> tuple[list[bytes], list[bytes]]:
        lines, models, rejects = validated(lines, rows, raws)
        if not models:
            return [], rejects
        records = [r.features() for r in models]
        body = "\n".join(",".join("" if r[f] is None else str(r[f]) for f in FEATURES)
                         for r in records)
        started = time.perf_counter()
        answer = client.invoke_endpoint(EndpointName=MODEL, Body=body.encode(),
                                        ContentType="text/csv", Accept="text/csv")
        scores = [float(x) for x in answer["Body"].read().split()]
        latency_ms = (time.perf_counter() - started) * 1000.0
        attempts = answer["ResponseMetadata"].get("RetryAttempts", 0) + 1
        return [result_line("bench", line, ">50K" if p >= 0.5 else "<=50K",
                            {"<=50K": 1.0 - p, ">50K": p}, backend="sagemaker",
                            model_id=MODEL, latency_ms=latency_ms, attempts=attempts)
                for line, p in zip(lines, scores, strict=True)], rejects

    def batches(data: bytes) -> Iterator[Batch]:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig")), skipinitialspace=True)
        lines: list[int] = []
        rows: list[dict[str, Any]] = []
        raws: list[list[str]] = []
        for row in reader:
            if not row:
                continue
            lines.append(reader.line_num)
            rows.append(dict(zip(COLUMNS, row, strict=False)))
            raws.append(row)
            if len(rows) == batch:
                yield lines, rows, raws
                lines, rows, raws = [], [], []
        if rows:
            yield lines, rows, raws

    def job(data: bytes) -> int:
        out, rejected = io.BytesIO(), io.BytesIO()
        window: deque[Future[tuple[list[bytes], list[bytes]]]] = deque()
        done = 0

        def drain() -> int:
            results, rejects = window.popleft().result()
            out.write(b"".join(results))
            rejected.write(b"".join(rejects))
            return len(results) + len(rejects)

        for one in batches(data):
            window.append(pool.submit(score, *one))
            while len(window) >= 2 * concurrency:
                done += drain()
        while window:
            done += drain()
        return done

    return job


def bare_bodies(data: bytes, batch: int) -> list[bytes]:
    """The request bodies of the job's calls, encoded in advance: every record of ``data``
    in order, ``batch`` to a body (the split amlproxy's pipeline makes of it)."""
    from amlproxy.backends.sagemaker_codec import CsvEncoder

    schema = load_schema(MODEL)
    records = [schema.validate(r.fields) for r in read_csv(io.BytesIO(data), schema)
               if r.fields is not None]
    encoder = CsvEncoder(schema.feature_names)
    return [encoder.body(encoder.encode_batch(records[i:i + batch]))
            for i in range(0, len(records), batch)]


def bare_client(url: str, concurrency: int) -> Any:
    from amlproxy.backends._aws import make_client

    return make_client("sagemaker-runtime", concurrency=concurrency, region="us-east-1",
                       endpoint_url=url)


def bare_job(url: str, batch: int, concurrency: int, data: bytes, bodies: list[bytes]
             ) -> Callable[[bytes], int]:
    """Bare boto3 on the same work: the calls of the job (``bodies``, those of ``data``,
    encoded before any round) on ``concurrency`` threads, nothing else; returns the records
    scored."""
    encoded = {data: bodies}
    client = bare_client(url, concurrency)
    pool = ThreadPoolExecutor(concurrency)

    def call(body: bytes) -> int:
        answer = client.invoke_endpoint(EndpointName=MODEL, Body=body,
                                        ContentType="text/csv", Accept="text/csv")
        return len(answer["Body"].read().split())

    def job(given: bytes) -> int:
        bodies = encoded.get(given)
        if bodies is None:  # the warm-up's slice: encoded on first use, before any round
            bodies = encoded[given] = bare_bodies(given, batch)
        return sum(pool.map(call, bodies))

    return job


def steady_rate(url: str, batch: int, concurrency: int, bodies: list[bytes]
                ) -> Callable[[float], float]:
    """Records/s of bare ``InvokeEndpoint`` calls in a steady state: ``bodies`` (of
    ``batch`` records each, encoded in advance) on ``concurrency`` threads kept busy for
    the given seconds (no first or last wave of a job; reported beside the figures)."""
    client = bare_client(url, concurrency)

    def call(i: int) -> None:
        answer = client.invoke_endpoint(EndpointName=MODEL, Body=bodies[i % len(bodies)],
                                        ContentType="text/csv", Accept="text/csv")
        answer["Body"].read()

    return lambda seconds: float(timed_loop(call, concurrency, seconds)["calls_per_s"]) * batch


def rounds_of(jobs: dict[str, Callable[[bytes], int]], steady: Callable[[float], float],
              data: bytes, rows: int, rounds: int) -> dict[str, list[float]]:
    """Records per second of each job on the same input, per round (interleaved), and of
    bare boto3 kept busy for as long as the amlproxy job took (``steady``)."""
    rates: dict[str, list[float]] = {name: [] for name in [*jobs, STEADY]}
    for job in jobs.values():  # warm the connection pools
        job(data[: data.index(b"\n", len(data) // 20) + 1])
    steady(0.2)
    for _ in range(rounds):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            done = job(data)
            seconds = time.perf_counter() - t0
            assert done == rows, (name, done, rows)
            rates[name].append(done / seconds)
        rates[STEADY].append(steady(rows / rates["amlproxy"][-1]))
    return rates


def ratios_of(rates: dict[str, list[float]], peer: str) -> list[float]:
    """amlproxy's records/s over the peer's, round by round."""
    return [ours / theirs for ours, theirs in zip(rates["amlproxy"], rates[peer], strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() and the triggers' thresholds once the jobs are built, "
                             "as the Lambda triggers do "
                             "after init (every side of the comparison gets it)")
    args = parser.parse_args(argv)
    from amlproxy.emulator import EmulatorAdmin

    data = census_bytes(args.rows)
    results: dict[str, Any] = {"rows": args.rows, "concurrency": args.concurrency,
                               "latency_ms": args.latency_ms, "rounds": args.rounds,
                               "gc_freeze": args.gc_freeze, "batches": {}}
    figures = []
    with emulator_process() as emulator:
        EmulatorAdmin(emulator.url).set_faults(latency_ms=args.latency_ms)
        for batch in args.batches:
            bodies = bare_bodies(data, batch)  # (one encoding for both bare boto3 runs)
            jobs = {
                "amlproxy": amlproxy_job(emulator.url, batch, args.concurrency),
                "pydantic": pydantic_job(emulator.url, batch, args.concurrency),
                "bare boto3": bare_job(emulator.url, batch, args.concurrency, data, bodies),
            }
            steady = steady_rate(emulator.url, batch, args.concurrency, bodies)
            if args.gc_freeze:
                after_init()  # the collector as the triggers leave it after init
            rates = rounds_of(jobs, steady, data, args.rows, args.rounds)
            medians = {name: statistics.median(r) for name, r in rates.items()}
            results["batches"][str(batch)] = {"records_per_s": rates, "median": medians}
            print(f"batch {batch:>3}: " + ", ".join(
                f"{name} {value:,.0f} records/s" for name, value in medians.items()))
            for peer in ("pydantic", "bare boto3"):
                ratios = ratios_of(rates, peer)
                ratio = statistics.median(ratios)
                target = TARGETS.get((batch, peer))
                steady_note = "" if peer != "bare boto3" else (
                    f"; bare boto3 kept busy as long instead (no first or last wave): "
                    f"{medians[STEADY]:,.0f} records/s, amlproxy "
                    f"{statistics.median(ratios_of(rates, STEADY)):.2f}x of it")
                figures.append(figure(
                    f"SageMaker multi-record, {batch} per call: amlproxy / {peer}",
                    round(ratio, 2), "x", f">= {target}x" if target else "reported",
                    ratio >= target if target else None,
                    f"{medians['amlproxy']:,.0f} vs {medians[peer]:,.0f} records/s; median "
                    f"of {args.rounds} interleaved rounds, spread {min(ratios):.2f}-"
                    f"{max(ratios):.2f}; concurrency {args.concurrency}, "
                    f"{args.latency_ms:.0f} ms latency, {args.rows} rows" + steady_note
                    + (f"; gc.freeze() and a first threshold of {THRESHOLDS[0]:,} after "
                       "setup, as the triggers' init" if args.gc_freeze
                       else "")))
    write_result("sagemaker_batch", {**results, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
