"""The workers of one function: warm reuse, cold starts, concurrency, deadlines, chaos.

:meth:`FunctionPool.invoke` runs one synchronous invocation the way Lambda does: it takes
a concurrency slot (the function's reserved concurrency caps its workers), an idle worker
(warm) or a new one (cold start, init phase first), hands the event over with a deadline
of the function's timeout, and returns the :class:`Outcome`. A worker killed at the
deadline, by a crash or by chaos is dropped; the next invocation starts a fresh one.

Chaos (``--chaos P --seed S``): the n-th invocation of a function is chosen for a kill
with probability P, from a random stream seeded by ``(S, function, n)``, so a seed gives
the same choices whatever the thread timing. The kill is a crash or a timeout (even
odds), at a moment drawn uniformly over the invocation's expected duration (the median
of the function's last 20 answered invocations; its timeout, at most 1 s, before any);
an invocation that answers before that moment is killed before its answer is accepted,
as a crash right after its last write would be.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import statistics
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from amlproxy.local.config import ACCOUNT, REGION
from amlproxy.local.functions import FunctionSpec
from amlproxy.local.runtime_api import Invocation, Outcome, error_outcome
from amlproxy.local.worker_logs import WorkerLogs
from amlproxy.local.workers import KillKind, Worker, WorkerGone, WorkerSettings

UNRESERVED_CONCURRENCY = 16  # workers of a function without reserved concurrency


@dataclass(frozen=True)
class Chaos:
    """Kill each invocation with ``probability``, reproducibly per ``seed``."""

    probability: float = 0.0
    seed: int = 0

    def decide(self, function: str, n: int, expected_s: float) -> tuple[KillKind, float] | None:
        """``(kind, seconds after the start)`` for the n-th invocation, or None."""
        if self.probability <= 0.0:
            return None
        rng = random.Random(f"{self.seed}:{function}:{n}")
        if rng.random() >= self.probability:
            return None
        kind: KillKind = "crash" if rng.random() < 0.5 else "timeout"
        return kind, rng.random() * expected_s


@dataclass(frozen=True)
class ServiceSettings:
    """How the service runs every function."""

    timeout_s: float | None = None  # overrides every function's timeout
    chaos: Chaos = field(default_factory=Chaos)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    async_retry_delays_s: tuple[float, ...] = (1.0, 2.0)  # Lambda: about 1 and 2 minutes
    unreserved_concurrency: int = UNRESERVED_CONCURRENCY


@dataclass
class FunctionStats:
    """Counts of one function since the service started."""

    invocations: int = 0
    cold_starts: int = 0
    errors: int = 0  # the function answered an error
    timeouts: int = 0
    crashes: int = 0
    chaos_kills: int = 0
    init_errors: int = 0
    throttles: int = 0
    async_retries: int = 0
    on_failure: int = 0  # asynchronous events sent to the OnFailure destination

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def trace_header() -> str:
    """An X-Ray trace header as Lambda passes it (``Root=1-<time>-<id>;Parent=...``)."""
    return (f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
            f"Parent={secrets.token_hex(8)};Sampled=0")


class FunctionPool:
    """The workers of one function (see the module docstring)."""

    def __init__(self, spec: FunctionSpec, settings: ServiceSettings, logs: WorkerLogs) -> None:
        self.spec = spec
        self.settings = settings
        self.logs = logs
        self.timeout_s = settings.timeout_s or spec.timeout_s
        self.concurrency = spec.reserved_concurrency or settings.unreserved_concurrency
        self.stats = FunctionStats()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._idle: list[Worker] = []
        self._workers: set[Worker] = set()
        self._durations: deque[float] = deque(maxlen=20)
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def arn(self) -> str:
        return function_arn(self.spec.name)

    def invoke(self, payload: bytes, *, request_id: str | None = None,
               wait_s: float | None = None, client_context: str | None = None) -> Outcome:
        """One invocation; waits up to ``wait_s`` for a free slot (None: as long as it
        takes, 0: not at all) and is throttled after that."""
        acquired = self._slots.acquire(timeout=wait_s) if wait_s else self._slots.acquire(
            blocking=wait_s is None)
        if not acquired:
            self.count("throttles")
            return error_outcome("throttled", "TooManyRequestsException", "Rate Exceeded.")
        try:
            return self._invoke(payload, request_id or str(uuid.uuid4()), client_context)
        finally:
            self._slots.release()

    def _invoke(self, payload: bytes, request_id: str, client_context: str | None) -> Outcome:
        if self._stopped:
            return error_outcome("error", "ServiceException", "the local service is stopping")
        with self._lock:
            n = self.stats.invocations
            self.stats.invocations += 1
        chaos = self.settings.chaos.decide(self.spec.name, n, self._expected_s())
        while True:
            worker = self._warm_worker()
            if worker is None:
                worker, failure = self._cold_worker()
                if failure is not None:
                    return failure
            assert worker is not None
            invocation = Invocation(
                request_id=request_id, payload=payload, function_arn=self.arn,
                deadline_ms=int((time.time() + self.timeout_s) * 1000),
                trace_id=trace_header(), client_context=client_context)
            started = time.monotonic()
            try:
                outcome = worker.run(invocation, self.timeout_s, chaos)
            except WorkerGone:
                self._retire(worker)
                continue
            break
        outcome = dataclasses.replace(outcome, worker=worker.id, started=started)
        self._account(outcome, chaos is not None and outcome.kind in ("timeout", "crash"))
        if worker.alive and not self._stopped:
            with self._lock:
                self._idle.append(worker)
        else:
            self._retire(worker)
        return outcome

    def _cold_worker(self) -> tuple[Worker | None, Outcome | None]:
        """A new worker through its init phase, or the init error."""
        worker = Worker(self.spec, self.settings.workers, self.logs, on_exit=self._forget)
        with self._lock:
            self._workers.add(worker)
            self.stats.cold_starts += 1
        worker.start()
        failure = worker.initialize()
        if failure is not None:
            self._retire(worker)
            self.count("init_errors")
            return None, failure
        return worker, None

    def prewarm(self) -> Outcome | None:
        """Start one idle worker now (as provisioned concurrency would); the init error."""
        worker, failure = self._cold_worker()
        if worker is not None:
            with self._lock:
                self._idle.append(worker)
        return failure

    def _account(self, outcome: Outcome, by_chaos: bool) -> None:
        with self._lock:
            if outcome.kind == "ok":
                self._durations.append(outcome.duration_ms / 1000.0)
            elif by_chaos:
                self.stats.chaos_kills += 1
            elif outcome.kind == "timeout":
                self.stats.timeouts += 1
            elif outcome.kind == "crash":
                self.stats.crashes += 1
            elif outcome.kind == "error":
                self.stats.errors += 1

    def _expected_s(self) -> float:
        with self._lock:
            if self._durations:
                return min(self.timeout_s, statistics.median(self._durations))
        return min(self.timeout_s, 1.0)

    def _warm_worker(self) -> Worker | None:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._workers.discard(worker)
        return None

    def _retire(self, worker: Worker) -> None:
        worker.kill()
        self._forget(worker)

    def _forget(self, worker: Worker) -> None:
        """Drop a worker whose process has exited (killed here, or from outside)."""
        with self._lock:
            self._workers.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def status(self) -> dict[str, Any]:
        """The function's settings, workers and counts."""
        with self._lock:
            workers = [{"id": w.id, "pid": w.process.pid if w.process else None,
                        "invocations": w.invocations, "busy": w not in self._idle}
                       for w in sorted(self._workers, key=lambda w: w.id)]
            return {"handler": self.spec.handler, "timeout_s": self.timeout_s,
                    "memory_mb": self.spec.memory_mb, "concurrency": self.concurrency,
                    "workers": workers, **self.stats.to_dict()}

    def stop(self) -> None:
        """Kill every worker (invocations in flight end as crashes)."""
        self._stopped = True
        with self._lock:
            workers = list(self._workers)
            self._idle.clear()
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.join(1.0)
