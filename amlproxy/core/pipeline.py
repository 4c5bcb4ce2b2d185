"""records -> validate -> predict -> sink, with bounded concurrency and ordered output.

The pipeline reads :class:`SourceRow`s, validates each against the schema, hands valid
records to the backend in batches of ``backend.max_batch_size``, and writes every
:class:`Outcome` to the sinks in input order. Every row ends as exactly one outcome:
``ok``, ``rejected`` (bad input, with its reasons) or ``failed`` (the backend gave up).

I/O-bound backends run on a thread pool of ``concurrency`` workers; the number of units in
flight is bounded, so memory stays flat whatever the input size. In-process backends run
inline: threads would only add overhead.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from amlproxy.core.outcome import Outcome, SourceRow
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.prediction import Prediction
from amlproxy.core.report import Report
from amlproxy.core.schema import Schema
from amlproxy.core.sink_writes import DeadlineLike, abort_quietly, out_of_time, write_chunk
from amlproxy.core.units import Unit, UnitResult, build_units, finish_unit
from amlproxy.errors import (
    AmlProxyError,
    BackendError,
    NonRetryableBackendError,
)

log = logging.getLogger(__name__)
_PREDICTION = {Prediction}

class Pipeline:
    """Scores records with one backend and writes the outcomes to sinks.

    Build it once (per cold start) and call :meth:`run` for each input.
    """

    def __init__(
        self,
        schema: Schema,
        backend: Backend,
        sinks: Sequence[Sink] = (),
        *,
        concurrency: int = 8,
        batch_size: int | None = None,
        deadline: DeadlineLike | None = None,
        sink_chunk: int = 500,
    ) -> None:
        self.schema = schema
        self.backend = backend
        self.sinks = list(sinks)
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size or backend.max_batch_size)
        self.deadline = deadline
        self.sink_chunk = sink_chunk
        self._executor: ThreadPoolExecutor | None = None
        if backend.io_bound and self.concurrency > 1:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="amlproxy")

    # ---------------------------------------------------------------- public API

    def run(
        self,
        rows: Iterable[SourceRow],
        *,
        source: str,
        sinks: Sequence[Sink] | None = None,
        progress: Callable[[Report], None] | None = None,
        progress_every: int = 5000,
        report: Report | None = None,
    ) -> Report:
        """Score ``rows`` from ``source`` and write the outcomes to the sinks.

        ``sinks`` replaces the pipeline's own sinks for this run (per-input outputs such as
        an S3 object named after the input key). Sinks are closed (committed) at the end of
        the run. They are aborted after an error, which then propagates, and when the
        deadline interrupted the run (``report.interrupted``): a cut run leaves no half
        object, keyed sinks keep the whole chunks written (the last, partial one is
        dropped, so a retry re-sends the same chunks), and a retry of the input is safe.

        An interrupted run's report counts only the rows whose outcomes reached the sinks
        (whole chunks; ``last_line`` is the last of them). ``report``, when given, is the
        report the run counts into (a caller that watches it while the run goes on).
        """
        report = report if report is not None else Report(source=source)
        targets = self.sinks if sinks is None else list(sinks)
        started = time.perf_counter()
        buffer: list[Outcome] = []
        next_progress = progress_every
        scored = self._outcome_lists(rows, source, report, False)
        longest_write = 0.0  # a chunk write that would end past the deadline is not started
        try:
            for outcomes in scored:
                report.count_all(outcomes)
                if targets:
                    buffer += outcomes
                    while len(buffer) >= self.sink_chunk:  # chunks of sink_chunk outcomes
                        if out_of_time(self.deadline, report, longest_write):
                            break  # sinks stop writing at the deadline
                        took = write_chunk(targets, buffer[: self.sink_chunk], report,
                                           self.deadline)
                        if report.interrupted:
                            break  # a sink stopped at the deadline: the chunk is redone
                        longest_write = max(longest_write, took)
                        del buffer[: self.sink_chunk]
                    if report.interrupted:
                        break
                if progress is not None and report.total >= next_progress:
                    report.elapsed_s = time.perf_counter() - started
                    progress(report)
                    next_progress = (report.total // progress_every + 1) * progress_every
            if buffer and not out_of_time(self.deadline, report, longest_write):
                write_chunk(targets, buffer, report, self.deadline)
            # a cut run writes whole chunks only, so that its retry re-sends the same
            # messages: for the retry, the chunk not written is not done
            if buffer and targets and report.interrupted:
                report.uncount(buffer)
            if targets and not report.interrupted:
                out_of_time(self.deadline, report)  # no commit after the deadline either
        except BaseException:
            for sink in targets:
                abort_quietly(sink)
            raise
        finally:
            scored.close()  # a run cut while writing leaves no scoring behind
        t0 = time.perf_counter()
        if report.interrupted:
            # A cut run publishes no half output: per-run objects (S3, files) are discarded,
            # keyed sinks keep what they wrote; the retry of the input writes it whole.
            for sink in targets:
                abort_quietly(sink)
        else:
            for sink in targets:
                sink.close()
        report.sink_s += time.perf_counter() - t0
        report.elapsed_s = time.perf_counter() - started
        summary = getattr(self.backend, "summary", None)
        if callable(summary):
            report.extra["backend"] = summary()
        return report

    def outcomes(
        self,
        rows: Iterable[SourceRow],
        *,
        source: str,
        report: Report | None = None,
        validated: bool = False,
    ) -> Generator[Outcome, None, None]:
        """Outcomes in input order, one per row (a generator: bounded memory).

        ``validated=True`` takes each row's fields as a record that already went through
        :meth:`Schema.validate` (a caller that must check a whole batch before scoring any).
        """
        report = report if report is not None else Report(source=source)
        for outcomes in self._outcome_lists(rows, source, report, validated):
            yield from outcomes

    def score_records(
        self, records: Sequence[Mapping[str, Any]], *, source: str, validated: bool = False
    ) -> tuple[list[Outcome], Report]:
        """Validate (unless ``validated``) and score in-memory records (an API batch, an SNS
        message); line = 1-based index."""
        if validated and 0 < len(records) <= self.batch_size and None not in records:
            return self._score_one_unit(records, source)
        rows = [SourceRow(line=i, fields=r, raw="") for i, r in enumerate(records, start=1)]
        report = Report(source=source)
        started = time.perf_counter()
        outcomes: list[Outcome] = []
        for done in self._outcome_lists(rows, source, report, validated):
            report.count_all(done)
            outcomes += done
        report.elapsed_s = time.perf_counter() - started
        return outcomes, report

    def _score_one_unit(self, records: Sequence[Mapping[str, Any]], source: str
                        ) -> tuple[list[Outcome], Report]:
        """:meth:`score_records` of validated records that fit in one backend batch (an
        API request): their one unit made directly, as :func:`build_units` would make it,
        then started and finished as :meth:`_outcome_lists` would, without a reader, a
        generator or a window for a single unit."""
        report = Report(source=source)
        started = time.perf_counter()
        unit = Unit.of_records(records, self.schema)
        outcomes: list[Outcome] = []
        if self.deadline is not None and self.deadline.expired():
            report.interrupted = True  # no unit is started at the deadline
        else:
            self._start(unit, report, source)
            outcomes = finish_unit(unit, source, report, self.backend.name)
            report.count_all(outcomes)
        report.elapsed_s = time.perf_counter() - started
        return outcomes, report

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self.backend.close()

    # ---------------------------------------------------------------- internals

    def _outcome_lists(
        self, rows: Iterable[SourceRow], source: str, report: Report, validated: bool
    ) -> Generator[list[Outcome], None, None]:
        """The outcomes of each unit in input order, with at most ``2 x concurrency`` units
        in flight; the units at the head whose batches are scored are given out as soon as
        the next unit is started (their objects do not wait for the window to fill). At
        the deadline no unit is started: the units in flight are finished first (input
        order), then the rejects read before the first unscored row. A record whose call
        was never attempted (the deadline came first) ends the run there."""
        report.interrupted = False  # (a report given by the caller: this run decides)
        window: deque[Unit] = deque()
        max_window = self.concurrency * 2 if self._executor else 1
        units = build_units(rows, self.schema, self.batch_size, source=source,
                            report=report, validated=validated)
        cut: Unit | None = None
        for unit in units:
            if self.deadline is not None and unit.lines and self.deadline.expired():
                cut = unit
                break
            self._start(unit, report, source)
            window.append(unit)
            while window and (len(window) >= max_window or _done(window[0])):
                yield finish_unit(window.popleft(), source, report, self.backend.name)
                if report.interrupted:
                    return
        while window:
            yield finish_unit(window.popleft(), source, report, self.backend.name)
            if report.interrupted:
                return
        if cut is not None:
            report.interrupted = True
            yield [o for k, (at, o) in enumerate(cut.rejects) if at == k]

    def _start(self, unit: Unit, report: Report, source: str) -> None:
        if not unit.lines:
            return
        if self._executor is not None:
            # the worker runs in a copy of this thread's contextvars context, so whatever
            # the caller keeps there (a tracer's current span) holds on the worker too
            unit.future = self._executor.submit(contextvars.copy_context().run, self._scored,
                                                unit)
        else:
            t0 = time.perf_counter()
            unit.result = self._scored(unit)
            report.predict_s += time.perf_counter() - t0

    def _scored(self, unit: Unit) -> UnitResult:
        """Score a unit's batch (on a worker); never raises but for a configuration error.
        A prediction per record, or the backend's error as it is (:meth:`_finish` makes
        them outcomes: it counts them), and how many errors there are."""
        results = self._score(unit.records)
        if set(map(type, results)) == _PREDICTION:  # (a C loop)
            return results, 0
        return results, sum(not isinstance(result, Prediction) for result in results)

    def _score(self, records: list[dict[str, Any]]) -> list[Prediction | BackendError]:
        """Predict a batch; never raises. One result per record, in order."""
        try:
            return list(self.backend.predict_batch(records))
        except NonRetryableBackendError as exc:
            if len(records) == 1:
                return [exc]
            # One bad record must not fail its neighbours: score them one by one.
            return [self._score_one(record) for record in records]
        except BackendError as exc:
            return [exc] * len(records)
        except AmlProxyError:
            raise  # configuration (credentials, region...): no record can succeed; stop the run
        except Exception as exc:  # a bug in an adapter must not lose the rows
            log.exception("backend %s raised an unexpected error", self.backend.name)
            err = BackendError(f"unexpected {type(exc).__name__}: {exc}", code="InternalError")
            return [err] * len(records)

    def _score_one(self, record: dict[str, Any]) -> Prediction | BackendError:
        try:
            return self.backend.predict(record)
        except BackendError as exc:
            return exc
        except AmlProxyError:
            raise
        except Exception as exc:
            log.exception("backend %s raised an unexpected error", self.backend.name)
            return BackendError(f"unexpected {type(exc).__name__}: {exc}", code="InternalError")

def _done(unit: Unit) -> bool:
    """Whether the unit's batch is scored (its outcomes are made without waiting)."""
    return unit.future is None or unit.future.done()
