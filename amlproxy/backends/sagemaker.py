"""The SageMaker real-time endpoint backend (``sagemaker-runtime`` ``InvokeEndpoint``).

Records are encoded by :mod:`amlproxy.backends.sagemaker_codec`, answers parsed by
:mod:`amlproxy.backends.sagemaker_response`. A batch is packed into as few requests as fit
under the payload limit (``max_payload_bytes``, 6 MB minus headroom by default), each
request retried on its own by the :class:`RetryPolicy`. A record too big
to be sent even alone raises :class:`~amlproxy.errors.InvalidRecordError` before any call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.backends._aws import DEFAULT_READ_TIMEOUT_S, make_client, map_botocore_error
from amlproxy.backends.sagemaker_codec import (
    CSV,
    DEFAULT_MAX_PAYLOAD_BYTES,
    JSON,
    CsvEncoder,
    Encoder,
    JsonEncoder,
    pack,
)
from amlproxy.backends.sagemaker_response import ResponseParser
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import RetryPolicy
from amlproxy.errors import ConfigurationError, InvalidRecordError, ModelResponseError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


class SageMakerBackend:
    """Scores records on a SageMaker real-time endpoint.

    - ``content_type``: the request format, ``text/csv`` (features in
      ``schema_feature_names`` order) or ``application/json``; ``accept`` the response
      format asked for (default: the same); the parser follows the response's own
      ``Content-Type``.
    - ``labels``: the classes in score order, ``(negative, positive)`` for a binary model
      (default ``("0", "1")``, Amazon ML's): a bare probability becomes a label and a
      score for each label, as the other backends give them. ``labels=None`` declares a
      regression model: a bare number is its ``value``. ``threshold`` labels binary
      probabilities.
    - ``json_path``: where the predictions are in a JSON response, e.g.
      ``predictions[*].score``; ``response_parser`` replaces the parser altogether.
    - ``multi_record``: whether the container takes several records per request; when
      False, ``max_batch_size`` is 1 and a JSON body is the bare record object.
    - ``target_variant``, ``target_model``, ``inference_component_name``,
      ``custom_attributes``, ``inference_id``: passed through to ``InvokeEndpoint``.
    """

    name = "sagemaker"
    io_bound = True

    def __init__(
        self,
        endpoint_name: str,
        *,
        schema_feature_names: Sequence[str],
        content_type: Literal["text/csv", "application/json"] = CSV,
        accept: str | None = None,
        labels: Sequence[str] | None = ("0", "1"),
        threshold: float = 0.5,
        json_path: str | None = None,
        response_parser: ResponseParser | None = None,
        multi_record: bool = True,
        target_variant: str | None = None,
        target_model: str | None = None,
        inference_component_name: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        max_batch_size: int = 500,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        concurrency: int = 8,
        retry_policy: RetryPolicy | None = None,
        client: SageMakerRuntimeClient | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        if not schema_feature_names:
            raise ConfigurationError("SageMakerBackend needs the schema's feature names")
        if content_type not in (CSV, JSON):
            raise ConfigurationError(f"unsupported content type {content_type!r}")
        self.endpoint_name = endpoint_name
        self.model_id = target_model or endpoint_name
        self.max_batch_size = max(1, max_batch_size) if multi_record else 1
        self.max_payload_bytes = max_payload_bytes
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self.encoder: Encoder = (
            CsvEncoder(schema_feature_names)
            if content_type == CSV
            else JsonEncoder(schema_feature_names, single_object=not multi_record)
        )
        self.accept = accept or content_type
        try:
            self.parser = response_parser or ResponseParser(
                labels=labels, threshold=threshold, json_path=json_path
            )
        except ValueError as exc:
            raise ConfigurationError(f"SageMaker response parsing: {exc}") from exc
        self._request: dict[str, Any] = {
            "EndpointName": endpoint_name,
            "ContentType": content_type,
            "Accept": self.accept,
        }
        for key, value in (
            ("TargetVariant", target_variant),
            ("TargetModel", target_model),
            ("InferenceComponentName", inference_component_name),
            ("CustomAttributes", custom_attributes),
            ("InferenceId", inference_id),
        ):
            if value is not None:
                self._request[key] = value
        self._client: SageMakerRuntimeClient = client or make_client(
            "sagemaker-runtime",
            concurrency=concurrency,
            region=region,
            endpoint_url=endpoint_url,
            read_timeout_s=read_timeout_s,
            deadline=self.retry_policy.deadline,
        )

    # -------------------------------------------------------------------- Backend

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        return self.predict_batch([record])[0]

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        if not records:
            return []
        encoded = self.encoder.encode_batch(records)
        sizes = list(map(len, encoded))
        limit = self.max_payload_bytes
        if self.encoder.body_size(max(sizes), 1) > limit:  # (body_size grows with size)
            i = next(i for i, size in enumerate(sizes) if self.encoder.body_size(size, 1) > limit)
            raise InvalidRecordError(
                f"record {i + 1} of the batch encodes to {sizes[i]} bytes, over the"
                f" {limit}-byte request limit",
                code="PayloadTooLarge",
                attempts=0,
            )
        if (
            len(records) <= self.max_batch_size
            and self.encoder.body_size(sum(sizes), len(sizes)) <= limit
        ):
            return self._invoke(encoded)
        predictions: list[Prediction] = []
        step = self.max_batch_size
        for first in range(0, len(encoded), step):
            chunk = encoded[first : first + step]
            for start, stop in pack(sizes[first : first + step], self.encoder, limit):
                predictions.extend(self._invoke(chunk[start:stop]))
        return predictions

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------- internals

    def _invoke(self, encoded: Sequence[bytes]) -> list[Prediction]:
        """One request for ``encoded`` records (retried); one Prediction per record."""
        request = dict(self._request)
        request["Body"] = self.encoder.body(encoded)
        client = self._client

        def call() -> tuple[bytes, str, Mapping[str, Any], float]:
            started = time.perf_counter()
            try:
                response = client.invoke_endpoint(**request)
                body = response["Body"].read()
            except (ClientError, BotoCoreError) as exc:
                raise map_botocore_error(exc) from exc
            latency_ms = (time.perf_counter() - started) * 1000.0
            variant = response.get("InvokedProductionVariant")
            extra: dict[str, Any] = {"variant": variant} if variant else {}  # batch-shared
            return body, response.get("ContentType") or self.accept, extra, latency_ms

        (body, content_type, extra, latency_ms), attempts = self.retry_policy.call(call)
        try:
            scored = self.parser.parse(body, content_type, len(encoded))
        except ModelResponseError as exc:
            exc.attempts = attempts
            raise
        model_id = self.model_id
        return [
            Prediction(label, scores, value, "sagemaker", model_id, latency_ms, attempts, extra)
            for label, scores, value in scored
        ]
