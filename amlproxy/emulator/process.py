"""Run the emulator as a separate process (``python -m amlproxy.emulator serve``).

A process of its own keeps the emulator's CPU apart from the client's, which benchmarks
need, and proves the command starts, serves and stops.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    """A running ``amlproxy.emulator serve`` subprocess and the URL it printed."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux ``/proc``)."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); returns the exit status."""
        terminate(self.process, timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_process(
    args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> EmulatorProcess:
    """Start ``python -m amlproxy.emulator serve --host H --port P *args`` and wait for
    the URL line. The source tree is put on ``PYTHONPATH`` so that an uninstalled checkout
    works. stderr is inherited."""
    environment = dict(os.environ if env is None else env)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = str(_REPO_ROOT) + (os.pathsep + path if path else "")
    command = [sys.executable, "-m", "amlproxy.emulator", "serve", "--host", host]
    command += ["--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    return EmulatorProcess(process, wait_for_url(process, timeout, "the emulator process"))


def wait_for_url(process: subprocess.Popen[str], timeout: float, what: str) -> str:
    """The first line starting with ``http`` that ``process`` prints within ``timeout``;
    kills it and raises RuntimeError when none comes."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                break
            if selector.select(min(remaining, 0.2)):
                line = process.stdout.readline().strip()
                if line.startswith("http"):
                    return line
                if not line and process.poll() is not None:
                    break
    status = process.poll()
    if status is None:
        process.kill()
        process.wait()
    raise RuntimeError(f"{what} did not report its URL (exit status {status})")


def terminate(process: subprocess.Popen[Any], timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL and reap. True if it stopped on SIGTERM
    (or had already exited), False if it had to be killed."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
