"""``amlproxy local up | down | status | progress``: the local stack from the command line.

``up`` runs in the foreground until Ctrl-C or SIGTERM and keeps a state file (pid,
endpoints, resources) while it runs; ``down`` sends SIGTERM to the pid of that file and
waits for the stack to stop; ``status`` asks the running stack for its functions, their
workers and counts, its queues and the objects scored in chunks (``--json``: all of it as
JSON); ``progress [S3-URI]`` shows those objects only: chunks done out of all, status and
counts (:mod:`amlproxy.local.progress`).
Exit codes: 0 success, 1 not running (``status``, ``down``, ``progress``) or no such
object (``progress URI``), 2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amlproxy.cli import CommandParser, parse_args
from amlproxy.errors import ConfigurationError
from amlproxy.local.config import DEFAULT_STATE_FILE, load_config
from amlproxy.local.progress import ObjectProgress, matches, progress_lines
from amlproxy.local.texts import banner, status_text


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="amlproxy local",
                                     description="the serverless flow on this machine, "
                                     "without Docker: moto, the endpoint emulator, the local API")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                     parser_class=CommandParser)
    up = commands.add_parser("up", help="start the stack (foreground; Ctrl-C stops it)")
    up.add_argument("--config", type=Path, help="TOML file: ports and SAM parameters")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, dest="api_port", help="local API port (default "
                    "8080; 0: a free port)")
    up.add_argument("--aws-port", type=int, dest="moto_port", help="moto server port "
                    "(default 5000; 0: a free port)")
    up.add_argument("--emulator-port", type=int, help="endpoint emulator port (default: free)")
    up.add_argument("--workers", type=int, help="API requests handled at once (default 32)")
    up.add_argument("--lambda-port", type=int, help="Lambda Invoke API port (default: free)")
    up.add_argument("--template", type=Path, help="SAM template (default sam/template.yaml)")
    _service_arguments(up)
    status_command = commands.add_parser("status", help="is a stack running? its functions, "
                                         "workers, counts and queues")
    status_command.add_argument("--json", action="store_true", help="print JSON")
    progress_command = commands.add_parser(
        "progress", help="objects scored in chunks: chunks done out of all, status, counts")
    progress_command.add_argument("uri", nargs="?", help="one object, s3://bucket/key "
                                  "(any version) or ...?versionId=V (default: every object)")
    progress_command.add_argument("--json", action="store_true", help="print JSON")
    for command in (up, commands.add_parser("down", help="stop a running stack"),
                    status_command, progress_command):
        command.add_argument("--state-file", type=Path, help="where `up` records its pid and "
                             f"endpoints (default ./{DEFAULT_STATE_FILE})")
    return parser


def _service_arguments(up: argparse.ArgumentParser) -> None:
    """The flags of the local Lambda service."""
    up.add_argument("--timeout", type=float, help="override every function's timeout, "
                    "seconds (the worker is killed at it, as Lambda does)")
    up.add_argument("--chaos", type=float, help="kill each invocation with this "
                    "probability, at a random moment of its duration (default 0)")
    up.add_argument("--seed", type=int, help="seed of --chaos (default 0)")
    up.add_argument("--log-format", choices=("Text", "JSON"), type=_log_format,
                    help="Lambda log format of every function (default: the template's "
                    "LoggingConfig.LogFormat)")
    up.add_argument("--log-output", choices=("stdout", "telemetry"), help="where workers "
                    "write their logs: stdout, or the telemetry fd (_LAMBDA_TELEMETRY_LOG_FD)")
    up.add_argument("--runtime-client", choices=("auto", "awslambdaric", "builtin"),
                    help="the workers' runtime interface client (default auto: awslambdaric "
                    "where installed, else the built-in loop)")
    up.add_argument("--quiet", dest="echo_logs", action="store_false", default=None,
                    help="do not print the functions' log records on stderr")
    up.add_argument("--no-prewarm", dest="prewarm", action="store_false", default=None,
                    help="start no worker before the first invocation (a faster start; "
                    "init errors then show at the first invocation)")


def _log_format(value: str) -> str:
    return {"text": "Text", "json": "JSON"}.get(value.lower(), value)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv, build_parser())
    if args.action == "up":
        return up(args)
    state_file = args.state_file or Path(DEFAULT_STATE_FILE)
    if args.action == "progress":
        return progress(state_file, args.uri, args.json)
    return down(state_file) if args.action == "down" else status(state_file, args.json)


def require_local_extra() -> None:
    """Raises ModuleNotFoundError (the CLI names the extra in one line) when what the
    ``local`` extra installs is missing: moto runs in a process of its own, so its absence
    would only show as a server that never starts."""
    import importlib.util

    for name in ("moto", "yaml"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # in sys.modules as None: blocked
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def up(args: argparse.Namespace) -> int:
    require_local_extra()
    from amlproxy.local.stack import LocalDeployment

    config = load_config(args.config, host=args.host, api_port=args.api_port,
                         moto_port=args.moto_port, emulator_port=args.emulator_port,
                         workers=args.workers, state_file=args.state_file,
                         lambda_port=args.lambda_port, template=args.template,
                         timeout=args.timeout, chaos=args.chaos, seed=args.seed,
                         log_format=args.log_format, log_output=args.log_output,
                         runtime_client=args.runtime_client, echo_logs=args.echo_logs,
                         prewarm=args.prewarm)
    running = read_state(config.state_file)
    if running is not None and _alive(int(running["pid"])):
        raise ConfigurationError(f"a local stack is already running (pid {running['pid']}, "
                                 f"{config.state_file}); `amlproxy local down` stops it")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_sigterm(signum: int, frame: Any) -> None:
        if not stop.is_set() and stack.endpoints:
            stop.set()
        else:  # still starting: interrupt the start itself
            raise KeyboardInterrupt

    stack = LocalDeployment(config)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        try:
            endpoints = stack.start()
        except OSError as exc:
            raise ConfigurationError(f"cannot start the local stack: {exc}") from None
        assert stack.resources is not None
        assert stack.service is not None
        state = {"pid": os.getpid(), "endpoints": endpoints,
                 "resources": stack.resources.to_dict(), "started": time.time(),
                 "runtime_client": stack.service.runtime_client,
                 "functions": sorted(stack.service.pools)}
        config.state_file.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        print(banner(state, config.param("InputPrefix")), flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("amlproxy local stack: stopping", file=sys.stderr, flush=True)
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        _remove_state(config.state_file, os.getpid())
    print("amlproxy local stack: stopped", file=sys.stderr, flush=True)
    return 0


def _live_status(state_file: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The state file and what the running stack answers (None: no stack is running)."""
    state = read_state(state_file)
    if state is None or not _alive(int(state["pid"])):
        print(f"no local stack is running ({state_file})")
        return None
    try:
        with urllib.request.urlopen(state["endpoints"]["lambda"] + "/local/status",
                                    timeout=10) as answer:
            live = json.loads(answer.read())
    except (OSError, KeyError, ValueError) as exc:
        live = {"error": f"the stack did not answer its status: {exc}"}
    return state, live


def progress(state_file: Path, uri: str | None = None, as_json: bool = False) -> int:
    found = _live_status(state_file)
    if found is None:
        return 1
    live = found[1]
    objects = live.get("objects", [])
    if "error" in live or not isinstance(objects, list):
        print(live.get("error") or f"the chunk table could not be read: {objects['error']}")
        return 1
    chosen = [o for o in objects if matches(ObjectProgress(**{
        k: v for k, v in o.items() if k != "percent"}), uri)]
    if as_json:
        print(json.dumps(chosen, indent=2))
    else:
        print("\n".join(progress_lines(chosen)))
    return 1 if uri is not None and not chosen else 0


def status(state_file: Path, as_json: bool = False) -> int:
    found = _live_status(state_file)
    if found is None:
        return 1
    state, live = found
    if as_json:
        print(json.dumps({**state, "status": live}, indent=2))
    else:
        print(status_text(state, live))
    return 0


def down(state_file: Path, timeout: float = 30.0) -> int:
    state = read_state(state_file)
    if state is None or not _alive(int(state["pid"])):
        print(f"no local stack is running ({state_file})")
        _remove_state(state_file, None)
        return 1
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            print(f"the local stack (pid {pid}) did not stop within {timeout:.0f} s",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"stopped the local stack (pid {pid})")
    return 0


def read_state(state_file: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "pid" in state else None


def _remove_state(state_file: Path, pid: int | None) -> None:
    state = read_state(state_file)
    if state is not None and (pid is None or state["pid"] == pid):
        state_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Is ``pid`` a running ``amlproxy local up``? (A zombie has stopped; where /proc
    exists, a pid reused by another program is not ours.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return state != "Z" and b"local" in command and b"up" in command
    return True
