"""The local stack: moto server (a process of its own), the endpoint emulator, the
resources and functions of the SAM template on the local Lambda service, their event
sources, Lambda's Invoke API and the local API, started and stopped together.

    stack = LocalDeployment(load_config(timeout=10, chaos=0.2, seed=7))
    endpoints = stack.start()  # {"api": ..., "aws": ..., "emulator": ..., "lambda": ...}
    stack.service.status()     # the functions, their workers and counts
    stack.stop()
"""

from __future__ import annotations

import logging
import math
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from amlproxy.errors import ConfigurationError
from amlproxy.local.api_server import ApiServerThread, LocalApi, api_limits
from amlproxy.local.config import REGION, StackConfig
from amlproxy.local.event_sources import NotificationSource, QueuePoller, SqsEventSource
from amlproxy.local.functions import FunctionSpec, read_functions
from amlproxy.local.invoke_api import InvokeApi
from amlproxy.local.pool import Chaos, ServiceSettings
from amlproxy.local.progress import read_progress
from amlproxy.local.resources import LocalResolver, StackResources, create_resources
from amlproxy.local.service import LambdaService
from amlproxy.local.template import read_template
from amlproxy.local.worker_logs import WorkerLogs, echo_to_stderr
from amlproxy.local.workers import DUMMY_CREDENTIALS, WorkerSettings, awslambdaric_available

log = logging.getLogger("amlproxy.local")

API_FUNCTION = "ApiFunction"
VISIBILITY_FACTOR = 6  # the template's queues wait 6 x the function timeout (AWS guidance)
EXAMPLE_RECORDS: dict[str, dict[str, Any]] = {
    "census-income": {
        "age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors",
        "education-num": 13, "marital-status": "Never-married", "occupation": "Adm-clerical",
        "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital-gain": 2174,
        "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States",
    },
}


def service_settings(config: StackConfig) -> ServiceSettings:
    """The service's settings from the stack config (``auto`` picks awslambdaric where
    it is installed, else the built-in runtime loop)."""
    client = config.runtime_client
    if client == "auto":
        client = "awslambdaric" if awslambdaric_available() else "builtin"
    return ServiceSettings(
        timeout_s=config.timeout, chaos=Chaos(config.chaos, config.seed),
        workers=WorkerSettings(runtime_client=client,  # type: ignore[arg-type]
                               log_format=config.log_format,  # type: ignore[arg-type]
                               log_output=config.log_output),  # type: ignore[arg-type]
        async_retry_delays_s=config.async_retry_delays)


class LocalDeployment:
    """Everything ``amlproxy local up`` runs."""

    def __init__(self, config: StackConfig, logs: WorkerLogs | None = None) -> None:
        self.config = config
        self.logs = logs or WorkerLogs(echo=echo_to_stderr if config.echo_logs else None)
        self.endpoints: dict[str, str] = {}
        self.resources: StackResources | None = None
        self.functions: list[FunctionSpec] = []
        self.service: LambdaService | None = None
        self.sources: list[QueuePoller] = []
        self._resolver: LocalResolver | None = None
        self._clients: dict[str, Any] = {}
        self._moto: Any = None
        self._emulator: Any = None
        self._api: ApiServerThread | None = None
        self._invoke_api: InvokeApi | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> dict[str, str]:
        """Start every part; return the endpoints. On failure, what started is stopped."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _start(self) -> None:
        from amlproxy.core.schema import load_schema
        from amlproxy.emulator import start_in_thread
        from amlproxy.local.moto_process import start_moto

        config = self.config
        os.environ.update({**DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": REGION,
                           "AWS_REGION": REGION})  # this process's clients: never real AWS
        os.environ.pop("AWS_PROFILE", None)
        template = read_template(config.template)  # a bad template stops `up` first
        settings = service_settings(config)
        _check_free(config.host, config.moto_port, "--aws-port / moto_port")
        self._moto = start_moto(config.host, config.moto_port)
        moto_url: str = self._moto.url
        self._emulator = start_in_thread(host=config.host, port=config.emulator_port)
        emulator_url: str = self._emulator.url
        declared = set(template.get("Parameters") or {})
        self._resolver = resolver = LocalResolver(
            template, config.template_parameters(declared), moto_url)
        overrides = config.function_overrides(moto_url=moto_url, emulator_url=emulator_url)
        self.functions = [spec.with_environment(overrides) for spec in read_functions(resolver)]
        self._clients = {name: _client(name, moto_url) for name in ("s3", "sqs", "sns",
                                                                     "dynamodb")}
        self.resources = create_resources(resolver, self.functions, self._clients)
        if config.timeout is not None:
            self._follow_timeout(config.timeout)
        self.service = service = LambdaService(self.functions, settings, logs=self.logs,
                                               destination=self._send)
        if config.prewarm:
            failures = service.prewarm()
            if failures:
                raise ConfigurationError("init error: " + "; ".join(
                    f"{name}: {outcome.payload[:300].decode('utf-8', 'replace')}"
                    for name, outcome in sorted(failures.items())))
        self._start_sources(service, moto_url)
        self._invoke_api = InvokeApi(service, config.host, config.lambda_port, self.status)
        self.endpoints = {"aws": moto_url, "emulator": emulator_url,
                          "lambda": self._invoke_api.start()}
        if API_FUNCTION in service.pools:
            schema = load_schema(config.param("Schema"))
            api_timeout = service.pool(API_FUNCTION).timeout_s
            self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="amlproxy-api")
            app = LocalApi(lambda event: service.invoke(API_FUNCTION, event, wait_s=api_timeout),
                           self._pool, schema, EXAMPLE_RECORDS.get(schema.name))
            limits = api_limits(int(config.param("ApiMaxBodyBytes")))
            self._api = ApiServerThread(app, config.host, config.api_port, limits=limits)
            self.endpoints = {"api": self._api.start(), **self.endpoints}

    def _start_sources(self, service: LambdaService, moto_url: str) -> None:
        assert self.resources is not None and self._resolver is not None

        def clients(name: str) -> Any:
            return _client(name, moto_url)

        for spec in self.functions:
            for mapping in spec.sqs:
                if mapping.enabled:
                    url = self._resolver.queue_url(mapping.queue_arn.rsplit(":", 1)[-1])
                    self.sources.append(SqsEventSource(service, spec.name, mapping, clients, url))
            if spec.name in self.resources.s3_notifications:
                self.sources.append(NotificationSource(
                    service, spec.name, "s3", clients, self.resources.s3_notifications[spec.name]))
            if spec.name in self.resources.sns_deliveries:
                self.sources.append(NotificationSource(
                    service, spec.name, "sns", clients, self.resources.sns_deliveries[spec.name],
                    self.resources.sns_subscriptions.get(spec.name, "")))
        for source in self.sources:
            source.start()

    def _follow_timeout(self, timeout_s: float) -> None:
        """``--timeout`` overrides the functions' timeout: the queues they consume follow,
        as the template derives their visibility timeout from FunctionTimeout."""
        assert self._resolver is not None
        visibility = str(math.ceil(VISIBILITY_FACTOR * timeout_s))
        for spec in self.functions:
            for mapping in spec.sqs:
                url = self._resolver.queue_url(mapping.queue_arn.rsplit(":", 1)[-1])
                self._clients["sqs"].set_queue_attributes(
                    QueueUrl=url, Attributes={"VisibilityTimeout": visibility})

    def objects(self, uri: str | None = None) -> list[dict[str, Any]]:
        """The progress of the objects scored in chunks (of ``uri`` only, when given)."""
        table = (self.resources.tables if self.resources else {}).get("ChunkTable")
        if table is None or "dynamodb" not in self._clients:
            return []
        return [p.to_dict() for p in read_progress(self._clients["dynamodb"], table, uri)]

    def _send(self, arn: str, body: bytes) -> None:
        """Deliver an OnFailure record to an SQS queue or SNS topic ARN."""
        assert self._resolver is not None
        if ":sqs:" in arn:
            url = self._resolver.queue_url(arn.rsplit(":", 1)[-1])
            self._clients["sqs"].send_message(QueueUrl=url, MessageBody=body.decode())
        elif ":sns:" in arn:
            self._clients["sns"].publish(TopicArn=arn, Message=body.decode())
        else:
            log.error("OnFailure destination %s is not an SQS queue or SNS topic", arn)

    def status(self) -> dict[str, Any]:
        """The functions (workers, counts), the event sources and the queues' depths."""
        functions = self.service.status() if self.service is not None else {}
        sources = [{"function": s.name, "queue": s.queue_url, "received": s.received,
                    "deleted": s.deleted, **({"batches": s.batches,
                                              "redelivered": s.failed_messages}
                                             if isinstance(s, SqsEventSource) else {})}
                   for s in self.sources]
        queues: dict[str, Any] = {}
        for logical_id, url in (self.resources.queues if self.resources else {}).items():
            try:
                attributes = self._clients["sqs"].get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                  "ApproximateNumberOfMessagesNotVisible"])
            except Exception as exc:  # moto stopping
                queues[logical_id] = {"error": str(exc)}
                continue
            queues[logical_id] = {k: int(v) for k, v in attributes["Attributes"].items()}
        runtime = self.service.runtime_client if self.service is not None else None
        try:
            objects: Any = self.objects()
        except Exception as exc:  # moto stopping
            objects = {"error": str(exc)}
        return {"runtime_client": runtime, "functions": functions, "event_sources": sources,
                "queues": queues, "objects": objects}

    def stop(self) -> None:
        """Stop every part (idempotent): the APIs, the event sources, the workers, the
        emulator and moto."""
        for server in (self._api, self._invoke_api):
            if server is not None:
                server.stop()
        self._api = self._invoke_api = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for source in self.sources:
            source.stop()
        if self.service is not None:
            self.service.stop()
        for source in self.sources:
            source.join(5.0)
        self.sources = []
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None


def _check_free(host: str, port: int, option: str) -> None:
    """moto's server thread exits quietly on a busy port: check it first."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {host}:{port} ({exc.strerror}): "
                                     f"choose another port with {option} (0: a free one)"
                                     ) from None


def _client(service: str, endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"}, max_pool_connections=32)
    return boto3.session.Session().client(service, endpoint_url=endpoint_url,  # type: ignore[call-overload]
                                          region_name=REGION, config=config)
