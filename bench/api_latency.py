"""API latency: the local API (``amlproxy.local.api_server`` running the API function,
SageMaker backend) under an open-loop load generator, next to the emulator alone.

    python bench/api_latency.py [--rates 100 400] [--seconds 15] [--rounds 5] [--latency-ms 20]

The emulator (20 ms added latency) and the local API each run in a subprocess of their
own; the load generator (asyncio, keep-alive connections, one request per scheduled slot
at a fixed rate, latency counted from the slot so a stall is not hidden) runs here. At
each rate it alternates ``--rounds`` runs of the emulator's own ``InvokeEndpoint`` and of
the API's ``POST /predict`` (one census record, JSON). Each percentile (p50, p99 of the
API, of the emulator, and of their difference: what the proxy adds) is the median over
the rounds, given with its spread (lowest-highest round): one noisy round moves neither.
Reported, with no target. Writes ``bench/results/api_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    MODEL,
    census_bytes,
    clean_env,
    figure,
    percentile,
    setup_env,
    write_result,
)
from _servers import emulator_process

setup_env()
_PERCENTILES: dict[str, Any] = {
    "api_p50_ms": lambda r: r["api"]["p50_ms"], "api_p99_ms": lambda r: r["api"]["p99_ms"],
    "emulator_p50_ms": lambda r: r["emulator"]["p50_ms"],
    "emulator_p99_ms": lambda r: r["emulator"]["p99_ms"],
    "added_p50_ms": lambda r: r["added_p50_ms"], "added_p99_ms": lambda r: r["added_p99_ms"],
}


def _median_and_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)

SERVE = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from amlproxy.core.schema import load_schema
import orjson
from amlproxy.local.api_server import ApiServerThread, LocalApi
from amlproxy.local.runtime_api import Outcome
from amlproxy.triggers.api import handler
from amlproxy.triggers._runtime import get_runtime
get_runtime()  # the cold start is not what this measures

class Context:  # what the handler reads from Lambda's context object
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 30_000

def invoke(event):  # the API function in this process, its answer as an invocation's
    return Outcome("ok", orjson.dumps(handler(event, Context())))

app = LocalApi(invoke, ThreadPoolExecutor(32), load_schema("census-income"))
server = ApiServerThread(app, "127.0.0.1", 0)
print(server.start(), flush=True)
sys.stdin.read()
server.stop()
"""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status


async def open_loop(host: str, port: int, raw: bytes, rate: float, seconds: float
                    ) -> dict[str, Any]:
    idle: list[Connection] = []
    latencies: list[float] = []
    errors = 0

    async def one(slot: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else Connection(*await asyncio.open_connection(host, port))
        try:
            status = await conn.request(raw)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            conn.writer.close()
            return
        latencies.append((time.perf_counter() - slot) * 1000.0)
        if status != 200:
            errors += 1
        idle.append(conn)

    # warm-up: a few sequential requests open connections and fill caches
    for _ in range(20):
        await one(time.perf_counter())
    latencies.clear()
    tasks = []
    start = time.perf_counter() + 0.05
    count = int(rate * seconds)
    for i in range(count):
        slot = start + i / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(slot)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    return {"requests": count, "errors": errors, "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies),
            "achieved_rps": count / (time.perf_counter() - start)}


def http_post(path: str, body: bytes, content_type: str, host: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Accept: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 400.0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per rate and target")
    parser.add_argument("--rounds", type=int, default=5, help="alternated runs per rate")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    import orjson

    from amlproxy.core.readers import read_csv
    from amlproxy.core.schema import load_schema
    from amlproxy.emulator import EmulatorAdmin

    schema = load_schema(MODEL)
    row = next(read_csv(io.BytesIO(census_bytes(1)), schema))
    assert row.fields is not None
    record = schema.validate(row.fields)
    features = [str(record[name]) for name in schema.feature_names]
    results: dict[str, Any] = {"latency_ms": args.latency_ms, "seconds": args.seconds,
                               "rates": {}}
    with emulator_process() as emulator:
        EmulatorAdmin(emulator.url).set_faults(latency_ms=args.latency_ms)
        env = clean_env(AMLPROXY_BACKEND="sagemaker", AMLPROXY_SAGEMAKER_ENDPOINT=MODEL,
                        AMLPROXY_ENDPOINT_URL=emulator.url, AMLPROXY_REGION="us-east-1",
                        AMLPROXY_LOG_LEVEL="WARNING", AMLPROXY_METRICS="false",
                        AMLPROXY_CONCURRENCY="32")
        api = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        try:
            assert api.stdout is not None
            api_url = api.stdout.readline().strip()
            if not api_url.startswith("http"):
                raise RuntimeError("the local API did not start")
            emu_host, emu_port = emulator.url.removeprefix("http://").split(":")
            api_host, api_port = api_url.removeprefix("http://").split(":")
            emu_raw = http_post(f"/endpoints/{MODEL}/invocations", ",".join(features).encode(),
                                "text/csv", emu_host)
            api_raw = http_post("/predict", orjson.dumps(row.fields), "application/json",
                                api_host)
            for rate in args.rates:
                rounds = []
                for _ in range(args.rounds):  # interleaved: a noisy moment hits one round
                    emu_round = asyncio.run(open_loop(emu_host, int(emu_port), emu_raw, rate,
                                                      args.seconds / args.rounds))
                    api_round = asyncio.run(open_loop(api_host, int(api_port), api_raw, rate,
                                                      args.seconds / args.rounds))
                    rounds.append({"emulator": emu_round, "api": api_round,
                                   "added_p50_ms": api_round["p50_ms"] - emu_round["p50_ms"],
                                   "added_p99_ms": api_round["p99_ms"] - emu_round["p99_ms"]})
                summary = {key: _median_and_spread([get(r) for r in rounds])
                           for key, get in _PERCENTILES.items()}
                results["rates"][str(int(rate))] = {"rounds": rounds, **summary}
                print(f"{rate:5.0f} rps (median of {len(rounds)} rounds): emulator p50 "
                      f"{summary['emulator_p50_ms'][0]:.1f} p99 "
                      f"{summary['emulator_p99_ms'][0]:.1f} ms; API p50 "
                      f"{summary['api_p50_ms'][0]:.1f} p99 {summary['api_p99_ms'][0]:.1f} ms;"
                      f" added p50 {summary['added_p50_ms'][0]:.1f} p99 "
                      f"{summary['added_p99_ms'][0]:.1f} ms; errors "
                      f"{sum(r['api']['errors'] for r in rounds)}")
        finally:
            if api.stdin:
                api.stdin.close()
            try:
                api.wait(10)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
    figures = []
    for rate, run in results["rates"].items():
        def shown(key: str, run: dict[str, Any] = run) -> str:
            value, low, high = run[key]
            return f"{value:.1f} ms ({low:.1f}-{high:.1f})"

        figures.append(figure(
            f"API latency added at {rate} rps (p50; p99)", round(run["added_p50_ms"][0], 2),
            "ms", "reported", None,
            f"p50 added {shown('added_p50_ms')}, p99 added {shown('added_p99_ms')}: medians "
            f"of {len(run['rounds'])} interleaved rounds (lowest-highest); API p50 "
            f"{shown('api_p50_ms')}, p99 {shown('api_p99_ms')}; emulator alone p50 "
            f"{shown('emulator_p50_ms')}, p99 {shown('emulator_p99_ms')}; errors "
            f"{sum(r['api']['errors'] for r in run['rounds'])}"))
    errors = sum(r["api"]["errors"] for run in results["rates"].values() for r in run["rounds"])
    if errors:  # latencies of failed requests measure nothing: no figure from this run
        print(f"{errors} API request(s) failed: no figures written", file=sys.stderr)
        return 1
    write_result("api_latency", {**results, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
