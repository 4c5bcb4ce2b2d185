"""The local API keeps answering its other clients while it is attacked: a slowloris (many
connections sending their heads a byte at a time) and a crowd of idle connections.

The API is the real one (the API function with the local model, on the local API server).
``make test`` runs a small attack against tight limits; the slow suite runs the issue's
(500 slowloris connections and 2,000 idle ones) against the default limits.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from amlproxy.core.schema import load_schema
from amlproxy.emulator.httpserve import HttpLimits
from amlproxy.local.api_server import ApiServerThread, LocalApi
from amlproxy.local.runtime_api import Outcome
from amlproxy.triggers import api
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import census_record


def ensure_file_descriptors(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` (skip if the hard one is lower):
    the test holds the attackers' sockets and the server's in one process."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def in_process(handler: Any) -> Any:
    """The API function called in this process (the transport is under test here, not the
    Lambda service), its answer as the service's invocation outcome."""

    def invoke(event: dict[str, Any]) -> Outcome:
        return Outcome("ok", orjson.dumps(handler(event, LambdaContext())))

    return invoke


@contextmanager
def local_api(monkeypatch: pytest.MonkeyPatch, limits: HttpLimits) -> Iterator[ApiServerThread]:
    use_env(monkeypatch, backend="local")
    pool = ThreadPoolExecutor(8)
    server = ApiServerThread(LocalApi(in_process(api.handler), pool,
                                      load_schema("census-income")),
                             "127.0.0.1", 0, limits=limits)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        pool.shutdown()


def predict(server: ApiServerThread) -> tuple[int, float]:
    """One POST /predict from a well-behaved client: (status, seconds)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/predict", body=json.dumps(census_record()),
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.status, time.monotonic() - started
    finally:
        connection.close()


class Slowloris:
    """``count`` connections that each send a request head one byte at a time."""

    def __init__(self, server: ApiServerThread, count: int, every_s: float = 0.5) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                        for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\n")
            sock.setblocking(False)
        self.cut = 0  # connections the server closed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, args=(every_s,), daemon=True)
        self._thread.start()

    def _drip(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            for sock in self.sockets:
                try:
                    sock.send(b"X")
                except BlockingIOError:
                    pass
                except OSError:
                    continue

    def count_cut(self) -> int:
        """How many of the connections the server has closed (after answering 408)."""
        cut = 0
        for sock in self.sockets:
            try:
                data = sock.recv(4096)
                cut += data == b"" or data.startswith(b"HTTP/1.1 408")
            except BlockingIOError:
                pass
            except OSError:
                cut += 1
        return cut

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


def idle_crowd(server: ApiServerThread, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", server.port), timeout=5)
            for _ in range(count)]


def attack_and_check(monkeypatch: pytest.MonkeyPatch, limits: HttpLimits, *,
                     slowloris: int, idle: int, header_timeout_s: float) -> dict[str, Any]:
    ensure_file_descriptors(2 * (slowloris + idle) + 512)
    with local_api(monkeypatch, limits) as server:
        assert predict(server)[0] == 200
        attack = Slowloris(server, slowloris)
        crowd = idle_crowd(server, idle)
        try:
            time.sleep(0.2)
            connections = server.http.connections
            assert len(connections) <= limits.max_connections
            answers = [predict(server) for _ in range(20)]
            assert [status for status, _ in answers] == [200] * 20
            slowest = max(seconds for _, seconds in answers)
            assert slowest < 2.0, f"a request took {slowest:.2f} s during the attack"
            time.sleep(header_timeout_s + 1.0)
            cut = attack.count_cut()
            assert cut == slowloris, f"{slowloris - cut} slowloris connections still open"
            assert predict(server)[0] == 200
            return {"slowest_s": slowest, "shed": connections.shed,
                    "timed_out": connections.timed_out, "open": len(connections)}
        finally:
            attack.close()
            for sock in crowd:
                sock.close()


def test_a_small_attack_leaves_the_local_api_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = HttpLimits(max_connections=64, header_timeout_s=1.0, idle_timeout_s=30.0)
    figures = attack_and_check(monkeypatch, limits, slowloris=40, idle=200, header_timeout_s=1.0)
    assert figures["shed"] >= 200 + 40 + 1 - 64  # idle connections made room for the rest


@pytest.mark.slow
def test_500_slowloris_and_2000_idle_connections_leave_the_local_api_answering(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's attack against the default limits (1024 connections at most, a 10 s
    header timeout): the server sheds idle connections, cuts the slowloris at 10 s, and
    answers every other client meanwhile."""
    ensure_file_descriptors(2 * 2500 + 512)
    limits = HttpLimits()
    assert limits.max_connections == 1024 and limits.header_timeout_s == 10.0
    figures = attack_and_check(monkeypatch, limits, slowloris=500, idle=2000,
                               header_timeout_s=limits.header_timeout_s)
    with capsys.disabled():
        print(f"\nlocal API under attack: {json.dumps(figures)}")
    assert figures["shed"] >= 2500 - 1024
