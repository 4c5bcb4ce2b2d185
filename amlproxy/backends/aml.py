"""The Amazon Machine Learning backend (``machinelearning`` ``Predict``): one record per call.

``Record`` is a string-to-string map: numbers are written as Amazon ML reads them (integral
floats without ``.0``), booleans as ``true``/``false``, and a missing value (None) leaves
its key out, which is how Amazon ML is told that a value is missing.

The real-time endpoint (``PredictEndpoint``) is given, or found once with ``GetMLModel``
(``discover_endpoint``). An optional client-side rate limit (:class:`TokenBucket`) keeps
the calls of every thread under ``rate_limit_rps``, below Amazon ML's 200 requests/s per
endpoint, rather than provoking throttling.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.backends._aws import DEFAULT_READ_TIMEOUT_S, make_client, map_botocore_error
from amlproxy.core.prediction import Prediction
from amlproxy.core.ratelimit import TokenBucket
from amlproxy.core.retry import RetryPolicy
from amlproxy.errors import (
    ConfigurationError,
    ModelResponseError,
    NonRetryableBackendError,
    ThrottledError,
)

if TYPE_CHECKING:
    from mypy_boto3_machinelearning import MachineLearningClient


def aml_value(value: Any) -> str:
    """One record value as the text Amazon ML expects (None is never passed here)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value.is_integer() and -1e15 < value < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def aml_record(record: Mapping[str, Any]) -> dict[str, str]:
    """The ``Record`` map of a validated record; missing values are left out."""
    return {name: aml_value(value) for name, value in record.items() if value is not None}


BINARY_LABELS = ("0", "1")


class AmlBackend:
    """Scores records on an Amazon ML real-time endpoint, one ``Predict`` call each.

    A binary model answers ``predictedLabel`` ``"0"`` or ``"1"`` and one score, P(``"1"``);
    it is normalised to a score for each of the two labels, named by ``labels``
    (``(negative, positive)``, default ``("0", "1")``): ``{"0": 1 - p, "1": p}``, so that
    it compares with other backends. Multiclass scores are kept as given; regression
    models give ``value``. ``PredictorNotMountedException`` (the real-time endpoint is not
    up yet) is retried like throttling.
    """

    name = "aml"
    io_bound = True
    max_batch_size = 1

    def __init__(
        self,
        model_id: str,
        *,
        predict_endpoint: str | None = None,
        discover_endpoint: bool = False,
        rate_limit_rps: float | None = None,
        labels: tuple[str, str] | None = None,
        concurrency: int = 8,
        retry_policy: RetryPolicy | None = None,
        client: MachineLearningClient | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self.model_id = model_id
        self.labels = labels or BINARY_LABELS
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self.rate_limiter = TokenBucket(rate_limit_rps) if rate_limit_rps else None
        self._client: MachineLearningClient = client or make_client(
            "machinelearning",
            concurrency=concurrency,
            region=region,
            endpoint_url=endpoint_url,
            read_timeout_s=read_timeout_s,
            deadline=self.retry_policy.deadline,
        )
        if predict_endpoint is None:
            if not discover_endpoint:
                raise ConfigurationError(
                    f"Amazon ML model {model_id}: give predict_endpoint or discover_endpoint"
                )
            predict_endpoint = self.discover_endpoint()
        self.predict_endpoint = predict_endpoint

    def discover_endpoint(self) -> str:
        """The model's real-time endpoint URL from ``GetMLModel``; ConfigurationError if
        the model does not exist or its endpoint is not READY."""
        info = self._get_ml_model(verbose=False).get("EndpointInfo") or {}
        status, url = info.get("EndpointStatus"), info.get("EndpointUrl")
        if status != "READY" or not url:
            raise ConfigurationError(
                f"Amazon ML model {self.model_id} has no ready real-time endpoint"
                f" (EndpointStatus={status or 'NONE'}); create one with CreateRealtimeEndpoint"
            )
        return str(url)

    def model_labels(self) -> tuple[str, str] | None:
        """The names of a binary model's classes "0" and "1", when ``GetMLModel``
        (verbose) gives the schema of its training data with the target's categories;
        None otherwise (a multiclass model names its classes in every answer)."""
        from amlproxy.backends.labels import labels_from_schema_document

        model = self._get_ml_model(verbose=True)
        if model.get("MLModelType") != "BINARY":
            return None
        labels = labels_from_schema_document(model.get("Schema"))
        return (labels[0], labels[1]) if labels is not None and len(labels) == 2 else None

    def _get_ml_model(self, *, verbose: bool) -> Mapping[str, Any]:
        """``GetMLModel``, under the retry policy; ConfigurationError if it cannot be."""

        def call() -> Any:
            try:
                return self._client.get_ml_model(MLModelId=self.model_id, Verbose=verbose)
            except (ClientError, BotoCoreError) as exc:
                raise map_botocore_error(exc) from exc

        try:
            model, _ = self.retry_policy.call(call)
        except NonRetryableBackendError as exc:
            raise ConfigurationError(f"Amazon ML model {self.model_id}: {exc}") from exc
        return model  # type: ignore[no-any-return]

    # -------------------------------------------------------------------- Backend

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        client, limiter, deadline = self._client, self.rate_limiter, self.retry_policy.deadline
        model_id, endpoint = self.model_id, self.predict_endpoint
        fields = aml_record(record)

        def call() -> tuple[Mapping[str, Any], float]:
            if limiter is not None and not limiter.acquire(timeout=deadline.remaining()):
                raise ThrottledError(
                    "client-side rate limit: no slot before the deadline", code="ClientRateLimit"
                )
            started = time.perf_counter()
            try:
                response = client.predict(
                    MLModelId=model_id, Record=fields, PredictEndpoint=endpoint
                )
            except (ClientError, BotoCoreError) as exc:
                raise map_botocore_error(exc) from exc
            return response.get("Prediction") or {}, (time.perf_counter() - started) * 1000.0

        (answer, latency_ms), attempts = self.retry_policy.call(call)
        try:
            label, scores, value = _normalise(answer, self.labels)
        except ModelResponseError as exc:
            exc.attempts = attempts
            raise
        return Prediction(label, scores, value, "aml", model_id, latency_ms, attempts)

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return [self.predict(record) for record in records]

    def close(self) -> None:
        self._client.close()


def _normalise(
    answer: Mapping[str, Any], labels: tuple[str, str]
) -> tuple[str | None, dict[str, float], float | None]:
    label = answer.get("predictedLabel")
    raw_scores = answer.get("predictedScores") or {}
    value = answer.get("predictedValue")
    if label is None and value is None:
        raise ModelResponseError(f"no predictedLabel or predictedValue in {dict(answer)!r}")
    try:
        scores = {str(k): float(v) for k, v in raw_scores.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelResponseError(f"bad predictedScores {raw_scores!r}") from exc
    if label is not None:
        label = str(label)
        details = answer.get("details") or {}
        binary = details.get("PredictiveModelType") == "BINARY" or (
            label in BINARY_LABELS and len(scores) <= 1
        )
        if binary:
            if label not in BINARY_LABELS or len(scores) != 1:
                raise ModelResponseError(f"unexpected binary prediction {dict(answer)!r}")
            probability = next(iter(scores.values()))
            scores = {labels[0]: 1.0 - probability, labels[1]: probability}
            label = labels[int(label)]
    return label, scores, None if value is None else float(value)
