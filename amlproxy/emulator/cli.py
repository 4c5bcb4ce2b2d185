"""``amlproxy emulator serve``: run the endpoint emulator until SIGINT/SIGTERM.

Prints the URL it listens on (the real port when ``--port 0``) as the first line of
stdout. Fault flags apply to ``--fault-target`` (default: every served model).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from amlproxy.cli import CommandParser, parse_args
from amlproxy.emulator.faults import LATENCY_DISTRIBUTIONS, FaultConfig
from amlproxy.emulator.httpserve import add_limit_flags, limits_from
from amlproxy.emulator.models import DEFAULT_MODEL, load_models
from amlproxy.emulator.server import EmulatorServer, serve_until_signalled
from amlproxy.errors import ConfigurationError

# flag -> (FaultConfig key, type, help)
_FAULT_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--latency-ms", "latency_ms", float, "added latency per answer, ms"),
    ("--latency-jitter-ms", "latency_jitter_ms", float, "spread of uniform/lognormal latency"),
    ("--throttle-rate", "throttle_rate", float, "share of calls throttled"),
    ("--error-rate", "error_rate", float, "share of calls answered with a 5xx"),
    ("--error-status", "error_status", int, "SageMaker 5xx: 500 InternalFailure or 503"),
    ("--timeout-rate", "timeout_rate", float, "share of calls never answered"),
    ("--timeout-s", "timeout_s", float, "how long an unanswered call is held before the drop"),
    ("--not-ready-for-s", "not_ready_for_s", float, "not-ready window from start, s"),
    ("--rps-limit", "rps_limit", float, "requests per second per endpoint (0: unlimited)"),
    ("--model-error-rate", "model_error_rate", float, "share of calls failing in the model"),
    ("--model-error-status", "model_error_status", int, "original status of a ModelError"),
    ("--seed", "seed", int, "seed of the fault sequence"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="amlproxy emulator",
        description="SageMaker InvokeEndpoint + Amazon ML Predict emulator with fault injection",
    )
    commands = parser.add_subparsers(dest="command", required=True,
                                     parser_class=CommandParser)
    serve = commands.add_parser("serve", help="serve the emulated endpoints")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help=f"serve a LogisticModel artifact as NAME (repeatable; {DEFAULT_MODEL} is "
        "always served, and overridden by a model of that name)",
    )
    serve.add_argument("--fault-target", default="*", help="model the fault flags apply to")
    serve.add_argument("--latency-dist", choices=LATENCY_DISTRIBUTIONS, default=None)
    for flag, key, kind, text in _FAULT_FLAGS:
        serve.add_argument(flag, dest=key, type=kind, default=None, help=text)
    add_limit_flags(serve)
    return parser


def fault_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The fault flags that were given, as FaultConfig keys."""
    keys = [key for _, key, _, _ in _FAULT_FLAGS] + ["latency_dist"]
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, build_parser())
    faults = fault_settings(args)
    try:
        FaultConfig().merged(faults)
        models = load_models(args.model)
        server = EmulatorServer(models, args.host, args.port, limits=limits_from(args))
        if args.fault_target != "*" and args.fault_target not in models:
            raise ConfigurationError(f"--fault-target {args.fault_target!r} is not served")
    except (ConfigurationError, ValueError) as exc:
        print(f"amlproxy emulator: {exc}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(url, flush=True)
        print(f"amlproxy emulator: serving {sorted(models)} at {url}", file=sys.stderr)

    try:
        asyncio.run(serve_until_signalled(server, ready, faults, args.fault_target))
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"amlproxy emulator: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    return 0
