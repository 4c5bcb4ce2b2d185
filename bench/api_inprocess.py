"""The API handler in process: amlproxy's against a Powertools resolver with Parser.

    python bench/api_inprocess.py [--requests 2000] [--rounds 7]

Both handlers get the same API Gateway HTTP API event (tests/events/
apigateway_http_api_proxy.json, ``POST /predict`` with one census record as JSON) and
score it with the bundled model in process, so that what is measured is each handler's
own work: event parsing, validation, routing, the answer, logs and metrics (both on; their
output goes to memory).

- ``amlproxy``: ``amlproxy.triggers.api.handler`` with ``AMLPROXY_BACKEND=local``;
- ``powertools``: bench/peers/powertools_api.py's handler: ``APIGatewayHttpResolver``, the
  record parsed with Parser into the census model, Logger and Metrics decorators.

Process CPU per request, in interleaved rounds. Figure: amlproxy / powertools, the median
of the per-round ratios with their spread; target <= 0.6x. Writes
``bench/results/api_inprocess.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODEL, ROOT, census_bytes, environ, figure, setup_env, write_result

setup_env()
TARGET = 0.6


class Context:
    """The Lambda context attributes both handlers read."""

    function_name = "census-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:census-api"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def predict_event() -> dict[str, Any]:
    from amlproxy.core.readers import read_csv
    from amlproxy.core.schema import load_schema

    schema = load_schema(MODEL)
    row = next(read_csv(io.BytesIO(census_bytes(1)), schema))
    event: dict[str, Any] = copy.deepcopy(json.loads(
        (ROOT / "tests" / "events" / "apigateway_http_api_proxy.json").read_text()))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/predict"
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"] = {k.lower(): v for k, v in event["headers"].items()
                        if k.lower() != "content-type"} | {"content-type": "application/json"}
    event["body"], event["isBase64Encoded"] = json.dumps(row.fields), False
    event["queryStringParameters"] = None
    return event


def amlproxy_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from amlproxy.triggers import _runtime
    from amlproxy.triggers.api import handler

    with environ(AMLPROXY_BACKEND="local", AMLPROXY_LOG_LEVEL="WARNING"):
        _runtime.reset_runtime()
        _runtime.get_runtime()  # built once, as at a cold start
    return handler


def powertools_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from peers import powertools_api

    from amlproxy.localmodel.logreg import load_bundled

    return powertools_api.make_api_handler(load_bundled().predict)


def cpu_per_request(handler: Callable[[dict[str, Any], Any], dict[str, Any]],
                    event: dict[str, Any], requests: int) -> float:
    context = Context()
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics and logs
        t0 = time.process_time()
        for _ in range(requests):
            answer = handler(event, context)
        seconds = time.process_time() - t0
    assert answer["statusCode"] == 200, answer
    return seconds / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    event = predict_event()
    handlers = {"amlproxy": amlproxy_handler(), "powertools": powertools_handler()}
    for handler in handlers.values():
        cpu_per_request(handler, event, 50)  # warm up
    runs: dict[str, list[float]] = {name: [] for name in handlers}
    for _ in range(args.rounds):
        for name, handler in handlers.items():
            runs[name].append(cpu_per_request(handler, event, args.requests))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    ratios = [ours / theirs for ours, theirs in zip(runs["amlproxy"], runs["powertools"],
                                                   strict=True)]
    ratio = statistics.median(ratios)
    for name, values in runs.items():
        print(f"{name:<11} {medians[name]:7.1f} us CPU per request (rounds "
              + ", ".join(f"{v:.0f}" for v in values) + ")")
    figures = [figure(
        "in-process API handler, amlproxy / Powertools resolver with Parser", round(ratio, 2),
        "x", f"<= {TARGET}x", ratio <= TARGET,
        f"{medians['amlproxy']:.1f} vs {medians['powertools']:.1f} us CPU per request (one "
        f"census record, JSON, local model); median of {args.rounds} interleaved rounds, "
        f"spread {min(ratios):.2f}-{max(ratios):.2f}")]
    write_result("api_inprocess", {"requests": args.requests, "rounds": args.rounds,
                                   "us_per_request": runs, "median": medians,
                                   "ratios": ratios, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
