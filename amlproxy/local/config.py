"""What the local stack is made of: the SAM parameters, local names and ports, and the
environment its functions run with.

A config file (``amlproxy local up --config FILE``) is TOML::

    host = "127.0.0.1"
    api_port = 8080          # 0: a free port
    moto_port = 5000
    emulator_port = 0
    state_file = ".amlproxy-local.json"
    timeout = 10             # seconds: overrides every function's timeout
    chaos = 0.2              # kill each invocation with this probability
    seed = 7                 # ... reproducibly per seed
    log_format = "JSON"      # Text or JSON: overrides LoggingConfig.LogFormat
    log_output = "stdout"    # or "telemetry": the _LAMBDA_TELEMETRY_LOG_FD framing
    runtime_client = "auto"  # awslambdaric where installed (Linux), else "builtin"
    async_retry_delays = [1.0, 2.0]

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

# Values of the parameters the template requires or leaves empty, that a stack needs.
LOCAL_NAMES: dict[str, str] = {
    "InputBucketName": "amlproxy-input",
    "ResultsTableName": "amlproxy-results",
    "SageMakerEndpointName": "census-income",  # the emulator's endpoint
    "AmlModelId": "census-income",  # the emulator's model
}
# Names of the resources CloudFormation would name itself (others: amlproxy-<logical-id>).
LOCAL_RESOURCE_NAMES: dict[str, str] = {
    "PredictTopic": "amlproxy-predict",
    "WorkQueue": "amlproxy-work",
    "WorkDeadLetterQueue": "amlproxy-work-dlq",
    "FailureQueue": "amlproxy-failures",
    "IdempotencyStore": "amlproxy-idempotency",
    "IngestQueue": "amlproxy-ingest",
    "IngestDeadLetterQueue": "amlproxy-ingest-dlq",
    "ChunkQueue": "amlproxy-chunks",
    "ChunkDeadLetterQueue": "amlproxy-chunks-dlq",
    "ChunkTable": "amlproxy-chunks",
    "CompletionTopic": "amlproxy-completion",
}
STACK_NAME = "amlproxy-local"
# Class names of the bundled models (the emulator's SageMaker endpoint answers bare
# probabilities, which AMLPROXY_LABELS names), used when the Labels parameter is empty.
MODEL_LABELS: dict[str, str] = {"census-income": "<=50K,>50K"}
_KNOWN_KEYS = {"host", "api_port", "moto_port", "emulator_port", "lambda_port", "state_file",
               "workers", "parameters", "timeout", "chaos", "seed", "log_format", "log_output",
               "runtime_client", "async_retry_delays", "echo_logs", "prewarm", "template"}


@dataclass(frozen=True)
class StackConfig:
    """Ports, names and SAM parameters of one local stack."""

    host: str = "127.0.0.1"
    api_port: int = 8080
    moto_port: int = 5000
    emulator_port: int = 0
    lambda_port: int = 0  # Lambda's Invoke API (and the service's status)
    workers: int = 32  # API requests handled at once (the thread pool)
    state_file: Path = Path(DEFAULT_STATE_FILE)
    parameters: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # overrides every function's timeout
    chaos: float = 0.0
    seed: int = 0
    log_format: str | None = None  # Text | JSON; None: each function's LoggingConfig
    log_output: str = "stdout"  # stdout | telemetry
    runtime_client: str = "auto"  # auto | awslambdaric | builtin
    async_retry_delays: tuple[float, ...] = (1.0, 2.0)
    echo_logs: bool = True  # print the workers' log records on stderr
    prewarm: bool = True  # start one worker per function at `up` (init errors show at once)
    template: Path | None = None  # another SAM template than sam/template.yaml

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

    def template_parameters(self, declared: set[str]) -> dict[str, str]:
        """The values of the template's ``declared`` parameters for this stack."""
        return {name: self.param(name) for name in declared
                if name in self.parameters or name in LOCAL_NAMES}

    def function_overrides(self, *, moto_url: str, emulator_url: str) -> dict[str, str]:
        """What the local stack changes in every function's environment from the
        template: AWS clients at moto, endpoint calls at the emulator, no X-Ray daemon."""
        env = {
            "AMLPROXY_ENDPOINT_URL": emulator_url,
            "AMLPROXY_AWS_ENDPOINT_URL": moto_url,
            "AMLPROXY_REGION": REGION,
            "AMLPROXY_TRACING": "off",
        }
        if self.param("Backend") == "aml":
            env["AMLPROXY_AML_PREDICT_ENDPOINT"] = self.param("AmlPredictEndpoint") or emulator_url
            env["AMLPROXY_AML_DISCOVER_ENDPOINT"] = "false"
        labels = self.param("Labels") or MODEL_LABELS.get(self.param("Schema"), "")
        if labels:
            env["AMLPROXY_LABELS"] = labels
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
    given = {**given, **(overrides.pop("parameters", None) or {})}
    if not isinstance(given, dict):
        raise ConfigurationError(f"{path}: [parameters] must be a table")
    template = overrides.get("template") or data.get("template")
    parameters = template_defaults(Path(template) if template else None)
    unknown_params = set(given) - set(parameters) - set(LOCAL_NAMES)
    if unknown_params:
        raise ConfigurationError(f"{path}: unknown SAM parameters {sorted(unknown_params)}")
    parameters.update({str(k): str(v) for k, v in given.items()})
    if parameters["Backend"] not in ("sagemaker", "aml"):
        raise ConfigurationError(f"Backend must be sagemaker or aml, not {parameters['Backend']!r}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("state_file", "template"):
        if data.get(key) is not None:
            data[key] = Path(data[key])
    if "async_retry_delays" in data:
        data["async_retry_delays"] = tuple(float(d) for d in data["async_retry_delays"])
    try:
        config = StackConfig(parameters=parameters, **data)
    except TypeError as exc:
        raise ConfigurationError(f"bad local stack config: {exc}") from None
    _check_service_options(config)
    return config


def _check_service_options(config: StackConfig) -> None:
    problems = []
    if config.timeout is not None and not 1 <= config.timeout <= 900:
        problems.append(f"timeout must be 1 to 900 seconds, not {config.timeout}")
    if not 0.0 <= config.chaos <= 1.0:
        problems.append(f"chaos must be a probability (0 to 1), not {config.chaos}")
    if config.log_format not in (None, "Text", "JSON"):
        problems.append(f"log_format must be Text or JSON, not {config.log_format!r}")
    if config.log_output not in ("stdout", "telemetry"):
        problems.append(f"log_output must be stdout or telemetry, not {config.log_output!r}")
    if config.runtime_client not in ("auto", "awslambdaric", "builtin"):
        problems.append("runtime_client must be auto, awslambdaric or builtin, not "
                        f"{config.runtime_client!r}")
    if problems:
        raise ConfigurationError("bad local stack config: " + "; ".join(problems))
