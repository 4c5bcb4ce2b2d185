"""The local Lambda service: every function in worker processes under the real runtime
interface client, invoked synchronously or asynchronously.

    service = LambdaService([FunctionSpec("Echo", "my.module.handler", timeout_s=3)],
                            ServiceSettings(timeout_s=10, chaos=Chaos(0.2, seed=7)))
    outcome = service.invoke("Echo", {"hello": "world"})   # RequestResponse
    request_id = service.invoke_async("Echo", {...})       # Event: retries, OnFailure
    service.status()["Echo"]                               # workers and counts
    service.logs.records("Echo")                           # what its workers logged
    service.stop()

The pieces: :mod:`.runtime_api` (the Runtime API a worker talks to), :mod:`.workers`
(one process per execution environment), :mod:`.pool` (warm and cold workers,
concurrency, deadlines, chaos), :mod:`.async_invoke` (Lambda's asynchronous queue),
:mod:`.event_sources` (SQS mappings, S3 and SNS notifications) and :mod:`.invoke_api`
(Lambda's ``Invoke`` over HTTP).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import orjson

from amlproxy.errors import ConfigurationError
from amlproxy.local.async_invoke import AsyncInvoker, Destination
from amlproxy.local.functions import FunctionSpec
from amlproxy.local.pool import FunctionPool, ServiceSettings
from amlproxy.local.runtime_api import Outcome
from amlproxy.local.worker_logs import WorkerLogs
from amlproxy.local.workers import awslambdaric_available


class LambdaService:
    """The functions of a local stack (or a test), each with its pool and async queue."""

    def __init__(self, functions: Iterable[FunctionSpec],
                 settings: ServiceSettings | None = None, *,
                 destination: Destination | None = None,
                 logs: WorkerLogs | None = None) -> None:
        self.settings = settings or ServiceSettings()
        if self.settings.workers.runtime_client == "awslambdaric" and \
                not awslambdaric_available():
            raise ConfigurationError(
                "awslambdaric is not installed (it has Linux wheels only): install "
                "amlproxy[local] on Linux, or run the built-in runtime client "
                "(--runtime-client builtin)")
        self.logs = logs or WorkerLogs()
        self.pools: dict[str, FunctionPool] = {}
        self.async_invokers: dict[str, AsyncInvoker] = {}
        for spec in functions:
            pool = FunctionPool(spec, self.settings, self.logs)
            self.pools[spec.name] = pool
            self.async_invokers[spec.name] = AsyncInvoker(
                pool, self.settings.async_retry_delays_s, destination)

    @property
    def runtime_client(self) -> str:
        return self.settings.workers.runtime_client

    def pool(self, name: str) -> FunctionPool:
        try:
            return self.pools[name]
        except KeyError:
            raise ConfigurationError(f"no function {name!r} (known: "
                                     f"{', '.join(sorted(self.pools))})") from None

    def invoke(self, name: str, event: Any, *, wait_s: float | None = None,
               client_context: str | None = None, request_id: str | None = None) -> Outcome:
        """A synchronous (RequestResponse) invocation; ``event`` is JSON-able or bytes.
        Waits up to ``wait_s`` for a concurrency slot (None: as long as it takes)."""
        return self.pool(name).invoke(_payload(event), wait_s=wait_s,
                                      client_context=client_context, request_id=request_id)

    def invoke_async(self, name: str, event: Any) -> str:
        """An asynchronous (Event) invocation: queued; returns its request id."""
        self.pool(name)
        return self.async_invokers[name].submit(_payload(event))

    def pending_async(self) -> int:
        """Asynchronous events queued, running or waiting for a retry."""
        return sum(invoker.pending for invoker in self.async_invokers.values())

    def prewarm(self) -> dict[str, Outcome]:
        """Start one worker per function, in parallel; the init errors by function."""
        failures: dict[str, Outcome] = {}

        def warm(pool: FunctionPool) -> None:
            failure = pool.prewarm()
            if failure is not None:
                failures[pool.spec.name] = failure

        threads = [threading.Thread(target=warm, args=(pool,), daemon=True)
                   for pool in self.pools.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return failures

    def status(self) -> dict[str, Any]:
        """Every function's settings, workers and counts."""
        return {name: {**pool.status(), "async_pending": self.async_invokers[name].pending}
                for name, pool in self.pools.items()}

    def stop(self) -> None:
        """Stop the async queues and kill every worker."""
        for invoker in self.async_invokers.values():
            invoker.stop()
        for pool in self.pools.values():
            pool.stop()


def _payload(event: Any) -> bytes:
    return event if isinstance(event, bytes) else orjson.dumps(event)
