"""The shadow backend: score with a primary backend, compare with a second one.

For moving off Amazon ML: the primary (say AML) keeps answering while the shadow (say a
SageMaker endpoint or the local model) scores the same records; every Prediction carries
``extra["shadow"] = {"label", "agree", "score_diff", "error"}`` and the backend keeps
running agreement statistics (:meth:`ShadowBackend.report`). A shadow failure never fails
a record; a primary failure does, as it would without the shadow.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from amlproxy.core.ports import Backend
from amlproxy.core.prediction import Prediction
from amlproxy.errors import BackendError


def score_difference(primary: Prediction, shadow: Prediction) -> float | None:
    """The largest absolute difference between the two predictions' scores for the labels
    both give, or between their values (regression); None when nothing is comparable."""
    common = primary.scores.keys() & shadow.scores.keys()
    if common:
        return max(abs(primary.scores[k] - shadow.scores[k]) for k in common)
    if primary.value is not None and shadow.value is not None:
        return abs(primary.value - shadow.value)
    return None


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
        self._diff_count = 0
        self._diff_sum = 0.0
        self._diff_max = 0.0
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
            extra = {"label": None, "agree": False, "score_diff": None, "error": error}
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
                    self._diff_sum / self._diff_count if self._diff_count else None
                ),
                "max_abs_score_diff": self._diff_max if self._diff_count else None,
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
        agreed = mismatched = diffs = 0
        diff_sum = diff_max = 0.0
        for primary, shadow in zip(answers, shadows, strict=True):
            diff = score_difference(primary, shadow)
            same_label = primary.label == shadow.label
            agree = same_label and (diff is None or diff <= tolerance)
            agreed += agree
            mismatched += not same_label
            if diff is not None:
                diffs += 1
                diff_sum += diff
                diff_max = max(diff_max, diff)
            extra = {"label": shadow.label, "agree": agree, "score_diff": diff, "error": None}
            out.append(replace(primary, extra={**primary.extra, "shadow": extra}))
        with self._lock:
            self._compared += len(out)
            self._agreed += agreed
            self._label_mismatches += mismatched
            self._diff_count += diffs
            self._diff_sum += diff_sum
            self._diff_max = max(self._diff_max, diff_max)
        return out

    def _count_error(self, count: int, error: str) -> None:
        with self._lock:
            self._errors += count
            self._last_error = error
