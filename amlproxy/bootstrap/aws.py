"""What the Lambda triggers add to the composition root (:mod:`amlproxy.bootstrap`): the AWS
clients, the sinks every input shares (DynamoDB, callback, with the callback's secrets) and
the chunk room."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from amlproxy.bootstrap.backends import build_retry_policy
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Sink
from amlproxy.core.retry import Deadline
from amlproxy.errors import ConfigurationError
from amlproxy.settings import Settings

if TYPE_CHECKING:
    from amlproxy.chunks import ChunkRoom
    from amlproxy.observability.tracing import Tracer


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
