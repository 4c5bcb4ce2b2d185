"""The composition root: builds the pipeline from settings, once per cold start.

Handlers and the CLI call :func:`build_pipeline` (or :func:`build_backend`) and keep the
result; nothing else in amlproxy decides which adapter to use. Adapters are imported
lazily, so a function that only uses the local model never imports boto3.

For the Lambda triggers it also builds the AWS clients (:class:`AwsClients`, one boto3
session, each client made once), the shared sinks (:func:`build_shared_sinks`: DynamoDB,
callback) and wraps backend and sinks for tracing and metrics
(:mod:`amlproxy.observability.instrument`) when given a tracer and metrics.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Backend, Sink
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.core.schema import Schema, load_schema
from amlproxy.errors import ConfigurationError
from amlproxy.settings import Settings

if TYPE_CHECKING:
    from amlproxy.chunks import ChunkRoom
    from amlproxy.observability.metrics import EmfMetrics
    from amlproxy.observability.tracing import Tracer


def build_retry_policy(settings: Settings, deadline: Deadline | None = None) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay_s=settings.retry_base_delay_s,
        max_delay_s=settings.retry_max_delay_s,
        deadline=deadline if deadline is not None else Deadline(),
    )


def build_backend(
    settings: Settings,
    schema: Schema,
    *,
    kind: str | None = None,
    deadline: Deadline | None = None,
    labels: tuple[str, ...] | None = None,
) -> Backend:
    """The backend named by ``kind`` (default: ``settings.backend``); ``labels`` (default
    ``settings.labels``) names the classes of answers that do not name them."""
    kind = kind or settings.backend
    labels = labels or settings.labels
    if kind == "local":
        from amlproxy.backends.local import LocalBackend

        return LocalBackend(model_path=settings.local_model)
    policy = build_retry_policy(settings, deadline)
    if kind == "sagemaker":
        from amlproxy.backends.sagemaker import SageMakerBackend

        assert settings.sagemaker_endpoint is not None  # checked by Settings
        return SageMakerBackend(
            settings.sagemaker_endpoint,
            schema_feature_names=schema.feature_names,
            content_type=settings.sagemaker_content_type,
            target_variant=settings.sagemaker_target_variant,
            target_model=settings.sagemaker_target_model,
            inference_component_name=settings.sagemaker_inference_component,
            custom_attributes=settings.sagemaker_custom_attributes,
            labels=labels,
            max_batch_size=settings.sagemaker_max_batch,
            concurrency=settings.concurrency,
            retry_policy=policy,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
        )
    if kind == "aml":
        from amlproxy.backends.aml import AmlBackend

        assert settings.aml_model_id is not None  # checked by Settings
        return AmlBackend(
            settings.aml_model_id,
            predict_endpoint=settings.aml_predict_endpoint or settings.endpoint_url,
            discover_endpoint=settings.aml_discover_endpoint,
            rate_limit_rps=aml_rate_cap(settings),
            labels=(labels[0], labels[1]) if labels and len(labels) == 2 else None,
            concurrency=settings.concurrency,
            retry_policy=policy,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
        )
    if kind == "shadow":
        return build_shadow_backend(settings, schema, deadline=deadline)
    raise AssertionError(f"unknown backend {kind!r}")  # Settings only admits the above


def aml_rate_cap(settings: Settings) -> float | None:
    """The requests/s cap of the Amazon ML client: the lower of the endpoint's
    (AMLPROXY_AML_RATE_LIMIT_RPS) and this worker's share (AMLPROXY_AML_MAX_RPS)."""
    caps = [c for c in (settings.aml_rate_limit_rps, settings.aml_max_rps) if c is not None]
    return min(caps) if caps else None


def build_shadow_backend(
    settings: Settings, schema: Schema, *, deadline: Deadline | None = None
) -> Backend:
    """Primary and shadow with the same class names, so that their answers compare:
    ``AMLPROXY_LABELS``, else the schema's target categories, else Amazon ML's
    ``GetMLModel`` (see :mod:`amlproxy.backends.labels`)."""
    from amlproxy.backends.labels import schema_target_labels
    from amlproxy.backends.shadow import ShadowBackend

    assert settings.shadow_backend is not None  # checked by Settings
    kinds = (settings.shadow_primary, settings.shadow_backend)
    labels = settings.labels or schema_target_labels(schema)
    ready: dict[str, Backend] = {}
    if labels is None and "aml" in kinds:
        from amlproxy.backends.aml import AmlBackend

        aml = build_backend(settings, schema, kind="aml", deadline=deadline)
        assert isinstance(aml, AmlBackend)
        found = aml.model_labels()
        if found is not None:
            aml.labels, labels = found, found
        ready["aml"] = aml
    primary, shadow = (
        ready.pop(kind) if kind in ready
        else build_backend(settings, schema, kind=kind, deadline=deadline, labels=labels)
        for kind in kinds
    )
    return ShadowBackend(primary, shadow)


def build_pipeline(
    settings: Settings,
    sinks: Sequence[Sink] = (),
    *,
    deadline: Deadline | None = None,
    tracer: Tracer | None = None,
    metrics: EmfMetrics | None = None,
) -> Pipeline:
    """Schema + backend + sinks, wired. Call once and reuse across inputs/invocations.

    With ``tracer`` and ``metrics`` the backend and the sinks are instrumented.
    """
    schema = load_schema(settings.schema_name)
    deadline = deadline if deadline is not None else Deadline()
    backend = build_backend(settings, schema, deadline=deadline)
    if tracer is not None and metrics is not None:
        from amlproxy.observability.instrument import InstrumentedBackend

        for client in prediction_clients(backend):
            tracer.instrument_client(client)
        backend = InstrumentedBackend(backend, tracer, metrics)
        sinks = instrument_sinks(sinks, tracer, metrics)
    return Pipeline(
        schema, backend, sinks, concurrency=settings.concurrency, deadline=deadline
    )


def prediction_clients(backend: Backend) -> list[Any]:
    """The botocore clients of ``backend`` (of both sides of a shadow backend), for the
    tracer to hook: the backends make their own clients (``_client``), configured for
    the one retry layer."""
    found = []
    for side in (getattr(backend, "primary", None), getattr(backend, "shadow", None)):
        if side is not None:
            found.extend(prediction_clients(side))
    client = getattr(backend, "_client", None)
    if client is not None and hasattr(client, "meta"):
        found.append(client)
    return found


def instrument_sinks(
    sinks: Sequence[Sink], tracer: Tracer | None, metrics: EmfMetrics | None
) -> list[Sink]:
    """The sinks wrapped for tracing and metrics (unchanged without both)."""
    if tracer is None or metrics is None:
        return list(sinks)
    from amlproxy.observability.instrument import InstrumentedSink

    return [InstrumentedSink(s, tracer, metrics) for s in sinks]


class AwsClients:
    """The boto3 clients of the triggers and sinks: each made once, on first use (the local
    backend needs no boto3), from the session the backends' clients come from.
    ``AMLPROXY_AWS_ENDPOINT_URL`` points them all at moto or LocalStack (S3 then uses
    path-style addressing).

    botocore makes one attempt per call: the callers run each call under
    :attr:`retry_policy`: the settings' attempts and delays, botocore errors classified by
    :func:`amlproxy.sinks._aws.aws_retryable`, and the invocation's ``deadline`` moved half
    of its margin later (:meth:`Deadline.into_margin`): the pipeline stops scoring at the
    deadline, then the sinks write what it scored; no sink call starts after that."""

    def __init__(self, settings: Settings, *, deadline: Deadline | None = None,
                 instrument: Callable[[Any], None] | None = None) -> None:
        self.endpoint_url = settings.aws_endpoint_url
        self._instrument = instrument  # the tracer's hook, applied to each client made
        # botocore reads AWS_DEFAULT_REGION only; Lambda also sets AWS_REGION
        self.region = settings.region or os.environ.get("AWS_REGION") or None
        # the sinks write what was scored until half the deadline's margin is gone
        sinks_deadline = deadline.into_margin(0.5) if deadline is not None else None
        self.retry_policy = build_retry_policy(settings, sinks_deadline).with_retryable(
            _aws_retryable
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """The client of ``service`` (``"s3"``, ``"dynamodb"``, ``"secretsmanager"``...)."""
        found = self._clients.get(service)
        if found is not None:
            return found
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._make(service)
            return self._clients[service]

    def retrying(self, service: str) -> Any:
        """The client of ``service``, each of its operations run under :attr:`retry_policy`
        (see :class:`amlproxy.sinks._aws.RetryingClient`)."""
        from amlproxy.sinks._aws import RetryingClient

        return RetryingClient(self.client(service), self.retry_policy)

    def _make(self, service: str) -> Any:
        from botocore.exceptions import NoRegionError

        from amlproxy.backends._aws import create_client  # the backends' session
        from amlproxy.sinks._aws import one_attempt_config

        options: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 60}
        if service == "s3" and self.endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        try:
            client = create_client(
                service, region=self.region, endpoint_url=self.endpoint_url,
                config=one_attempt_config(**options),
            )
        except NoRegionError as exc:
            raise ConfigurationError(f"no AWS region configured for {service}: {exc}") from exc
        if self._instrument is not None:
            self._instrument(client)
        return client


def _aws_retryable(error: BaseException) -> bool:
    """:func:`amlproxy.sinks._aws.aws_retryable`, imported when a call first fails (the
    local backend's cold start imports no botocore)."""
    from amlproxy.sinks._aws import aws_retryable

    return aws_retryable(error)


def callback_secrets(settings: Settings, clients: AwsClients) -> list[str]:
    """The callback signing secrets: AMLPROXY_CALLBACK_SECRET, else the Secrets Manager
    secret AMLPROXY_CALLBACK_SECRET_ARN (a ``whsec_...`` string, several separated by
    spaces or commas during a rotation, or JSON ``{"secret": ...}`` / ``{"secrets": [...]}``)."""
    if settings.callback_secret is not None:
        return _split_secrets(settings.callback_secret.get_secret_value())
    if not settings.callback_secret_arn:
        raise ConfigurationError("the callback sink needs AMLPROXY_CALLBACK_SECRET_ARN")
    from botocore.exceptions import BotoCoreError, ClientError

    from amlproxy.errors import RetriesExhaustedError

    try:
        answer = clients.retrying("secretsmanager").get_secret_value(
            SecretId=settings.callback_secret_arn
        )
    except (ClientError, BotoCoreError, RetriesExhaustedError) as exc:
        raise ConfigurationError(
            f"AMLPROXY_CALLBACK_SECRET_ARN: cannot read {settings.callback_secret_arn}: {exc}"
        ) from exc
    text = str(answer.get("SecretString") or "")
    if text.lstrip().startswith("{"):
        import orjson

        doc = orjson.loads(text)
        values = doc.get("secrets") or [doc.get("secret")]
        return [str(v) for v in values if v]
    return _split_secrets(text)


def _split_secrets(text: str) -> list[str]:
    return [s for s in text.replace(",", " ").split() if s]


def build_shared_sinks(
    settings: Settings, clients: AwsClients, tracer: Tracer | None = None
) -> list[Sink]:
    """The sinks every input shares (DynamoDB, callback), as AMLPROXY_SINKS (or the
    variables set) choose. Per-input S3 objects are made by the triggers themselves.
    With ``tracer``, callback deliveries carry its trace context."""
    names = settings.sink_names()
    sinks: list[Sink] = []
    if "dynamodb" in names:
        from amlproxy.sinks.dynamodb import DynamoDbSink

        assert settings.dynamodb_table is not None  # checked by Settings
        sinks.append(
            DynamoDbSink(
                settings.dynamodb_table,
                client=clients.client("dynamodb"),
                statuses=settings.dynamodb_statuses,
                ttl_days=settings.dynamodb_ttl_days,
                retry_policy=clients.retry_policy,
            )
        )
    if "callback" in names:
        from amlproxy.sinks.callback import CallbackSink

        assert settings.callback_url is not None  # checked by Settings
        sinks.append(
            CallbackSink(
                settings.callback_url,
                secrets=callback_secrets(settings, clients),
                retry_policy=clients.retry_policy,
                allowed_ports=settings.callback_ports,
                trace_headers=tracer.inject if tracer is not None else None,
            )
        )
    return sinks


def build_chunk_room(settings: Settings, clients: AwsClients, pipeline: Pipeline,
                     instrument: Callable[[list[Sink]], list[Sink]] = list) -> ChunkRoom | None:
    """The chunk planner and worker (see :mod:`amlproxy.chunks`), None without
    AMLPROXY_CHUNK_TABLE. No connection is opened: the clients connect at their first call."""
    if not settings.chunk_table:
        return None
    from amlproxy.chunks import ChunkRoom
    from amlproxy.chunks.assemble import Assembler
    from amlproxy.chunks.fanout import Planner
    from amlproxy.chunks.messages import Layout
    from amlproxy.chunks.store import CompletionStore
    from amlproxy.chunks.work import ChunkWorker

    policy = clients.retry_policy
    store = CompletionStore(settings.chunk_table, client=clients.client("dynamodb"),
                            retry_policy=policy)
    layout = Layout(settings.output_bucket, settings.input_prefix, settings.output_prefix,
                    settings.rejects_prefix, settings.chunk_prefix)
    assembler = Assembler(clients.client("s3"), store, topic_arn=settings.completion_topic_arn,
                          topic=clients.client("sns") if settings.completion_topic_arn else None,
                          retry_policy=policy)
    worker = ChunkWorker(pipeline, store, assembler, layout, clients.client("s3"), policy,
                         shared_sinks=pipeline.sinks, instrument=instrument,
                         raise_on_failed=settings.raise_on_failed)
    planner = None
    if settings.chunk_queue_url:
        planner = Planner(store, settings.chunk_queue_url, queue=clients.client("sqs"),
                          retry_policy=policy)
    return ChunkRoom(planner, worker, layout)
