"""The normalised prediction every backend returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)  # not frozen: see the class docstring
class Prediction:
    """One backend's answer for one record, whatever the backend.

    - ``label``: the predicted class (classification), else None;
    - ``scores``: a score for each label (probabilities for the bundled model);
    - ``value``: the predicted value (regression), else None;
    - ``backend`` and ``model_id``: who answered;
    - ``latency_ms``: wall time of the call that produced it (shared by a batch);
    - ``attempts``: calls made, retries included;
    - ``extra``: backend-specific details (shadow agreement, variant invoked...).

    Read-only by convention; not frozen, for speed (see
    :class:`~amlproxy.core.outcome.SourceRow`).
    """

    label: str | None
    scores: Mapping[str, float]
    value: float | None
    backend: str
    model_id: str
    latency_ms: float
    attempts: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "scores": dict(self.scores),
            "value": self.value,
            "backend": self.backend,
            "model_id": self.model_id,
            "latency_ms": round(self.latency_ms, 3),
            "attempts": self.attempts,
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out
