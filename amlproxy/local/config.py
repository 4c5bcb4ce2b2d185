"""What the local stack is made of: the SAM parameters, local names and ports, and the
environment its functions run with.

A config file (``amlproxy local up --config FILE``) is TOML::

    host = "127.0.0.1"
    api_port = 8080          # 0: a free port
    moto_port = 5000
    emulator_port = 0
    state_file = ".amlproxy-local.json"

    [parameters]             # SAM template parameters (sam/template.yaml)
    InputBucketName = "my-input"
    OutputBucketName = "my-output"
    Backend = "aml"

Unset parameters take the template's defaults; the few the template leaves empty but a
stack needs (the input bucket, the table, the endpoint name) take :data:`LOCAL_NAMES`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlproxy.errors import ConfigurationError
from amlproxy.local.template import template_defaults

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
DEFAULT_STATE_FILE = ".amlproxy-local.json"

# Names CloudFormation would generate (or the template requires without a default).
LOCAL_NAMES: dict[str, str] = {
    "InputBucketName": "amlproxy-input",
    "ResultsTableName": "amlproxy-results",
    "SageMakerEndpointName": "census-income",  # the emulator's endpoint
    "AmlModelId": "census-income",  # the emulator's model
    "TopicName": "amlproxy-predict",
    "WorkQueueName": "amlproxy-work",
    "WorkDeadLetterQueueName": "amlproxy-work-dlq",
    "FailureQueueName": "amlproxy-failures",
    "IdempotencyTableName": "amlproxy-idempotency",
}
# Class names of the bundled models (the emulator's SageMaker endpoint answers bare
# probabilities, which AMLPROXY_LABELS names), used when the Labels parameter is empty.
MODEL_LABELS: dict[str, str] = {"census-income": "<=50K,>50K"}
_KNOWN_KEYS = {"host", "api_port", "moto_port", "emulator_port", "state_file", "workers",
               "parameters"}


@dataclass(frozen=True)
class StackConfig:
    """Ports, names and SAM parameters of one local stack."""

    host: str = "127.0.0.1"
    api_port: int = 8080
    moto_port: int = 5000
    emulator_port: int = 0
    workers: int = 32  # API requests handled at once (the thread pool)
    state_file: Path = Path(DEFAULT_STATE_FILE)
    parameters: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        """A SAM parameter: given, else the template default, else the local name."""
        value = self.parameters.get(name, "")
        return value or LOCAL_NAMES.get(name, "")

    @property
    def input_bucket(self) -> str:
        return self.param("InputBucketName")

    @property
    def output_bucket(self) -> str:
        """The bucket of results: OutputBucketName, else the input bucket (as the template)."""
        return self.param("OutputBucketName") or self.input_bucket

    @property
    def table(self) -> str:
        return self.param("ResultsTableName")

    @property
    def idempotency_table(self) -> str:
        """The API's Idempotency-Key table ("" with IdempotencyTable=disabled)."""
        enabled = self.param("IdempotencyTable") == "enabled"
        return self.param("IdempotencyTableName") if enabled else ""

    def function_environment(self, *, moto_url: str, emulator_url: str) -> dict[str, str]:
        """The AMLPROXY_* variables of the functions, as the template sets them (Globals
        plus the functions' own), pointed at moto and the emulator.

        One process runs every function here, so variables that differ per function are
        left to the defaults that reproduce them: AMLPROXY_SINKS unset gives s3+dynamodb
        to the S3 trigger and dynamodb to the others; AMLPROXY_OUTPUT_BUCKET is set only
        for a separate output bucket (the S3 trigger's default is its input bucket).
        """
        backend = self.param("Backend")
        env = {
            "AMLPROXY_BACKEND": backend,
            "AMLPROXY_SCHEMA": self.param("Schema"),
            "AMLPROXY_CONCURRENCY": self.param("BackendConcurrency"),
            "AMLPROXY_DYNAMODB_TABLE": self.table,
            "AMLPROXY_INPUT_PREFIX": self.param("InputPrefix"),
            "AMLPROXY_OUTPUT_PREFIX": self.param("OutputPrefix"),
            "AMLPROXY_REJECTS_PREFIX": self.param("RejectsPrefix"),
            "AMLPROXY_CHECKPOINT_PREFIX": self.param("CheckpointPrefix"),
            "AMLPROXY_API_MAX_BODY_BYTES": self.param("ApiMaxBodyBytes"),
            "AMLPROXY_LOG_LEVEL": self.param("LogLevel"),
            "AMLPROXY_TRACING": "off",
            "AMLPROXY_METRICS": "false",  # EMF lines are CloudWatch's business
            "AMLPROXY_ENDPOINT_URL": emulator_url,
            "AMLPROXY_AWS_ENDPOINT_URL": moto_url,
            "AMLPROXY_REGION": REGION,
        }
        if backend == "sagemaker":
            env["AMLPROXY_SAGEMAKER_ENDPOINT"] = self.param("SageMakerEndpointName")
        else:
            env["AMLPROXY_AML_MODEL_ID"] = self.param("AmlModelId")
            env["AMLPROXY_AML_PREDICT_ENDPOINT"] = self.param("AmlPredictEndpoint") or emulator_url
        labels = self.param("Labels") or MODEL_LABELS.get(self.param("Schema"), "")
        if labels:
            env["AMLPROXY_LABELS"] = labels
        if self.param("ResultsTtlDays"):
            env["AMLPROXY_DYNAMODB_TTL_DAYS"] = self.param("ResultsTtlDays")
        if self.param("OutputBucketName"):
            env["AMLPROXY_OUTPUT_BUCKET"] = self.output_bucket
        if self.idempotency_table:  # the API function's, as in the template
            env["AMLPROXY_IDEMPOTENCY_TABLE"] = self.idempotency_table
            env["AMLPROXY_IDEMPOTENCY_TTL_S"] = self.param("IdempotencyTtlSeconds")
        return env


def load_config(path: Path | None = None, **overrides: Any) -> StackConfig:
    """The stack config: template defaults, then the TOML file, then ``overrides``
    (command-line flags; None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read the local stack config {path}: {exc}") from None
        unknown = set(data) - _KNOWN_KEYS
        if unknown:
            raise ConfigurationError(f"{path}: unknown keys {sorted(unknown)} (known: "
                                     f"{sorted(_KNOWN_KEYS)})")
    given = data.pop("parameters", {}) or {}
    if not isinstance(given, dict):
        raise ConfigurationError(f"{path}: [parameters] must be a table")
    parameters = template_defaults()
    unknown_params = set(given) - set(parameters) - set(LOCAL_NAMES) - {"InputBucketName"}
    if unknown_params:
        raise ConfigurationError(f"{path}: unknown SAM parameters {sorted(unknown_params)}")
    parameters.update({str(k): str(v) for k, v in given.items()})
    if parameters["Backend"] not in ("sagemaker", "aml"):
        raise ConfigurationError(f"Backend must be sagemaker or aml, not {parameters['Backend']!r}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "state_file" in data:
        data["state_file"] = Path(data["state_file"])
    try:
        return StackConfig(parameters=parameters, **data)
    except TypeError as exc:
        raise ConfigurationError(f"bad local stack config: {exc}") from None
