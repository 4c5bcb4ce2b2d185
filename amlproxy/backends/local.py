"""The local backend: scores records in process with a bundled or saved logistic model.

No network and no retries: it is the reference the other backends are compared with,
the offline fallback and the baseline of the benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from amlproxy.core.prediction import Prediction
from amlproxy.errors import ConfigurationError, InvalidRecordError
from amlproxy.localmodel.logreg import LogisticModel, load_bundled


class LocalBackend:
    """A :class:`~amlproxy.core.ports.Backend` backed by a pure-Python :class:`LogisticModel`.

    ``model`` is used as given; else ``model_path`` names an artifact to load; else the
    bundled census-income model is used. A record the model cannot score (a numeric
    attribute that is not a number) raises :class:`~amlproxy.errors.InvalidRecordError`
    with code ``InvalidInput``, like an endpoint refusing it.
    """

    name = "local"
    io_bound = False

    def __init__(
        self,
        model: LogisticModel | None = None,
        *,
        model_path: str | None = None,
        max_batch_size: int = 512,
    ) -> None:
        if model is not None and model_path is not None:
            raise ConfigurationError("LocalBackend takes a model or a model_path, not both")
        if max_batch_size < 1:
            raise ConfigurationError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if model is None:
            model = LogisticModel.load(model_path) if model_path is not None else load_bundled()
        self.model = model
        self.model_id: str = model.name
        self.max_batch_size = max_batch_size

    def __repr__(self) -> str:
        return f"LocalBackend(model_id={self.model_id!r})"

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        started = time.perf_counter()
        try:
            label, scores = self.model.predict(record)
        except (ValueError, TypeError) as exc:
            raise InvalidRecordError(str(exc), code="InvalidInput") from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        return Prediction(label, scores, None, self.name, self.model_id, latency_ms)

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """One Prediction per record, in order; they share the batch's latency."""
        started = time.perf_counter()
        predict = self.model.predict
        try:
            answers = [predict(record) for record in records]
        except (ValueError, TypeError):
            answers = []
            for i, record in enumerate(records, 1):  # find the culprit for the message
                try:
                    answers.append(predict(record))
                except (ValueError, TypeError) as exc:
                    raise InvalidRecordError(
                        f"record {i} of the batch: {exc}", code="InvalidInput"
                    ) from exc
            raise  # pragma: no cover - the records scored the second time
        latency_ms = (time.perf_counter() - started) * 1000.0
        name, model_id = self.name, self.model_id
        return [
            Prediction(label, scores, None, name, model_id, latency_ms) for label, scores in answers
        ]

    def close(self) -> None:
        """Nothing to release: the model is plain Python objects."""
