"""The dev servers' HTTP/1.1 core over real sockets: framing per RFC 9112, what it refuses,
the body and head caps, timeouts, backpressure and the connection cap."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, BinaryIO

import pytest

from amlproxy.emulator.httpcore import Request, Response
from amlproxy.emulator.httpserve import HttpLimits, default_max_connections
from amlproxy.local.api_server import ApiServerThread

Answer = tuple[int, dict[str, str], bytes]


def echo(request: Request) -> Response:
    """Answers with what it understood of the request."""
    summary = f"{request.method} {request.path}?{request.query} {len(request.body)}:".encode()
    return Response(200, summary + request.body, [("Content-Type", "text/plain")])


@contextmanager
def serving(app: Callable[[Request], Any] = echo, **limits: Any) -> Iterator[ApiServerThread]:
    server = ApiServerThread(app, "127.0.0.1", 0, limits=HttpLimits(**limits))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: ApiServerThread, timeout: float = 5.0, sndbuf: int | None = None
            ) -> socket.socket:
    if sndbuf is None:
        return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)  # before connect: no autotune
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", server.port))
    return sock


def _tcp_buffer_max(name: str) -> int:
    """The largest buffer the kernel autotunes a TCP socket to (Linux), or 64 MiB elsewhere."""
    try:
        with open(f"/proc/sys/net/ipv4/{name}") as limits:
            return int(limits.read().split()[2])
    except (OSError, IndexError, ValueError):
        return 64 * 1024 * 1024


def read_answer(stream: BinaryIO, *, head: bool = False) -> Answer | None:
    """One answer off ``stream`` (None: the server closed without one; ``head``: the
    answer to a HEAD request, which has no body whatever its Content-Length)."""
    status_line = stream.readline()
    if not status_line:
        return None
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def exchange(server: ApiServerThread, raw: bytes, answers: int = 1) -> list[Answer | None]:
    with connect(server) as sock:
        sock.sendall(raw)
        stream = sock.makefile("rb")
        return [read_answer(stream) for _ in range(answers)]


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while data := sock.recv(65536):
            if not data:
                break
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# ------------------------------------------------------------------ framing


def test_a_chunked_body_with_capital_c_is_decoded() -> None:
    raw = (b"POST /in?x=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"
           b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: t\r\n\r\n"
           b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    with serving() as server:
        first, second = exchange(server, raw, answers=2)
    assert first is not None and first[0] == 200 and first[2] == b"POST /in?x=1 12:hello, world"
    assert second is not None and second[2] == b"GET /next? 0:"  # not parsed as a request


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nContent-Length: 5",  # two header lines, even equal ones
        b"Content-Length: 5\r\nContent-Length: 6",
        b"Content-Length: 5, 5",
        b"Content-Length: +5",
        b"Content-Length: 0_5",
        b"Content-Length: 5x",
        b"Content-Length: -5",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked",  # request smuggling
        b"Transfer-Encoding: gzip",
    ],
)
def test_malformed_framing_is_refused_with_400(head: bytes) -> None:
    with serving() as server:
        (answer,) = exchange(server, b"POST / HTTP/1.1\r\nHost: t\r\n" + head + b"\r\n\r\nhello")
    assert answer is not None and answer[0] in (400, 501), answer
    assert answer[1]["connection"] == "close"


@pytest.mark.parametrize("chunk", [b"+5\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n",
                                   b"5\r\nhelloXX0\r\n\r\n"])
def test_malformed_chunks_are_refused(chunk: bytes) -> None:
    with serving() as server:
        (answer,) = exchange(server, b"POST / HTTP/1.1\r\nHost: t\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n" + chunk)
    assert answer is not None and answer[0] == 400


def test_pipelined_requests_are_answered_in_order() -> None:
    raw = b"".join(f"POST /{n} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n{n}".encode()
                   for n in range(5))
    with serving() as server:
        answers = exchange(server, raw, answers=5)
    assert [a[2] for a in answers if a] == [f"POST /{n}? 1:{n}".encode() for n in range(5)]


def test_keep_alive_and_close() -> None:
    with serving() as server:
        http10 = exchange(server, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                  b"GET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.0\r\n\r\n", answers=3)
        closing = exchange(server, b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                                   b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n", answers=2)
    assert [a and a[2] for a in http10] == [b"GET /a? 0:", b"GET /b? 0:", None]
    assert http10[1] is not None and http10[1][1]["connection"] == "close"
    assert closing[0] is not None and closing[0][1]["connection"] == "close"
    assert closing[1] is None


def test_head_requests_get_no_body() -> None:
    with serving() as server, connect(server) as sock:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\nGET /y HTTP/1.1\r\nHost: t\r\n\r\n")
        stream = sock.makefile("rb")
        head, after = read_answer(stream, head=True), read_answer(stream)
    assert head is not None and head[1]["content-length"] == str(len(b"HEAD /x? 0:"))
    assert after is not None and after[2] == b"GET /y? 0:"  # nothing came in between


# ------------------------------------------------------------------ caps


def test_a_body_over_the_cap_is_refused_before_it_is_read() -> None:
    with serving(max_body_bytes=1000) as server, connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
        answer = read_answer(sock.makefile("rb"))
    assert answer is not None and answer[0] == 413
    assert answer[1]["content-type"] == "application/json" and b"too large" in answer[2]


def test_a_chunked_body_over_the_cap_is_refused() -> None:
    chunks = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(10))
    with serving(max_body_bytes=1000) as server:
        (answer,) = exchange(server, b"POST / HTTP/1.1\r\nHost: t\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert answer is not None and answer[0] == 413


def test_a_body_at_the_cap_is_accepted() -> None:
    with serving(max_body_bytes=1000) as server:
        (answer,) = exchange(server, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
                                     + b"y" * 1000)
    assert answer is not None and answer[0] == 200 and answer[2].endswith(b"y" * 1000)


def test_a_head_over_the_cap_is_refused_with_431() -> None:
    with serving(max_head_bytes=2048) as server, connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 4096)
        answer = read_answer(sock.makefile("rb"))
    assert answer is not None and answer[0] == 431


def test_reading_stops_while_the_app_works() -> None:
    """Backpressure: while a request is with the app, the server stops reading, so what a
    client pipelines behind it stays in the client's socket, not in the server's memory."""
    release: Future[None] = Future()
    pool: list[asyncio.Future[Response]] = []

    def slow(request: Request) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        pool.append(answer)
        release.add_done_callback(
            lambda _: loop.call_soon_threadsafe(answer.set_result, Response(200, b"done")))
        return answer

    # What the kernel may hold for a paused reader: the server's receive buffer (autotuned
    # up to tcp_rmem's maximum, which differs between hosts) and the client's send buffer
    # (fixed small here). A server that kept reading would take all of the flood.
    kernel_buffers = _tcp_buffer_max("tcp_rmem") + 1024 * 1024
    flood_limit = 2 * kernel_buffers + 64 * 1024 * 1024
    with serving(slow) as server, connect(server, timeout=3, sndbuf=64 * 1024) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.sendall(b"GET /more HTTP/1.1\r\nHost: t\r\nX: ")
        block, sent = b"z" * (1024 * 1024), 0
        with pytest.raises(TimeoutError):  # the server stopped reading: the buffers filled up
            while sent < flood_limit:
                sock.sendall(block)
                sent += len(block)
        assert sent <= kernel_buffers, (sent, kernel_buffers)
        release.set_result(None)
        answer = read_answer(sock.makefile("rb"))
    assert answer is not None and answer[2] == b"done"


# ------------------------------------------------------------------ timeouts and the cap


def test_a_slow_head_gets_408_at_the_header_timeout() -> None:
    with serving(header_timeout_s=0.5) as server, connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\n")
        for _ in range(4):
            time.sleep(0.2)
            try:
                sock.sendall(b"X-Drip: 1\r\n")  # bytes keep coming: still cut at 0.5 s
            except OSError:
                break
        answer = read_answer(sock.makefile("rb"))
    assert answer is not None and answer[0] == 408
    assert time.monotonic() - started < 2.0


def test_a_slow_body_gets_408_at_the_body_timeout() -> None:
    with serving(body_timeout_s=0.5) as server, connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        answer = read_answer(sock.makefile("rb"))
    assert answer is not None and answer[0] == 408


def test_an_idle_connection_is_closed_at_the_idle_timeout() -> None:
    with serving(idle_timeout_s=0.5) as server, connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        stream = sock.makefile("rb")
        assert (answer := read_answer(stream)) is not None and answer[0] == 200
        started = time.monotonic()
        assert read_answer(stream) is None  # closed, quietly
        assert 0.3 < time.monotonic() - started < 2.0


def test_when_full_the_longest_idle_connection_makes_room() -> None:
    with serving(max_connections=8) as server:
        idle = [connect(server) for _ in range(8)]
        time.sleep(0.2)
        (answer,) = exchange(server, b"GET /new HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer is not None and answer[0] == 200
        assert closed_by_server(idle[0], within_s=2)
        assert not closed_by_server(idle[-1], within_s=0.2)
        assert server.http.connections.shed >= 1
        for sock in idle:
            sock.close()


def test_when_every_connection_is_busy_a_newcomer_gets_503() -> None:
    hold: list[asyncio.Future[Response]] = []

    def never(request: Request) -> asyncio.Future[Response]:
        hold.append(asyncio.get_running_loop().create_future())
        return hold[-1]

    with serving(never, max_connections=3) as server:
        busy = [connect(server) for _ in range(3)]
        for sock in busy:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        (answer,) = exchange(server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer is not None and answer[0] == 503
        assert server.http.connections.refused == 1
        for sock in busy:
            sock.close()


def test_the_default_cap_leaves_file_descriptors_to_the_process() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 16 <= default_max_connections() <= max(16, min(1024, soft // 2))


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        HttpLimits(max_connections=0)
    with pytest.raises(ValueError):
        HttpLimits(idle_timeout_s=0)


