"""Configuration: environment variables with the ``AMLPROXY_`` prefix, validated by
pydantic-core (one ``SchemaValidator``, :mod:`amlproxy.settings_schema`: the pydantic model
it replaces cost a fifth of a cold start to import).

The variables are read by :func:`load_settings` itself rather than by pydantic-settings:
that package costs ~125 ms of import at every cold start (it pulls in asyncio and argparse
for its command-line source), for what is here a dictionary look-up per field.

Loaded and validated once, at cold start, by the composition root
(:mod:`amlproxy.bootstrap`). Anything wrong raises one :class:`ConfigurationError` that
lists every bad variable (the checks across variables are in
:mod:`amlproxy.settings_checks`). :mod:`amlproxy.settings_doc` documents every variable
(the README's configuration table is generated from it: ``python -m amlproxy.settings``).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

from pydantic_core import SchemaValidator, ValidationError

from amlproxy.errors import ConfigurationError
from amlproxy.settings_schema import (
    Declared,
    SecretStr,
    by_field_name,
    collect_knobs,
    comma_list,
    key_prefix,
    knob,
    label_list,
    port_list,
    settings_validator,
)

BackendName = Literal["local", "sagemaker", "aml", "shadow"]
SinkName = Literal["dynamodb", "s3", "callback"]
StatusName = Literal["ok", "rejected", "failed"]
ENV_PREFIX = "AMLPROXY_"
LAMBDA_RESPONSE_LIMIT = 6_291_556  # bytes: a synchronous Lambda invocation's payload cap
API_BYTES_PER_RECORD = 2_048  # generous bound of one API answer entry (reasons are capped)


class Settings(Declared):
    """Every knob of amlproxy. The README's configuration table is generated from this.

    Build it with :func:`load_settings` (environment + overrides); ``Settings(...)`` alone
    reads no environment.
    """

    schema_name: str = knob(
        "census-income",
        alias="AMLPROXY_SCHEMA",
        description="record schema: a bundled name or a path to an AML .schema file",
    )
    backend: BackendName = knob("local", description="local, sagemaker, aml or shadow")
    local_model: str | None = knob(None, description="path of a local model JSON artifact")
    endpoint_url: str | None = knob(
        None, description="override the runtime endpoint URL (the emulator, a VPC endpoint)"
    )
    region: str | None = knob(None, description="AWS region (default: the SDK's own)")

    sagemaker_endpoint: str | None = knob(None, description="SageMaker endpoint name")
    sagemaker_content_type: Literal["text/csv", "application/json"] = knob(
        "text/csv", description="request body format"
    )
    sagemaker_target_variant: str | None = knob(None, description="TargetVariant")
    sagemaker_target_model: str | None = knob(None, description="TargetModel (multi-model)")
    sagemaker_inference_component: str | None = knob(None, description="InferenceComponentName")
    sagemaker_custom_attributes: str | None = knob(None, description="CustomAttributes")
    sagemaker_max_batch: int = knob(500, ge=1, description="records per multi-record request")

    aml_model_id: str | None = knob(None, description="Amazon ML model id")
    aml_predict_endpoint: str | None = knob(None, description="Amazon ML real-time endpoint URL")
    aml_discover_endpoint: bool = knob(
        False, description="find the endpoint with GetMLModel when none is given"
    )
    aml_rate_limit_rps: float | None = knob(
        None, gt=0, description="client-side requests/s cap per endpoint (AML allows 200)"
    )
    aml_max_rps: float | None = knob(
        None, gt=0, description="requests/s cap of this worker (the chunk worker: the "
        "endpoint's 200 divided by the workers' maximum concurrency); the lower cap applies",
    )

    labels: tuple[str, ...] | None = knob(
        None, description="comma list of the class names in score order, negative first for "
        "a binary model (e.g. '<=50K,>50K'): Amazon ML's 0/1 labels and SageMaker's bare "
        "probabilities are named by them",
    )

    shadow_backend: Literal["local", "sagemaker", "aml"] | None = knob(
        None, description="with backend=shadow: the backend compared against the primary"
    )
    shadow_primary: Literal["local", "sagemaker", "aml"] = knob(
        "aml", description="with backend=shadow: the backend whose answer is returned"
    )

    concurrency: int = knob(32, ge=1, le=1024, description="calls in flight per process")
    max_attempts: int = knob(
        5, ge=1, le=20, description="calls per record (and per sink or AWS call), retries included"
    )
    retry_base_delay_s: float = knob(0.05, gt=0, description="first backoff (full jitter)")
    retry_max_delay_s: float = knob(5.0, gt=0, description="backoff cap")
    deadline_margin_s: float | None = knob(
        None, ge=0, description="stop scoring this long before the Lambda timeout (default: "
        "the lesser of 10 s and a fifth of the time left when the invocation starts)",
    )

    # ------------------------------------------------------------ AWS sinks and triggers
    aws_endpoint_url: str | None = knob(
        None, description="endpoint URL of the S3, DynamoDB, SNS, SQS and Secrets Manager "
        "clients (moto, LocalStack); the prediction clients use AMLPROXY_ENDPOINT_URL",
    )
    sinks: tuple[SinkName, ...] | None = knob(
        None, description="comma list of dynamodb, s3, callback (default: s3 for the S3 "
        "trigger and when AMLPROXY_OUTPUT_BUCKET is set, plus dynamodb when "
        "AMLPROXY_DYNAMODB_TABLE is set, plus callback when AMLPROXY_CALLBACK_URL is set)",
    )
    input_prefix: str = knob("input/", description="S3 trigger: only keys under this prefix")
    output_bucket: str | None = knob(
        None, description="bucket of results and rejects objects (default: the input bucket)"
    )
    output_prefix: str = knob("output/", description="key prefix of results objects")
    rejects_prefix: str = knob("rejects/", description="key prefix of rejects objects")
    chunk_queue_url: str | None = knob(
        None, description="SQS queue of chunk messages: objects larger than one chunk are "
        "planned and fanned out to the chunk worker; unset: every object is scored directly",
    )
    chunk_table: str | None = knob(
        None, description="DynamoDB table (key 'object' S, TTL 'expires_at') of the chunk "
        "plans and their completion; required with AMLPROXY_CHUNK_QUEUE_URL",
    )
    chunk_bytes: int | None = knob(
        None, ge=1, description="target chunk size in bytes (default: a third of the function "
        "timeout at AMLPROXY_CHUNK_THROUGHPUT_BPS, clamped to 256 KiB..512 MiB)",
    )
    chunk_throughput_bps: float | None = knob(
        None, gt=0, description="input bytes/s one worker scores (default: the backend's "
        "figure measured by make bench, see amlproxy/chunks/sizing.py)",
    )
    function_timeout_s: float | None = knob(
        None, gt=0, description="the chunk worker's timeout, for the chunk size (default: "
        "the time left when the planner's invocation starts)",
    )
    chunk_prefix: str = knob(
        "chunks/", min_length=1, description="key prefix (output bucket) of the chunk objects "
        "(a chunk's results and rejects before assembly)",
    )
    completion_topic_arn: str | None = knob(
        None, description="SNS topic told of every object assembled from chunks (output keys "
        "and counts)",
    )
    dynamodb_table: str | None = knob(None, description="DynamoDB table of the dynamodb sink")
    dynamodb_statuses: tuple[StatusName, ...] = knob(
        ("ok", "rejected", "failed"),
        description="comma list of the outcomes the DynamoDB sink keeps (ok,rejected,failed)",
    )
    dynamodb_ttl_days: float | None = knob(
        None, gt=0, description="DynamoDB items expire after this many days (TTL attribute)"
    )
    callback_url: str | None = knob(None, description="HTTPS URL the callback sink POSTs to")
    callback_secret_arn: str | None = knob(
        None, description="Secrets Manager secret holding the callback signing secret"
    )
    callback_secret: SecretStr | None = knob(
        None, description="the callback signing secret itself (local use; prefer the ARN)"
    )
    callback_ports: tuple[int, ...] = knob(
        (443,), ge=1, le=65535, description="ports a callback URL may name; others are "
        "refused, like private addresses",
    )
    raise_on_failed: bool = knob(
        True, description="S3/SNS triggers: raise after the event when records failed, so "
        "that Lambda retries it (outputs are keyed: a retry overwrites, adds nothing)",
    )

    # ------------------------------------------------------------ API trigger
    api_max_records: int = knob(
        1000, ge=1, description="API: most records in one request (more: 413)"
    )
    api_max_body_bytes: int = knob(
        1_048_576, ge=1, le=LAMBDA_RESPONSE_LIMIT, description="API: largest request body"
    )
    idempotency_table: str | None = knob(
        None, description="API: DynamoDB table (key 'id', TTL 'expiration') of Idempotency-Key "
        "records; unset = the header is ignored",
    )
    idempotency_ttl_s: int = knob(
        3600, ge=60, le=7 * 86400, description="API: how long an Idempotency-Key is remembered"
    )

    # ------------------------------------------------------------ observability
    tracing: Literal["otel", "xray", "off"] = knob(
        "off", description="otel: OpenTelemetry spans (invocation, input, endpoint call, sink "
        "write), configured by the OTEL_* variables (the otel extra or the ADOT layer); xray: "
        "X-Ray subsegments (the xray extra, only inside Lambda); see docs/observability.md",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = knob(
        "INFO", description="level of the JSON logs of the Lambda triggers"
    )
    metrics: bool = knob(True, description="write CloudWatch EMF metrics from the triggers")
    metrics_namespace: str = knob("amlproxy", min_length=1, description="EMF namespace")

    def __init__(self, **values: Any) -> None:
        """The settings of ``values`` (by field name or variable), validated as a whole;
        a bad value or combination raises pydantic-core's ``ValidationError``."""
        given = by_field_name(values, Settings.fields)
        self.__dict__.update(_validator().validate_python(given))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Settings are frozen: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return type(other) is Settings and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"

    def sink_names(self, *, s3_trigger: bool = False) -> tuple[SinkName, ...]:
        """The sinks to use: AMLPROXY_SINKS, else those the other variables configure."""
        if self.sinks is not None:
            return self.sinks
        chosen: list[SinkName] = []
        if s3_trigger or self.output_bucket:
            chosen.append("s3")
        if self.dynamodb_table:
            chosen.append("dynamodb")
        if self.callback_url:
            chosen.append("callback")
        return tuple(chosen)


Settings.fields = collect_knobs(Settings)


def _coherent(values: dict[str, Any]) -> dict[str, Any]:
    """The checks across variables (:mod:`amlproxy.settings_checks`), on the validated values."""
    from amlproxy.settings_checks import backend_problems, sink_problems

    probe = object.__new__(Settings)
    probe.__dict__.update(values)
    problems = backend_problems(probe) + sink_problems(probe)
    if problems:
        raise ValueError("; ".join(problems))
    return values


@functools.cache
def _validator() -> SchemaValidator:
    """The settings' one validator, built at first use."""
    prefixes = ("input_prefix", "output_prefix", "rejects_prefix", "chunk_prefix")
    return settings_validator(
        Settings.fields,
        before={"sinks": comma_list, "dynamodb_statuses": comma_list,
                "callback_ports": port_list, "labels": label_list},
        after=dict.fromkeys(prefixes, key_prefix),
        whole=_coherent,
    )


def env_name(field: str) -> str:
    """The environment variable of a settings field (``schema_name`` -> AMLPROXY_SCHEMA)."""
    alias = Settings.fields[field].alias
    return alias if alias is not None else ENV_PREFIX + field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags, library callers).

    Raises one :class:`ConfigurationError` listing every bad variable on one line (the
    CLI prints it as is): the values that do not parse, and the combinations that do not
    hold (checked with the defaults in place of the bad values).
    """
    given = {**_from_environment(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems, bad = _problems(exc)
    if bad:  # values were refused, so the combination checks did not run: run them now
        defaults = {name: Settings.fields[name].default for name in bad}
        try:
            Settings(**{**given, **defaults})
        except ValidationError as again:
            problems += [p for p in _problems(again)[0] if p not in problems]
    raise ConfigurationError(
        f"invalid configuration ({len(problems)} problem(s)): " + "; ".join(problems)
    )


def _from_environment() -> dict[str, str]:
    """``{field: value}`` for every field whose variable is set (names case-insensitive)."""
    environ = {name.upper(): value for name, value in os.environ.items()
               if name[:len(ENV_PREFIX)].upper() == ENV_PREFIX}
    return {field: environ[env_name(field).upper()] for field in Settings.fields
            if env_name(field).upper() in environ}


def _problems(exc: ValidationError) -> tuple[list[str], set[str]]:
    """The messages of a validation error, and the fields whose values were refused."""
    problems: list[str] = []
    bad: set[str] = set()
    for err in exc.errors(include_url=False):
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:
            problems.extend(message.split("; "))
            continue
        name = str(err["loc"][0])
        field = next((f for f in Settings.fields if env_name(f) == name), name)
        if field in Settings.fields:
            bad.add(field)
            name = env_name(field)
        shown = "'***'" if "SECRET" in name.upper() else repr(err.get("input"))
        problems.append(f"{name}={shown}: {message}")
    return problems, bad


def in_lambda() -> bool:
    """Whether this process runs inside AWS Lambda."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


if __name__ == "__main__":  # python -m amlproxy.settings: the README's configuration table
    from amlproxy.settings_doc import settings_table

    print(settings_table())
