"""The summary of one pipeline run: counts that always reconcile, and timings."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from amlproxy.core.outcome import Outcome, Status

# The variable parts of a reason: quoted values and numbers that stand alone (the 8 of
# "UTF-8" or the 2 of "s3v2" are parts of words, not values).
_SLOT = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|(?<![\w.-])-?\d+(?:\.\d+)?(?![\w])")
VARIES = "…"  # shown for a value that varies within a group
_MARK = "\ue000"  # a private-use character: marks the slots inside a template
REASONS_SHOWN = 10


def reason_template(reason: str) -> tuple[str, tuple[str, ...]]:
    """``(template, values)``: the reason with its quoted values and numbers replaced by
    a slot mark, and those values. Reasons of one kind share a template."""
    return _SLOT.sub(_MARK, reason), tuple(m.group(0) for m in _SLOT.finditer(reason))


def merge_example(seen: list[str | None] | None, values: tuple[str, ...]) -> list[str | None]:
    """The values of a template's reasons so far: a value that differed between two of
    them becomes None (shown as ``…``)."""
    if seen is None or len(seen) != len(values):
        return list(values)
    return [a if a == b else None for a, b in zip(seen, values, strict=True)]


def fill_template(template: str, values: list[str | None]) -> str:
    """The template with the values that never varied put back (``…`` for the others)."""
    parts = template.split(_MARK)
    if len(parts) != len(values) + 1:
        return template.replace(_MARK, VARIES)
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out += [value if value is not None else VARIES, part]
    return "".join(out)


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
    # reason key -> (field prefix, template, its values so far: None where they varied)
    _examples: dict[str, tuple[str, str, list[str | None]]] = field(
        default_factory=dict, repr=False)

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
            # Group by field and the template of the reason, not by the offending value.
            template, values = reason_template(error.reason)
            prefix = f"{error.field}: " if error.field else ""
            key = prefix + template
            self.reasons[key] += step
            if step > 0:
                seen = self._examples.get(key)
                merged = merge_example(seen[2] if seen else None, values)
                self._examples[key] = (prefix, template, merged)
            if self.reasons[key] <= 0:
                del self.reasons[key]

    def reason_text(self, key: str) -> str:
        """A grouped reason as shown: its template with the values that never varied."""
        example = self._examples.get(key)
        if example is None:
            return key.replace(_MARK, VARIES)
        prefix, template, values = example
        return prefix + fill_template(template, values)

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
            "top_reasons": {self.reason_text(k): n for k, n in self.reasons.most_common(10)},
            "reason_kinds": len(self.reasons),
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
        shown = self.reasons.most_common(REASONS_SHOWN)
        for key, n in shown:
            lines.append(f"  {n:>7}  {self.reason_text(key)}")
        rest = len(self.reasons) - len(shown)
        if rest > 0:
            records = sum(self.reasons.values()) - sum(n for _, n in shown)
            lines.append(f"  ... and {rest} more kind(s) of reason ({records} in all): "
                         "the rejects output has every one")
        return lines
