"""A worker: one Lambda execution environment, as a process of its own.

The process runs the runtime interface client (``python -m awslambdaric HANDLER``, or
the built-in loop of :mod:`amlproxy.local.runtime_loop` where awslambdaric is missing)
with the environment Lambda sets, against its own :class:`RuntimeApi`. Its init phase
ends at its first ``next`` (or with ``/runtime/init/error``); it then serves one
invocation at a time until it is killed: at the function's timeout (SIGKILL, as Lambda
does), by chaos, or when the service stops. Its stdout/stderr and telemetry-fd output go
to :class:`WorkerLogs`.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from amlproxy.errors import AmlProxyError
from amlproxy.local.config import REGION
from amlproxy.local.functions import FunctionSpec, LogFormat
from amlproxy.local.runtime_api import (
    Invocation,
    Outcome,
    RuntimeApi,
    error_outcome,
    error_type_of,
)
from amlproxy.local.worker_logs import Output, WorkerLogs

SOURCE_ROOT = Path(__file__).resolve().parents[2]
RuntimeClient = Literal["awslambdaric", "builtin"]
KillKind = Literal["timeout", "crash"]
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing"}


def awslambdaric_available() -> bool:
    """Can this Python run ``python -m awslambdaric`` (a Linux wheel is installed)?"""
    import importlib.util

    return importlib.util.find_spec("awslambdaric") is not None


@dataclass(frozen=True)
class WorkerSettings:
    """How workers are started: the runtime client, log format and output, init limit."""

    runtime_client: RuntimeClient = "awslambdaric"
    log_format: LogFormat | None = None  # None: each function's LoggingConfig
    log_output: Output = "stdout"
    init_timeout_s: float = 10.0  # Lambda's init phase limit
    python: str = sys.executable
    task_root: Path = SOURCE_ROOT


def lambda_environment(spec: FunctionSpec, settings: WorkerSettings, runtime_api: str,
                       telemetry_fd: int | None = None) -> dict[str, str]:
    """The environment of a worker: the function's variables, then those Lambda sets."""
    log_format = settings.log_format or spec.log_format
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = os.environ.get("PYTHONPATH")
    env = {
        **spec.environment,
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(settings.task_root) + (os.pathsep + path if path else ""),
        "LAMBDA_TASK_ROOT": str(settings.task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(settings.python).parent),
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group or f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/", time.gmtime())
        + f"[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_LOG_FORMAT": log_format,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **DUMMY_CREDENTIALS,
    }
    if log_format == "JSON":  # Lambda sets the application log level with JSON only
        env["AWS_LAMBDA_LOG_LEVEL"] = (spec.application_log_level or "INFO").upper()
    if telemetry_fd is not None:
        env["_LAMBDA_TELEMETRY_LOG_FD"] = str(telemetry_fd)
    return env


def runtime_command(settings: WorkerSettings, handler: str) -> list[str]:
    module = "awslambdaric" if settings.runtime_client == "awslambdaric" \
        else "amlproxy.local.runtime_loop"
    return [settings.python, "-m", module, handler]


class WorkerGone(AmlProxyError):
    """An idle worker had died before an invocation reached it (the pool takes another)."""


class Worker:
    """One execution environment of ``spec``; :meth:`start`, :meth:`initialize`, then
    :meth:`run` invocations one at a time until :meth:`kill`."""

    _ids = itertools.count(1)

    def __init__(self, spec: FunctionSpec, settings: WorkerSettings, logs: WorkerLogs,
                 on_exit: Callable[[Worker], None] | None = None) -> None:
        self.id = next(self._ids)
        self.on_exit = on_exit  # called (on the reaper thread) once the process has exited
        self.spec = spec
        self.settings = settings
        self.logs = logs
        self.api = RuntimeApi()
        self.invocations = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None
        self._threads: list[threading.Thread] = []

    @property
    def alive(self) -> bool:
        """Is the process running? (Asks the kernel, so that a worker killed from
        outside a moment ago is not handed an invocation before the reaper sees it.)"""
        if self.process is None or self.exit_status is not None:
            return False
        try:  # WNOWAIT: leaves the child for the reaper thread to collect
            return os.waitid(os.P_PID, self.process.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def start(self) -> None:
        """Start the process (its init phase runs in the background)."""
        read_fd: int | None = None
        write_fd: int | None = None
        if self.settings.log_output == "telemetry":
            read_fd, write_fd = os.pipe()
        env = lambda_environment(self.spec, self.settings, self.api.address, write_fd)
        self.process = subprocess.Popen(
            runtime_command(self.settings, self.spec.handler), env=env,
            cwd=self.settings.task_root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, pass_fds=() if write_fd is None else (write_fd,),
            start_new_session=True)
        assert self.process.stdout is not None
        self._thread(self.logs.read_lines, self.process.stdout, self.spec.name, self.id)
        if read_fd is not None and write_fd is not None:
            os.close(write_fd)
            telemetry = os.fdopen(read_fd, "rb")
            self._thread(self.logs.read_frames, telemetry, self.spec.name, self.id)
        self._thread(self._reap)

    def _thread(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,  # type: ignore[arg-type]
                                  name=f"{self.spec.name}#{self.id}")
        thread.start()
        self._threads.append(thread)

    def _reap(self) -> None:
        assert self.process is not None
        status = self.process.wait()
        self.exit_status = status
        current = self.api.current
        if current is not None:
            how = f"signal: {(signal.strsignal(-status) or str(-status)).lower()}" \
                if status < 0 else f"exit status {status}"
            current.complete(error_outcome(
                "crash", "Runtime.ExitError",
                f"RequestId: {current.request_id} Error: Runtime exited with error: {how}"))
        self.api.changed.set()
        if self.on_exit is not None:
            self.on_exit(self)

    def initialize(self) -> Outcome | None:
        """Wait for the end of the init phase: None when ready, else the init error (the
        worker is then dead)."""
        limit = time.monotonic() + self.settings.init_timeout_s
        api = self.api
        while not api.ready.is_set():
            if api.init_error is not None:
                self.kill()
                return Outcome("init_error", api.init_error, error_type_of(api.init_error))
            if self.exit_status is not None:
                self.kill()
                return error_outcome("init_error", "Runtime.ExitError", "RequestId: - Error: "
                                     f"Runtime exited with error: exit status {self.exit_status}")
            remaining = limit - time.monotonic()
            if remaining <= 0:
                self.kill()
                return error_outcome("init_error", "Sandbox.Timedout", "INIT phase timed out "
                                     f"after {self.settings.init_timeout_s:.2f} seconds")
            api.changed.wait(min(remaining, 0.5))
            api.changed.clear()
        return None

    def run(self, invocation: Invocation, timeout_s: float,
            chaos: tuple[KillKind, float] | None = None) -> Outcome:
        """Run one invocation: its outcome, or a kill at ``timeout_s`` (or at chaos's
        moment, ``(kind, seconds)``; an answer before that moment is discarded)."""
        self.invocations += 1
        invocation.started = time.perf_counter()
        self.api.dispatch(invocation)
        limit = timeout_s if chaos is None else min(timeout_s, chaos[1])
        answered = invocation.done.wait(limit)
        if answered and (chaos is None or chaos[1] >= timeout_s):
            assert invocation.outcome is not None
            if invocation.outcome.kind == "crash":
                self.kill()
                if not invocation.fetched:  # it had died idle: the event never reached it
                    raise WorkerGone(f"worker {self.id} of {self.spec.name} was dead")
            return invocation.outcome
        self.kill()
        kind: KillKind = chaos[0] if chaos is not None and chaos[1] < timeout_s else "timeout"
        if kind == "timeout":
            outcome = error_outcome("timeout", "Sandbox.Timedout",
                                    f"RequestId: {invocation.request_id} Error: Task timed "
                                    f"out after {timeout_s:.2f} seconds")
        else:
            outcome = error_outcome("crash", "Runtime.ExitError",
                                    f"RequestId: {invocation.request_id} Error: Runtime "
                                    "exited with error: signal: killed")
        invocation.complete(outcome)  # no-op when it had answered: chaos discards that
        return outcome

    def kill(self) -> None:
        """SIGKILL the process (and its children), stop its Runtime API."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait()
        self.api.close()

    def join(self, timeout: float = 2.0) -> None:
        """Wait for the log readers to drain (after :meth:`kill`)."""
        for thread in self._threads:
            thread.join(timeout)
