"""``amlproxy local up | down | status``: the local stack from the command line.

``up`` runs in the foreground until Ctrl-C or SIGTERM and keeps a state file (pid,
endpoints, resources) while it runs; ``down`` sends SIGTERM to the pid of that file and
waits for the stack to stop; ``status`` prints what the file says if the stack is alive.
Exit codes: 0 success, 1 not running (``status``, ``down``), 2 configuration error.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amlproxy.errors import ConfigurationError
from amlproxy.local.config import DEFAULT_STATE_FILE, REGION, load_config

READY_LINE = "amlproxy local stack is up"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amlproxy local",
                                     description="the serverless flow on this machine, "
                                     "without Docker: moto, the endpoint emulator, the local API")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = commands.add_parser("up", help="start the stack (foreground; Ctrl-C stops it)")
    up.add_argument("--config", type=Path, help="TOML file: ports and SAM parameters")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, dest="api_port", help="local API port (default "
                    "8080; 0: a free port)")
    up.add_argument("--aws-port", type=int, dest="moto_port", help="moto server port "
                    "(default 5000; 0: a free port)")
    up.add_argument("--emulator-port", type=int, help="endpoint emulator port (default: free)")
    up.add_argument("--workers", type=int, help="API requests handled at once (default 32)")
    for command in (up, commands.add_parser("down", help="stop a running stack"),
                    commands.add_parser("status", help="is a stack running? its endpoints")):
        command.add_argument("--state-file", type=Path, help="where `up` records its pid and "
                             f"endpoints (default ./{DEFAULT_STATE_FILE})")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "up":
        return up(args)
    state_file = args.state_file or Path(DEFAULT_STATE_FILE)
    return down(state_file) if args.action == "down" else status(state_file)


def up(args: argparse.Namespace) -> int:
    from amlproxy.local.stack import LocalDeployment

    config = load_config(args.config, host=args.host, api_port=args.api_port,
                         moto_port=args.moto_port, emulator_port=args.emulator_port,
                         workers=args.workers, state_file=args.state_file)
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
        state = {"pid": os.getpid(), "endpoints": endpoints,
                 "resources": stack.resources.to_dict(), "started": time.time()}
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


def banner(state: dict[str, Any], input_prefix: str) -> str:
    """What ``up`` prints: the endpoints, then commands to try."""
    e, r = state["endpoints"], state["resources"]
    aws = f"aws --endpoint-url {e['aws']} --region {REGION}"
    sample = '{"age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": ' \
        '"Bachelors", "education-num": 13, "marital-status": "Never-married", ' \
        '"occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White", ' \
        '"sex": "Male", "capital-gain": 2174, "capital-loss": 0, "hours-per-week": 40, ' \
        '"native-country": "United-States"}'
    return "\n".join([
        f"{READY_LINE} (pid {state['pid']}; Ctrl-C or `amlproxy local down` stops it)",
        f"  api       {e['api']}",
        f"  aws       {e['aws']}",
        f"  emulator  {e['emulator']}",
        f"  playground {e['api']}/",
        f"  input     s3://{r['input_bucket']}/{input_prefix}",
        f"  output    s3://{r['output_bucket']}/",
        f"  table     {r['table']}",
        f"  topic     {r['topic_arn']}",
        f"  queue     {r['work_queue_url']}",
        "Try (any credentials; e.g. export AWS_ACCESS_KEY_ID=testing "
        "AWS_SECRET_ACCESS_KEY=testing):",
        f"  {aws} s3 cp examples/census-income-sample.csv "
        f"s3://{r['input_bucket']}/{input_prefix}",
        f"  curl -s -X POST {e['api']}/predict -H 'content-type: application/json' "
        f"-d '{sample}'",
        f"  {aws} sns publish --topic-arn {r['topic_arn']} --message '{sample}'",
        f"  {aws} sqs send-message --queue-url {r['work_queue_url']} --message-body "
        f"'{sample}'",
        f"  {aws} s3 ls --recursive s3://{r['output_bucket']}/",
        f"  {aws} dynamodb scan --table-name {r['table']}",
    ])


def status(state_file: Path) -> int:
    state = read_state(state_file)
    if state is None or not _alive(int(state["pid"])):
        print(f"no local stack is running ({state_file})")
        return 1
    print(json.dumps(state, indent=2))
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
