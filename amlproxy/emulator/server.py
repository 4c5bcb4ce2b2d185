"""The emulator server: routing, lifecycle, and running it on a thread or until a signal.

Routes (one port for everything):

- ``POST /`` with ``X-Amz-Target: AmazonML_20141212.*``  -> :mod:`.aml`
- ``POST /endpoints/{name}/invocations``                 -> :mod:`.sagemaker`
- ``/_emulator/...``                                      -> :mod:`.admin`

Request signatures are not checked: any (dummy) credentials work.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from amlproxy.emulator.admin import PREFIX as ADMIN_PREFIX
from amlproxy.emulator.admin import AdminApi
from amlproxy.emulator.aml import AmlApi
from amlproxy.emulator.httpcore import Request, Response
from amlproxy.emulator.httpserve import HttpLimits, HttpServer
from amlproxy.emulator.models import load_models, serve_models
from amlproxy.emulator.replies import json_reply
from amlproxy.emulator.sagemaker import SageMakerApi
from amlproxy.emulator.state import ALL_TARGETS, EmulatorState
from amlproxy.localmodel import LogisticModel

_SM_PREFIX = "/endpoints/"
_SM_SUFFIX = "/invocations"


class EmulatorApp:
    """Request -> Response for both protocols and the admin API."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._aml = AmlApi(state)
        self._sagemaker = SageMakerApi(state)
        self._admin = AdminApi(state)

    def __call__(self, request: Request) -> Response:
        path = request.path
        if request.method == "POST":
            target = request.headers.get("x-amz-target")
            if target is not None and path == "/":
                return self._aml.handle(request, target)
            if path.startswith(_SM_PREFIX) and path.endswith(_SM_SUFFIX):
                name = path[len(_SM_PREFIX) : -len(_SM_SUFFIX)]
                if name and "/" not in name:
                    return self._sagemaker.invoke(request, name)
        if path.startswith(ADMIN_PREFIX):
            return self._admin.handle(request)
        return json_reply(404, {"message": f"no route for {request.method} {path}"})


class EmulatorServer:
    """An emulator bound to ``host:port`` (0: a free port) on the running event loop.

    ``limits`` bound its connections (:class:`HttpLimits`: 8 MiB bodies by default, above
    SageMaker's 6 MB so that the emulator answers an oversized payload as the service does).
    """

    def __init__(
        self,
        models: Mapping[str, LogisticModel],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: HttpLimits | None = None,
    ) -> None:
        self.state = EmulatorState(serve_models(models))
        self.app = EmulatorApp(self.state)
        self.host = host
        self.port = port
        self.http = HttpServer(self.app, limits)

    @property
    def url(self) -> str:
        return self.state.url

    async def start(self) -> str:
        """Listen; return the URL (with the real port)."""
        self.port = await self.http.start(self.host, self.port)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.state.url = f"http://{host}:{self.port}"
        return self.state.url

    async def close(self) -> None:
        """Stop listening and close every connection (pending delayed answers are dropped)."""
        await self.http.close()


async def serve_until_signalled(
    server: EmulatorServer,
    on_ready: Callable[[str], None],
    initial_faults: Mapping[str, Any] | None = None,
    fault_target: str = ALL_TARGETS,
) -> None:
    """Start ``server``, call ``on_ready(url)``, run until SIGINT or SIGTERM, close."""
    url = await server.start()
    if initial_faults:
        server.state.configure_faults(fault_target, initial_faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        on_ready(url)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await server.close()


class EmulatorHandle:
    """An emulator running on a background thread with its own event loop."""

    def __init__(
        self, server: EmulatorServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self.server = server
        self.url = server.url
        self._loop = loop
        self._thread = thread

    def stop(self, timeout: float = 10.0) -> None:
        """Close the server and its connections and join the thread (idempotent)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(
    models: Mapping[str, LogisticModel] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: Mapping[str, Any] | None = None,
    fault_target: str = ALL_TARGETS,
    timeout: float = 10.0,
    limits: HttpLimits | None = None,
) -> EmulatorHandle:
    """Start an emulator on a daemon thread; returns once it listens.

    ``models`` defaults to the bundled census-income model; ``faults`` (FaultConfig keys)
    are applied to ``fault_target`` before the first request.
    """
    server = EmulatorServer(models if models is not None else load_models(), host, port,
                            limits=limits)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
            if faults:
                server.state.configure_faults(fault_target, faults)
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            loop.run_until_complete(server.close())
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.close())
            loop.close()

    thread = threading.Thread(target=run, name="amlproxy-emulator", daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise TimeoutError(f"the emulator did not start within {timeout} s")
    if failure:
        thread.join(timeout)
        raise failure[0]
    return EmulatorHandle(server, loop, thread)
