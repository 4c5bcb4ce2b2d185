"""moto server in a process of its own: ``python -m amlproxy.local.moto_process HOST PORT``.

It prints its URL, serves until SIGTERM or SIGINT, then stops. A worker killed mid-write,
or one that hangs, cannot take the fake AWS down with it, and the state it holds outlives
every worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from amlproxy.emulator.process import terminate, wait_for_url

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class MotoProcess:
    """A running moto server process and its URL."""

    process: subprocess.Popen[str]
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.process, timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_moto(host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0) -> MotoProcess:
    """Start moto server on ``host:port`` (0: a free port) and wait until it serves."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_SOURCE_ROOT) + (os.pathsep + path if path else "")
    process = subprocess.Popen([sys.executable, "-m", "amlproxy.local.moto_process", host,
                                str(port)], stdout=subprocess.PIPE, text=True, env=env)
    return MotoProcess(process, wait_for_url(process, timeout, "moto server"))


def main(argv: list[str]) -> int:
    from moto.server import ThreadedMotoServer

    host, port = argv[1], int(argv[2])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    print(f"http://{bound_host}:{bound_port}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
