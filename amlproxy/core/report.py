"""The summary of one pipeline run: counts that always reconcile, and timings."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from amlproxy.core.outcome import Outcome, Status

_KIND_END = re.compile(r"['(:]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class Report:
    """Counts and timings of a run.

    ``total == ok + rejected + failed`` always holds (see :attr:`reconciles`).
    ``retries`` counts the extra calls made by the retry policy; ``exhausted`` the records
    whose retries ran out. ``interrupted`` is set when a deadline stopped the run before
    the input was consumed; ``last_line`` is then the last line that has an outcome (in
    the sinks, when the run had sinks: see :meth:`Pipeline.run`).
    """

    source: str
    total: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    exhausted: int = 0
    interrupted: bool = False
    last_line: int = 0
    elapsed_s: float = 0.0
    validate_s: float = 0.0
    predict_s: float = 0.0
    sink_s: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.total == self.ok + self.rejected + self.failed

    def count(self, outcome: Outcome) -> None:
        self._tally(outcome, 1)
        self.last_line = outcome.line
        prediction = outcome.prediction
        if prediction is not None and prediction.attempts > 1:
            self.retries += prediction.attempts - 1

    def count_all(self, outcomes: Sequence[Outcome]) -> None:
        """:meth:`count` for each of ``outcomes``, in order (one call per batch)."""
        if not outcomes:
            return
        ok_status = Status.OK
        ok = 0
        for outcome in outcomes:
            if outcome.status is ok_status:
                ok += 1
                prediction = outcome.prediction
                if prediction is not None and prediction.attempts > 1:
                    self.retries += prediction.attempts - 1
            else:
                self._tally(outcome, 1)
        self.total += ok
        self.ok += ok
        self.last_line = outcomes[-1].line

    def uncount(self, outcomes: Sequence[Outcome]) -> None:
        """Takes back the last ``outcomes`` counted (an interrupted run's unwritten tail):
        ``last_line`` becomes the line before the first of them. ``retries`` and
        ``exhausted`` stay: those calls were made (the retry scores these rows again)."""
        for outcome in outcomes:
            self._tally(outcome, -1)
        if outcomes:
            self.last_line = outcomes[0].line - 1

    def _tally(self, outcome: Outcome, step: int) -> None:
        """Adds ``step`` (1 or -1) to the total, the outcome's status and its reasons."""
        self.total += step
        status = outcome.status
        if status is Status.OK:
            self.ok += step
            return
        if status is Status.REJECTED:
            self.rejected += step
        else:
            self.failed += step
        for error in outcome.errors:
            # Group by field and the kind of reason, not by the offending value.
            reason = _KIND_END.split(error.reason, 1)[0].strip()
            reason = _NUMBER.sub("N", reason)
            key = f"{error.field}: {reason}" if error.field else reason
            self.reasons[key] += step
            if self.reasons[key] <= 0:
                del self.reasons[key]

    @property
    def records_per_s(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "total": self.total,
            "ok": self.ok,
            "rejected": self.rejected,
            "failed": self.failed,
            "reconciles": self.reconciles,
            "retries": self.retries,
            "exhausted": self.exhausted,
            "interrupted": self.interrupted,
            "last_line": self.last_line,
            "elapsed_s": round(self.elapsed_s, 4),
            "records_per_s": round(self.records_per_s, 1),
            "timings_s": {
                "validate": round(self.validate_s, 4),
                "predict": round(self.predict_s, 4),
                "sink": round(self.sink_s, 4),
            },
            "top_reasons": dict(self.reasons.most_common(10)),
            **self.extra,
        }

    def summary_lines(self) -> list[str]:
        lines = [
            f"{self.source}: {self.total} records: {self.ok} ok, {self.rejected} rejected, "
            f"{self.failed} failed ({self.elapsed_s:.2f} s, {self.records_per_s:,.0f} records/s)",
        ]
        if self.retries or self.exhausted:
            lines.append(f"retries: {self.retries}, exhausted: {self.exhausted}")
        if self.interrupted:
            lines.append(f"interrupted by the deadline after line {self.last_line}")
        for reason, n in self.reasons.most_common(5):
            lines.append(f"  {n:>7}  {reason}")
        return lines
