"""The fakes the benchmarks talk to, each in a subprocess of its own so that their CPU is
not charged to the code measured: moto server (S3) and the endpoint emulator."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from _common import clean_env

from amlproxy.emulator.process import terminate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MotoProcess:
    """``python -m moto.server`` on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        terminate(self.process, 10)


@contextmanager
def moto_process(timeout: float = 30.0) -> Iterator[MotoProcess]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env(),
    )
    moto = MotoProcess(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{moto.url}/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield moto
    finally:
        moto.stop()


@contextmanager
def emulator_process(*args: str) -> Iterator[Any]:
    """The endpoint emulator as a subprocess (``amlproxy.emulator.process``)."""
    from amlproxy.emulator.process import start_process

    emulator = start_process(args, env=clean_env())
    try:
        yield emulator
    finally:
        emulator.stop()


def s3_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3}),
    )
