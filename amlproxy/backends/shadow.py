"""The shadow backend: score with a primary backend, compare with a second one.

For moving off Amazon ML: the primary (say AML) keeps answering while the shadow (say a
SageMaker endpoint or the local model) scores the same records; every Prediction carries
``extra["shadow"] = {"label", "scores", "value", "agree", "score_diff", "error"}`` and the
backend keeps running agreement statistics (:meth:`ShadowBackend.report`): agreement
rate, label mismatches, mean and p99 of the score differences. A shadow failure never
fails a record; a primary failure does, as it would without the shadow.

The comparison is right or refuses: two answers that are not in the same terms (a label
against a bare value, or class scores with no class in common, such as Amazon ML's "0"/"1"
against "<=50K"/">50K") raise :class:`~amlproxy.errors.ShadowComparisonError` instead of
counting as disagreements. Naming the classes (the composition root finds them in the
model, the schema's target or ``AMLPROXY_LABELS``) puts both in the same terms.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from amlproxy.core.ports import Backend
from amlproxy.core.prediction import Prediction
from amlproxy.errors import BackendError, ShadowComparisonError

_BUCKET_BASE = math.log(1.01)  # score differences are kept to within 1% for the p99
_TINY = 1e-12  # differences below this are rounding: bucket 0 ("equal")


def score_difference(primary: Prediction, shadow: Prediction) -> float | None:
    """The largest absolute difference between the two predictions' scores for the labels
    both give, or between their values (regression); None when nothing is comparable."""
    common = primary.scores.keys() & shadow.scores.keys()
    if common:
        return max(abs(primary.scores[k] - shadow.scores[k]) for k in common)
    if primary.value is not None and shadow.value is not None:
        return abs(primary.value - shadow.value)
    return None


def incomparable(primary: Prediction, shadow: Prediction) -> str | None:
    """Why two answers are not in the same terms, or None when they can be compared."""
    if (primary.label is None) != (shadow.label is None):
        def what(p: Prediction) -> str:
            return f"the label {p.label!r}" if p.label is not None else f"the value {p.value}"

        return f"{what(primary)} against {what(shadow)}"
    if primary.label is None:
        return None if primary.value is not None and shadow.value is not None else (
            "neither a label nor a value")
    a = set(primary.scores) or {str(primary.label)}
    b = set(shadow.scores) or {str(shadow.label)}
    if not a & b or (primary.scores and shadow.label not in a) or (
            shadow.scores and primary.label not in b):
        return f"classes {sorted(a)} against {sorted(b)}"
    return None


def comparison_lines(stats: Mapping[str, Any]) -> list[str]:
    """The shadow comparison in the run summary."""
    compared = stats.get("compared") or 0
    lines = [f"shadow: {stats.get('primary')} compared with {stats.get('shadow')} on "
             f"{compared} records"]
    rate = stats.get("agreement_rate")
    if rate is not None:
        lines.append(
            f"  agreement {rate:.4f} ({stats.get('agreed')} of {compared}, score tolerance "
            f"{stats.get('score_tolerance')}), label mismatches {stats.get('label_mismatches')}")
    mean, p99 = stats.get("mean_abs_score_diff"), stats.get("p99_abs_score_diff")
    if mean is not None:
        lines.append(f"  score difference: mean {mean:.4g}, p99 {p99:.4g}, "
                     f"max {stats.get('max_abs_score_diff'):.4g}")
    if stats.get("shadow_errors"):
        lines.append(f"  shadow errors {stats['shadow_errors']} (last: "
                     f"{stats.get('last_shadow_error')})")
    return lines


class ScoreDiffs:
    """Counts, mean, max and quantiles of score differences in bounded memory: a
    histogram of logarithmic buckets (1% wide), so a p99 is within 1% of the exact one."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._buckets: Counter[int] = Counter()

    def add(self, diff: float) -> None:
        self.count += 1
        self.total += diff
        self.max = max(self.max, diff)
        bucket = 0 if diff < _TINY else max(1, math.ceil(math.log(diff / _TINY) / _BUCKET_BASE))
        self._buckets[bucket] += 1

    def merge(self, other: ScoreDiffs) -> None:
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self._buckets.update(other._buckets)

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile (capped at the max)."""
        if not self.count:
            return None
        rank, seen = math.ceil(q * self.count), 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                upper = 0.0 if bucket == 0 else _TINY * math.exp(bucket * _BUCKET_BASE)
                return min(upper, self.max)
        return self.max


class ShadowBackend:
    """Returns the ``primary``'s predictions, compared with the ``shadow``'s.

    Two predictions agree when their labels are equal and their scores (or values) differ
    by at most ``score_tolerance``. With ``parallel`` (default when the shadow is
    I/O-bound) the shadow is called on its own thread pool while the primary answers, so
    the shadow adds no latency when it is not the slower of the two.
    """

    name = "shadow"

    def __init__(
        self,
        primary: Backend,
        shadow: Backend,
        *,
        score_tolerance: float = 0.05,
        parallel: bool | None = None,
        concurrency: int = 32,
    ) -> None:
        self.primary = primary
        self.shadow = shadow
        self.score_tolerance = score_tolerance
        self.model_id = primary.model_id
        self.max_batch_size = primary.max_batch_size
        self.io_bound = primary.io_bound or shadow.io_bound
        parallel = shadow.io_bound if parallel is None else parallel
        self._executor = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="amlproxy-shadow")
            if parallel
            else None
        )
        self._lock = threading.Lock()
        self._compared = 0
        self._agreed = 0
        self._label_mismatches = 0
        self._diffs = ScoreDiffs()
        self._errors = 0
        self._last_error: str | None = None

    # -------------------------------------------------------------------- Backend

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        return self.predict_batch([record])[0]

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        pending: Future[list[Prediction]] | None = None
        if self._executor is not None:
            pending = self._executor.submit(contextvars.copy_context().run, self._shadow_batch,
                                            records)  # the caller's context: its trace span
        try:
            answers = self.primary.predict_batch(records)
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        error: str | None = None
        try:
            shadows = pending.result() if pending is not None else self._shadow_batch(records)
        except BackendError as exc:
            shadows, error = [], str(exc)
        except Exception as exc:  # a broken shadow must not fail the primary's records
            shadows, error = [], f"unexpected {type(exc).__name__}: {exc}"
        if error is None and len(shadows) != len(answers):
            shadows, error = [], f"shadow returned {len(shadows)} for {len(answers)} records"
        if error is not None:
            self._count_error(len(answers), error)
            extra = {"label": None, "scores": None, "value": None, "agree": False,
                     "score_diff": None, "error": error}
            return [replace(p, extra={**p.extra, "shadow": extra}) for p in answers]
        return self._compare(answers, shadows)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        try:
            self.primary.close()
        finally:
            self.shadow.close()

    # ------------------------------------------------------------------ statistics

    def report(self) -> dict[str, Any]:
        """Running agreement statistics (thread-safe snapshot)."""
        with self._lock:
            compared = self._compared
            return {
                "primary": f"{self.primary.name}:{self.primary.model_id}",
                "shadow": f"{self.shadow.name}:{self.shadow.model_id}",
                "compared": compared,
                "agreed": self._agreed,
                "agreement_rate": self._agreed / compared if compared else None,
                "label_mismatches": self._label_mismatches,
                "mean_abs_score_diff": (
                    self._diffs.total / self._diffs.count if self._diffs.count else None
                ),
                "p99_abs_score_diff": self._diffs.quantile(0.99),
                "max_abs_score_diff": self._diffs.max if self._diffs.count else None,
                "score_tolerance": self.score_tolerance,
                "shadow_errors": self._errors,
                "last_shadow_error": self._last_error,
            }

    def summary(self) -> dict[str, Any]:
        """What the pipeline's run report includes under ``extra["backend"]``."""
        return {"backend": "shadow", "shadow_comparison": self.report()}

    # ------------------------------------------------------------------- internals

    def _shadow_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        step = max(1, self.shadow.max_batch_size)
        if len(records) <= step:
            return self.shadow.predict_batch(records)
        out: list[Prediction] = []
        for first in range(0, len(records), step):
            out.extend(self.shadow.predict_batch(records[first : first + step]))
        return out

    def _compare(self, answers: list[Prediction], shadows: list[Prediction]) -> list[Prediction]:
        tolerance = self.score_tolerance
        out: list[Prediction] = []
        agreed = mismatched = 0
        diffs = ScoreDiffs()
        for primary, shadow in zip(answers, shadows, strict=True):
            why = incomparable(primary, shadow)
            if why is not None:
                raise ShadowComparisonError(
                    f"cannot compare {self.primary.name} with {self.shadow.name}: {why}; "
                    "name the classes with --labels NEG,POS (or AMLPROXY_LABELS), negative "
                    "first, so that both answer in the same terms"
                )
            diff = score_difference(primary, shadow)
            same_label = primary.label == shadow.label
            agree = same_label and (diff is None or diff <= tolerance)
            agreed += agree
            mismatched += not same_label
            if diff is not None:
                diffs.add(diff)
            extra = {"label": shadow.label, "scores": dict(shadow.scores),
                     "value": shadow.value, "agree": agree, "score_diff": diff, "error": None}
            out.append(replace(primary, extra={**primary.extra, "shadow": extra}))
        with self._lock:
            self._compared += len(out)
            self._agreed += agreed
            self._label_mismatches += mismatched
            self._diffs.merge(diffs)
        return out

    def _count_error(self, count: int, error: str) -> None:
        with self._lock:
            self._errors += count
            self._last_error = error
