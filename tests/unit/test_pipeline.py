"""The pipeline's ordering, outcomes, reconciliation, batching and deadline."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from amlproxy.core.outcome import Outcome, SourceRow, Status
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.prediction import Prediction
from amlproxy.core.schema import load_schema
from amlproxy.errors import (
    BackendError,
    ConfigurationError,
    InvalidRecordError,
    RetriesExhaustedError,
    SinkError,
    SinkWriteError,
    ThrottledError,
)

GOOD = {
    "age": "39", "workclass": "State-gov", "fnlwgt": "77516", "education": "Bachelors",
    "education-num": "13", "marital-status": "Never-married", "occupation": "Adm-clerical",
    "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital-gain": "2174",
    "capital-loss": "0", "hours-per-week": "40", "native-country": "United-States",
}  # fmt: skip


class EchoBackend:
    """A test double of the Backend port: label = the record's age, optional delays/errors."""

    name = "echo"
    model_id = "echo-1"

    def __init__(
        self,
        *,
        max_batch_size: int = 1,
        io_bound: bool = True,
        jitter_s: float = 0.0,
        fail_ages: Mapping[float, Exception] | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.io_bound = io_bound
        self.jitter_s = jitter_s
        self.fail_ages = dict(fail_ages or {})
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        return self.predict_batch([record])[0]

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        with self._lock:
            self.calls.append(len(records))
            self.threads.add(threading.current_thread().name)
        if self.jitter_s:
            time.sleep(random.random() * self.jitter_s)
        for r in records:
            if r["age"] in self.fail_ages:
                raise self.fail_ages[r["age"]]
        return [
            Prediction(str(int(r["age"])), {"x": 1.0}, None, self.name, self.model_id, 1.0)
            for r in records
        ]

    def close(self) -> None:
        pass


class ListSink:
    name = "list"

    def __init__(self, fail_after: int | None = None) -> None:
        self.outcomes: list[Outcome] = []
        self.closed = self.aborted = 0
        self.fail_after = fail_after

    def write(self, outcomes: Sequence[Outcome]) -> None:
        if self.fail_after is not None and len(self.outcomes) >= self.fail_after:
            raise SinkError("disk full")
        self.outcomes.extend(outcomes)

    def close(self) -> None:
        self.closed += 1

    def abort(self) -> None:
        self.aborted += 1


def rows(n: int, *, bad_every: int = 0) -> list[SourceRow]:
    out = []
    for i in range(1, n + 1):
        fields = dict(GOOD, age=str(17 + i % 70))
        if bad_every and i % bad_every == 0:
            fields["age"] = "old"
        out.append(SourceRow(line=i, fields=fields, raw=f"row {i}"))
    return out


@pytest.fixture(scope="module")
def schema():
    return load_schema("census-income")


def test_ports_are_satisfied_by_the_doubles():
    assert isinstance(EchoBackend(), Backend)
    assert isinstance(ListSink(), Sink)


@pytest.mark.parametrize("concurrency,batch", [(1, 1), (8, 1), (8, 7), (32, 3)])
def test_outcomes_come_out_in_input_order(schema, concurrency, batch):
    backend = EchoBackend(max_batch_size=batch, jitter_s=0.002)
    sink = ListSink()
    pipeline = Pipeline(schema, backend, [sink], concurrency=concurrency, sink_chunk=17)
    report = pipeline.run(rows(300, bad_every=11), source="mem")
    pipeline.close()
    assert [o.line for o in sink.outcomes] == list(range(1, 301))
    for o in sink.outcomes:
        if o.line % 11 == 0:
            assert o.status is Status.REJECTED
            assert o.errors[0].field == "age"
        else:
            assert o.status is Status.OK
            assert o.prediction.label == str(17 + o.line % 70)
    assert (report.total, report.rejected, report.ok) == (300, 27, 273)
    assert report.reconciles
    assert sink.closed == 1 and sink.aborted == 0
    assert max(backend.calls) <= batch
    if concurrency > 1:
        assert len(backend.threads) > 1


def test_unreadable_rows_become_rejects_with_their_reason(schema):
    bad = SourceRow(line=2, fields=None, raw="x,y", error="expected 15 fields, got 2")
    outcomes, _ = Pipeline(schema, EchoBackend()).score_records([GOOD], source="m")
    assert outcomes[0].status is Status.OK
    sink = ListSink()
    Pipeline(schema, EchoBackend(), [sink]).run([rows(1)[0], bad], source="f")
    assert sink.outcomes[1].status is Status.REJECTED
    assert sink.outcomes[1].reasons == ["expected 15 fields, got 2"]
    assert sink.outcomes[1].key == "f#2"


def test_backend_failures_are_outcomes_not_exceptions(schema):
    exhausted = RetriesExhaustedError(ThrottledError("slow down", code="Throttling"), attempts=5,
                                      why="max attempts")
    backend = EchoBackend(max_batch_size=1, fail_ages={20.0: exhausted})
    sink = ListSink()
    report = Pipeline(schema, backend, [sink], concurrency=4).run(rows(140), source="s")
    failed = [o for o in sink.outcomes if o.status is Status.FAILED]
    assert len(failed) == 2 and all(o.record["age"] == 20.0 for o in failed)
    assert "gave up after 5 attempt(s)" in failed[0].reasons[0]
    assert report.failed == 2 and report.exhausted == 2 and report.retries == 8
    assert report.reconciles


def test_a_non_retryable_error_in_a_batch_only_fails_its_own_record(schema):
    backend = EchoBackend(max_batch_size=10, fail_ages={21.0: InvalidRecordError("bad value")})
    sink = ListSink()
    report = Pipeline(schema, backend, [sink], concurrency=2).run(rows(30), source="s")
    assert report.failed == 1 and report.ok == 29
    assert [o.line for o in sink.outcomes if o.status is Status.FAILED] == [4]


def test_an_unexpected_adapter_bug_fails_records_without_losing_them(schema):
    backend = EchoBackend(max_batch_size=5, fail_ages={22.0: KeyError("oops")})
    report = Pipeline(schema, backend, [ListSink()], concurrency=2).run(rows(20), source="s")
    assert report.failed == 5 and report.ok == 15 and report.reconciles


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_configuration_error_stops_the_run_instead_of_failing_every_row(schema, concurrency):
    backend = EchoBackend(fail_ages={18.0: ConfigurationError("AWS credentials: none")})
    sink = ListSink()
    pipeline = Pipeline(schema, backend, [sink], concurrency=concurrency)
    with pytest.raises(ConfigurationError, match="credentials"):
        pipeline.run(rows(50), source="s")
    pipeline.close()
    assert sink.aborted == 1 and sink.closed == 0


def test_the_deadline_stops_reading_and_the_report_says_where(schema):
    class AfterCalls:
        def __init__(self, backend, n):
            self.backend, self.n = backend, n

        def expired(self):
            return len(self.backend.calls) >= self.n

    backend = EchoBackend(max_batch_size=10, io_bound=False)
    sink = ListSink()
    pipeline = Pipeline(schema, backend, [sink], deadline=AfterCalls(backend, 4), sink_chunk=10)
    report = pipeline.run(rows(100), source="s")
    # 4 batches scored; the 4th answered after the deadline: sinks write no more, so its
    # rows are not done (the retry scores them again)
    assert report.interrupted and report.total == 30 and report.last_line == 30
    assert [o.line for o in sink.outcomes] == list(range(1, 31))


class AfterCalls:
    """A deadline that expires once the backend was called ``n`` times."""

    def __init__(self, backend, n):
        self.backend, self.n = backend, n

    def expired(self):
        return len(self.backend.calls) >= self.n


def test_a_cut_run_counts_only_the_whole_chunks_its_sinks_got(schema):
    backend = EchoBackend(max_batch_size=10, io_bound=False)
    sink = ListSink()
    pipeline = Pipeline(schema, backend, [sink], deadline=AfterCalls(backend, 4), sink_chunk=25)
    report = pipeline.run(rows(100, bad_every=7), source="s")
    # 40 rows scored, 25 written: the partial chunk is taken back from the counts.
    assert report.interrupted and report.last_line == 25 and report.total == 25
    assert [o.line for o in sink.outcomes] == list(range(1, 26)) and sink.aborted == 1
    assert report.rejected == 3 and report.ok == 22 and report.reconciles  # lines 7, 14, 21
    assert sum(report.reasons.values()) == 3


def test_a_sink_failure_aborts_every_sink_and_propagates(schema):
    good, bad = ListSink(), ListSink(fail_after=10)
    pipeline = Pipeline(schema, EchoBackend(), [good, bad], sink_chunk=10)
    with pytest.raises(SinkError):
        pipeline.run(rows(50), source="s")
    assert good.aborted == 1 and bad.aborted == 1 and good.closed == 0


class StopsAtTheDeadline(ListSink):
    """A keyed sink whose ``write`` of the chunk holding ``line`` is cut by the deadline
    (or fails otherwise) after its first ``written`` outcomes, as the DynamoDB sink's
    batches are."""

    def __init__(self, line: int, written: int, *, deadline: bool = True) -> None:
        super().__init__()
        self.line, self.written, self.deadline = line, written, deadline

    def write(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes[0].line <= self.line <= outcomes[-1].line:
            self.outcomes.extend(outcomes[: self.written])
            raise SinkWriteError(self.name, "not attempted: the deadline passed",
                                 [o.key for o in outcomes[self.written:]],
                                 written=self.written, deadline=self.deadline)
        self.outcomes.extend(outcomes)


def test_a_sink_stopped_by_the_deadline_interrupts_the_run_at_the_chunk_before(schema):
    keyed, per_run = StopsAtTheDeadline(line=30, written=5), ListSink()
    pipeline = Pipeline(schema, EchoBackend(), [keyed, per_run], sink_chunk=25)

    report = pipeline.run(rows(100), source="s")

    # the chunk 26-50 is not done: uncounted, and the sinks after the cut one never got it
    assert report.interrupted and (report.last_line, report.total) == (25, 25)
    assert report.reconciles and per_run.aborted == 1  # a cut run: no half per-run output
    assert [o.line for o in per_run.outcomes] == list(range(1, 26))
    assert [o.line for o in keyed.outcomes] == list(range(1, 31))  # keyed: rewritten later
    failing = StopsAtTheDeadline(line=30, written=5, deadline=False)
    with pytest.raises(SinkWriteError):  # any other write failure still propagates
        Pipeline(schema, EchoBackend(), [failing], sink_chunk=25).run(rows(100), source="s")
    assert failing.aborted == 1


def test_memory_stays_bounded_for_a_long_input(schema):
    """Outcomes stream: the generator holds only the window, not the input."""
    produced = 0

    def endless():
        nonlocal produced
        for row in rows(10_000):
            produced += 1
            yield row

    backend = EchoBackend(max_batch_size=5)
    pipeline = Pipeline(schema, backend, concurrency=4)
    stream = pipeline.outcomes(endless(), source="s")
    first = next(stream)
    assert first.line == 1
    assert produced <= 4 * 2 * 5 + 5  # window of 2 x concurrency units of 5 records
    pipeline.close()


class NotTriedAfter:
    """A backend double whose calls after the first ``n`` find the deadline passed (as
    RetryPolicy reports it: no attempt made)."""

    name, model_id, io_bound = "late", "late-1", False

    def __init__(self, n: int, batch: int) -> None:
        self.n, self.max_batch_size, self.calls = n, batch, 0

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        return self.predict_batch([record])[0]

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        self.calls += 1
        if self.calls > self.n:
            cut = BackendError("the deadline passed before the first attempt", attempts=0)
            raise RetriesExhaustedError(cut, attempts=0, why="deadline")
        return [Prediction("x", {"x": 1.0}, None, self.name, self.model_id, 1.0)
                for _ in records]

    def close(self) -> None:
        pass


def test_a_record_the_deadline_left_untried_is_not_done_not_failed(schema):
    sink = ListSink()
    pipeline = Pipeline(schema, NotTriedAfter(2, batch=5), [sink], sink_chunk=5)
    report = pipeline.run(rows(30, bad_every=12), source="s")
    assert report.interrupted and report.failed == 0  # untried rows are not "failed"
    assert report.last_line == 10 and [o.line for o in sink.outcomes] == list(range(1, 11))
    assert sink.aborted == 1 and sink.closed == 0  # a cut run commits nothing

    outcomes, scored = Pipeline(schema, NotTriedAfter(1, batch=5)).score_records(
        [r.fields for r in rows(12)], source="api")
    assert scored.interrupted and scored.failed == 0 and [o.line for o in outcomes] == [
        1, 2, 3, 4, 5]


def test_sinks_write_nothing_once_the_deadline_passed(schema):
    class At:
        expired_now = False

        def expired(self):
            return self.expired_now

    deadline, sink = At(), ListSink()
    backend = EchoBackend(max_batch_size=10, io_bound=False)

    def late(records):  # the deadline passes while the 3rd batch is being scored
        if len(backend.calls) == 2:
            deadline.expired_now = True
        return EchoBackend.predict_batch(backend, records)

    backend.predict_batch = late  # type: ignore[method-assign]
    report = Pipeline(schema, backend, [sink], deadline=deadline, sink_chunk=10).run(
        rows(50), source="s")
    assert report.interrupted and report.total == 20  # the 3rd chunk is not written
    assert [o.line for o in sink.outcomes] == list(range(1, 21)) and sink.closed == 0

    class SlowLastWrite(ListSink):
        def write(self, outcomes):
            super().write(outcomes)
            if outcomes[-1].line == 50:  # every row written; the deadline passes now
                deadline.expired_now = True

    deadline.expired_now, sink = False, SlowLastWrite()
    report = Pipeline(schema, EchoBackend(max_batch_size=10, io_bound=False), [sink],
                      deadline=deadline, sink_chunk=10).run(rows(50), source="s")
    assert report.interrupted and report.total == 50  # written, but not committed:
    assert sink.closed == 0 and sink.aborted == 1  # the retry writes it whole
