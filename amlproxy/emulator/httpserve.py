"""Listening, limits and the connection cap of the dev HTTP servers.

:class:`HttpServer` binds an :data:`~amlproxy.emulator.httpcore.App` to a port on the running
event loop; :class:`Connections` keeps its connections within :class:`HttpLimits`:

- at most ``max_connections`` at once (by default half the process's file-descriptor
  limit, at most 1024, so that the process never runs out of descriptors: that took moto
  down with the local API). When a new client comes and the server is full, the
  connection idle the longest is closed to make room; failing that, the one that has
  spent the longest sending its head (a slowloris); failing that (every connection has a
  request in progress), the newcomer gets 503 and is closed;
- ``idle_timeout_s`` between requests (the connection is closed quietly),
  ``header_timeout_s`` from a request's first byte to the end of its head and
  ``body_timeout_s`` for its body (408, then closed). A sweep every fraction of a second
  enforces them, instead of a timer per connection and request.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from amlproxy.emulator.httpconnection import HttpConnection
from amlproxy.emulator.httpcore import App, ErrorReply, Phase, json_error

MiB = 1024 * 1024


def default_max_connections() -> int:
    """Half the soft ``RLIMIT_NOFILE`` (the rest is left to the process), 16 to 1024."""
    if sys.platform == "win32":
        return 1024
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 2))


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How much a dev HTTP server lets its clients take (see the module docstring)."""

    max_connections: int = field(default_factory=default_max_connections)
    idle_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_head_bytes: int = 64 * 1024
    max_body_bytes: int = 8 * MiB

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections}")
        if self.max_head_bytes < 1024 or self.max_body_bytes < 0:
            raise ValueError("max_head_bytes must be at least 1024, max_body_bytes at least 0")
        if min(self.idle_timeout_s, self.header_timeout_s, self.body_timeout_s) <= 0:
            raise ValueError("the idle, header and body timeouts must be positive")

    def timeout(self, phase: Phase) -> float:
        """Seconds a connection may stay in ``phase`` (infinite while the app works)."""
        if phase is Phase.IDLE:
            return self.idle_timeout_s
        if phase is Phase.HEAD:
            return self.header_timeout_s
        if phase is Phase.BODY:
            return self.body_timeout_s
        return math.inf


class Connections:
    """The open connections of one server, their timeouts and the cap (event loop only)."""

    def __init__(self, limits: HttpLimits, error_reply: ErrorReply = json_error) -> None:
        self.limits = limits
        self.error_reply = error_reply
        self.shed = 0  # closed to make room for a newcomer
        self.refused = 0  # newcomers turned away (503): every connection was busy
        self.timed_out = 0
        self._all: dict[HttpConnection, None] = {}
        self._idle: dict[HttpConnection, None] = {}  # least recently idle first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._timeouts = {phase: limits.timeout(phase) for phase in Phase}
        self._sweep_every = min(0.5, limits.header_timeout_s / 4, limits.body_timeout_s / 4,
                                limits.idle_timeout_s / 4)

    def __len__(self) -> int:
        return len(self._all)

    def admit(self, connection: HttpConnection) -> bool:
        """Registers a new connection, making room if the server is full (False: none)."""
        if len(self._all) >= self.limits.max_connections and not self._make_room():
            self.refused += 1
            return False
        self._all[connection] = None
        if self._sweeper is None:
            self._loop = asyncio.get_running_loop()
            self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)
        return True

    def moved(self, connection: HttpConnection, was: Phase, phase: Phase) -> None:
        """``connection`` went from phase ``was`` to ``phase``: its timeout starts now."""
        if phase is Phase.BUSY:
            connection.expires_at = math.inf
        else:
            loop = self._loop or asyncio.get_running_loop()
            connection.expires_at = loop.time() + self._timeouts[phase]
        if phase is Phase.IDLE:
            if connection in self._all:
                self._idle.pop(connection, None)
                self._idle[connection] = None  # the most recently idle last
        elif was is Phase.IDLE:
            self._idle.pop(connection, None)

    def forget(self, connection: HttpConnection) -> None:
        self._all.pop(connection, None)
        self._idle.pop(connection, None)

    def close_all(self) -> None:
        """Close every connection (pending delayed answers are dropped) and stop sweeping."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._all):
            connection.close()

    def _make_room(self) -> bool:
        if self._idle:
            victim = next(iter(self._idle))
            victim.close()
        else:
            heads = [c for c in self._all if c.phase is Phase.HEAD]
            if not heads:
                return False
            victim = min(heads, key=lambda c: c.expires_at)
            victim.refuse(408, "the request head took too long")
        self.shed += 1
        return True

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for connection in [c for c in self._all if c.expires_at <= now]:
            self.timed_out += 1
            if connection.phase is Phase.IDLE:
                connection.close()
            else:
                connection.refuse(408, f"the request {connection.phase.value} took too long")
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)


class HttpServer:
    """An :data:`App` served on ``host:port`` (0: a free port) on the running event loop."""

    def __init__(self, app: App, limits: HttpLimits | None = None,
                 error_reply: ErrorReply = json_error) -> None:
        self.app = app
        self.connections = Connections(limits or HttpLimits(), error_reply)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; return the port (the real one for 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self.app, self.connections),
            host, port, reuse_address=True, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is None:
            return
        self._server.close()
        self.connections.close_all()
        await self._server.wait_closed()
        self._server = None
        await asyncio.sleep(0)  # let the transports finish closing


_LIMIT_FLAGS = (
    ("--max-connections", "max_connections", int, "most connections at once (default: half "
     "the file-descriptor limit, at most 1024); idle ones are shed first"),
    ("--idle-timeout-s", "idle_timeout_s", float, "close a connection idle this long (60)"),
    ("--header-timeout-s", "header_timeout_s", float, "408 for a head slower than this (10)"),
    ("--body-timeout-s", "body_timeout_s", float, "408 for a body slower than this (30)"),
)


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """The command-line flags of :class:`HttpLimits` (all optional)."""
    for flag, dest, kind, text in _LIMIT_FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)


def limits_from(args: argparse.Namespace, **defaults: Any) -> HttpLimits:
    """:class:`HttpLimits` from the flags that were given, over ``defaults``; ValueError
    for a bad value."""
    given = {dest: getattr(args, dest) for _, dest, _, _ in _LIMIT_FLAGS
             if getattr(args, dest, None) is not None}
    return HttpLimits(**{**defaults, **given})
