"""The Lambda functions of the local service and their event sources, as data.

:class:`FunctionSpec` is what the service needs to run one function the way Lambda does
(handler, timeout, memory, reserved concurrency, environment, log format, asynchronous
invoke config); :class:`SqsMapping`, :class:`S3Source` and :class:`SnsSource` are its
event sources. :func:`read_functions` builds them from ``sam/template.yaml``
(``AWS::Serverless::Function`` with ``Globals.Function``, their ``Events``, and the
``AWS::Lambda::EventInvokeConfig`` resources); tests build them directly for functions
of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from amlproxy.errors import ConfigurationError
from amlproxy.local.cfn import StackResolver

LogFormat = Literal["Text", "JSON"]
LOG_FORMATS: tuple[LogFormat, ...] = ("Text", "JSON")
DEFAULT_TIMEOUT_S = 3.0  # Lambda's default
DEFAULT_MEMORY_MB = 128


@dataclass(frozen=True)
class AsyncConfig:
    """``EventInvokeConfig``: retries of a failed asynchronous invoke, then OnFailure."""

    maximum_retry_attempts: int = 2
    maximum_event_age_s: int = 21600
    on_failure_arn: str | None = None  # an SQS queue or SNS topic ARN


@dataclass(frozen=True)
class SqsMapping:
    """An SQS event source mapping."""

    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency
    enabled: bool = True


@dataclass(frozen=True)
class S3Source:
    """An S3 bucket notification invoking the function asynchronously."""

    bucket: str
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class SnsSource:
    """An SNS subscription invoking the function asynchronously."""

    topic_arn: str


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the local service runs it."""

    name: str
    handler: str  # module.function
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    reserved_concurrency: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    log_format: LogFormat = "Text"
    application_log_level: str | None = None  # LoggingConfig.ApplicationLogLevel (JSON)
    log_group: str | None = None
    async_config: AsyncConfig = field(default_factory=AsyncConfig)
    sqs: tuple[SqsMapping, ...] = ()
    s3: tuple[S3Source, ...] = ()
    sns: tuple[SnsSource, ...] = ()

    def with_environment(self, extra: Mapping[str, str]) -> FunctionSpec:
        """The same function with ``extra`` variables added (they win)."""
        return replace(self, environment={**self.environment, **extra})


def read_functions(resolver: StackResolver) -> list[FunctionSpec]:
    """Every ``AWS::Serverless::Function`` of the template whose condition holds."""
    template = resolver.template
    resources: Mapping[str, Any] = template.get("Resources") or {}
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    invoke_configs = _invoke_configs(resolver, resources)
    specs = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        if not resolver.resource_exists(logical_id):
            continue
        name = resolver.physical_name(logical_id)
        properties = {**globals_, **(resource.get("Properties") or {})}
        environment = {
            **((globals_.get("Environment") or {}).get("Variables") or {}),
            **(((resource.get("Properties") or {}).get("Environment") or {})
               .get("Variables") or {}),
        }
        specs.append(_spec(resolver, name, properties, environment,
                           invoke_configs.get(name, _sam_invoke_config(resolver, properties))))
    return specs


def _spec(resolver: StackResolver, name: str, properties: Mapping[str, Any],
          environment: Mapping[str, Any], async_config: AsyncConfig) -> FunctionSpec:
    value = resolver.resolve
    logging_config = value(properties.get("LoggingConfig") or {})
    log_format = str(logging_config.get("LogFormat", "Text"))
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"{name}: LoggingConfig.LogFormat must be Text or JSON")
    reserved = properties.get("ReservedConcurrentExecutions")
    events = value(properties.get("Events") or {})
    sqs, s3, sns = _event_sources(name, events)
    return FunctionSpec(
        name=name,
        handler=str(value(properties["Handler"])),
        timeout_s=float(value(properties.get("Timeout", DEFAULT_TIMEOUT_S))),
        memory_mb=int(value(properties.get("MemorySize", DEFAULT_MEMORY_MB))),
        reserved_concurrency=None if reserved is None else int(value(reserved)),
        environment={str(k): str(v) for k, v in value(dict(environment)).items()},
        log_format=log_format,
        application_log_level=logging_config.get("ApplicationLogLevel"),
        log_group=logging_config.get("LogGroup"),
        async_config=async_config,
        sqs=sqs, s3=s3, sns=sns,
    )


def _event_sources(name: str, events: Mapping[str, Any]
                   ) -> tuple[tuple[SqsMapping, ...], tuple[S3Source, ...], tuple[SnsSource, ...]]:
    sqs: list[SqsMapping] = []
    s3: list[S3Source] = []
    sns: list[SnsSource] = []
    for event_name, event in events.items():
        kind, props = event.get("Type"), event.get("Properties") or {}
        if kind == "SQS":
            scaling = props.get("ScalingConfig") or {}
            concurrency = scaling.get("MaximumConcurrency")
            sqs.append(SqsMapping(
                queue_arn=str(props["Queue"]),
                batch_size=int(props.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in (
                    props.get("FunctionResponseTypes") or ()),
                maximum_concurrency=None if concurrency is None else int(concurrency),
                enabled=str(props.get("Enabled", True)).lower() != "false",
            ))
        elif kind == "S3":
            rules = ((props.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            found = {str(r.get("Name", "")).lower(): str(r.get("Value", "")) for r in rules}
            kinds = props.get("Events") or "s3:ObjectCreated:*"
            s3.append(S3Source(bucket=str(props["Bucket"]),
                               events=(kinds,) if isinstance(kinds, str) else tuple(kinds),
                               prefix=found.get("prefix", ""), suffix=found.get("suffix", "")))
        elif kind == "SNS":
            sns.append(SnsSource(topic_arn=str(props["Topic"])))
        elif kind not in ("Api", "HttpApi"):
            raise ConfigurationError(f"{name}: event {event_name} of type {kind} is not "
                                     "supported by the local service")
    return tuple(sqs), tuple(s3), tuple(sns)


def _invoke_configs(resolver: StackResolver, resources: Mapping[str, Any]
                    ) -> dict[str, AsyncConfig]:
    """``AWS::Lambda::EventInvokeConfig`` resources, by function name."""
    found = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::EventInvokeConfig":
            continue
        if not resolver.resource_exists(logical_id):
            continue
        props = resolver.resolve(resource.get("Properties") or {})
        found[str(props["FunctionName"])] = _async_config(props)
    return found


def _sam_invoke_config(resolver: StackResolver, properties: Mapping[str, Any]) -> AsyncConfig:
    """SAM's ``EventInvokeConfig`` function property (else Lambda's defaults)."""
    return _async_config(resolver.resolve(properties.get("EventInvokeConfig") or {}))


def _async_config(props: Mapping[str, Any]) -> AsyncConfig:
    on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {})
    return AsyncConfig(
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", 2)),
        maximum_event_age_s=int(props.get("MaximumEventAgeInSeconds", 21600)),
        on_failure_arn=on_failure.get("Destination"),
    )
