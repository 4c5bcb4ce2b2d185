"""``amlproxy local up`` as a subprocess (end-to-end tests, scripts): start it, read the
endpoints it prints, stop it with SIGTERM.

    stack = start_local_stack(Path("/tmp/work"))
    stack.endpoints["api"], stack.endpoints["aws"], stack.endpoints["lambda"]...
    stack.stop()
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from amlproxy.emulator.process import terminate

_SOURCE_ROOT = Path(__file__).resolve().parents[2]
_ENDPOINT = re.compile(r"^  (api|aws|emulator|lambda)\s+(http://\S+)$")


@dataclass
class LocalStackProcess:
    """A running ``amlproxy local up``: its process, state file, endpoints and banner."""

    process: subprocess.Popen[str]
    state_file: Path
    endpoints: dict[str, str] = field(default_factory=dict)
    banner: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait (kill after ``timeout``, and raise TimeoutExpired); the exit
        status."""
        if not terminate(self.process, timeout):
            raise subprocess.TimeoutExpired(self.process.args, timeout)
        return self.process.returncode


def start_local_stack(workdir: Path, *extra: str, timeout: float = 60.0) -> LocalStackProcess:
    """``amlproxy local up --port 0 --aws-port 0 *extra`` run in ``workdir`` (its state
    file there too); returns once the banner is printed. The source tree is put on
    ``PYTHONPATH`` so that an uninstalled checkout works; stderr is discarded."""
    state_file = workdir / "local-state.json"
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_SOURCE_ROOT) + (os.pathsep + path if path else "")
    command = [sys.executable, "-m", "amlproxy", "local", "up", "--port", "0", "--aws-port",
               "0", "--state-file", str(state_file), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env, cwd=workdir)
    stack = LocalStackProcess(process, state_file)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=0.2).rstrip("\n")
        except queue.Empty:
            continue
        stack.banner.append(line)
        match = _ENDPOINT.match(line)
        if match:
            stack.endpoints[match.group(1)] = match.group(2)
        if len(stack.endpoints) == 4 and "dynamodb scan" in line:
            return stack
    stack.stop()
    raise RuntimeError(f"the local stack did not come up: {stack.banner}")


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:  # until the process closes its stdout
        lines.put(line)
