"""The pipeline's writes to its sinks under the invocation's deadline: a chunk of outcomes
to every sink in order, whether there is still time to write one, and aborting a sink.

A sink that stops at the deadline (:class:`~amlproxy.errors.SinkWriteError` with
``deadline``) interrupts the run: the chunk is not done, and the sinks after it do not get
it, so the sinks that can take a chunk again (keyed ones) go before those that cannot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from amlproxy.core.outcome import Outcome
from amlproxy.core.ports import Sink
from amlproxy.core.report import Report
from amlproxy.errors import SinkWriteError

log = logging.getLogger("amlproxy.core.pipeline")


class DeadlineLike(Protocol):
    """What the pipeline needs of a deadline (:class:`amlproxy.core.retry.Deadline`)."""

    def expired(self) -> bool: ...


def out_of_time(deadline: DeadlineLike | None, report: Report, need_s: float = 0.0) -> bool:
    """Whether the run must stop writing: it was interrupted, the deadline has passed, or
    it is nearer than ``need_s`` (the longest chunk write of the run so far). The run is
    then interrupted."""
    if deadline is not None and not report.interrupted:
        remaining = getattr(deadline, "remaining", None)
        left = remaining() if callable(remaining) else None
        if deadline.expired() if left is None else left <= 0 or left < need_s:
            report.interrupted = True
    return report.interrupted


def write_chunk(sinks: Sequence[Sink], outcomes: list[Outcome], report: Report,
                deadline: DeadlineLike | None) -> float:
    """Writes one chunk to every sink, in order; the seconds it took, on the deadline's
    clock (they are weighed against its time left)."""
    clock = getattr(deadline, "clock", None) or time.perf_counter
    started = clock()
    t0 = time.perf_counter()
    for sink in sinks:
        try:
            sink.write(outcomes)
        except SinkWriteError as exc:
            if not exc.deadline:
                raise
            log.info("the deadline stopped %s at line %d", sink.name, outcomes[0].line)
            report.interrupted = True
            break
    report.sink_s += time.perf_counter() - t0
    return float(clock() - started)


def abort_quietly(sink: Sink) -> None:
    """Aborts ``sink``, logging (not raising) a failure: what made us abort matters more."""
    try:
        sink.abort()
    except Exception:  # the original error matters more
        log.exception("aborting sink %s failed", sink.name)
