"""The checks of :class:`~amlproxy.settings.Settings` across variables (a backend's
required ones, sinks and their tables or URLs, prefixes that must not overlap, limits):
each gives every problem it finds, so that one :class:`ConfigurationError` lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amlproxy.settings import API_BYTES_PER_RECORD, LAMBDA_RESPONSE_LIMIT

if TYPE_CHECKING:
    from amlproxy.settings import Settings


def backend_problems(self: Settings) -> list[str]:
    """What the backend settings lack or get wrong, together."""
    missing = []
    uses = {self.backend}
    if self.backend == "shadow":
        if self.shadow_backend is None:
            missing.append("AMLPROXY_SHADOW_BACKEND (backend=shadow)")
        uses = {self.shadow_primary, self.shadow_backend or "local"}
    if "sagemaker" in uses and not self.sagemaker_endpoint:
        missing.append("AMLPROXY_SAGEMAKER_ENDPOINT (backend=sagemaker)")
    if "aml" in uses and not self.aml_model_id:
        missing.append("AMLPROXY_AML_MODEL_ID (backend=aml)")
    problems = ["missing " + ", ".join(missing)] if missing else []
    if "aml" in uses and self.labels is not None and len(self.labels) != 2:
        problems.append("AMLPROXY_LABELS: Amazon ML binary models need exactly two labels "
                        "(negative,positive)")
    return problems

def sink_problems(self: Settings) -> list[str]:
    """What the sink, prefix, chunk and API settings get wrong, together."""
    problems = []
    chosen = set(self.sinks or ())
    if "dynamodb" in chosen and not self.dynamodb_table:
        problems.append("AMLPROXY_SINKS names dynamodb but AMLPROXY_DYNAMODB_TABLE is unset")
    if "callback" in chosen and not self.callback_url:
        problems.append("AMLPROXY_SINKS names callback but AMLPROXY_CALLBACK_URL is unset")
    if self.callback_url and not (self.callback_secret_arn or self.callback_secret):
        problems.append(
            "AMLPROXY_CALLBACK_URL needs AMLPROXY_CALLBACK_SECRET_ARN or "
            "AMLPROXY_CALLBACK_SECRET (callbacks are signed)"
        )
    if self.output_prefix and self.output_prefix == self.rejects_prefix:
        problems.append("AMLPROXY_OUTPUT_PREFIX and AMLPROXY_REJECTS_PREFIX must differ")
    if self.input_prefix and any(
        p and (p.startswith(self.input_prefix) or self.input_prefix.startswith(p))
        for p in (self.output_prefix, self.rejects_prefix, self.chunk_prefix)
    ):
        problems.append(
            "AMLPROXY_INPUT_PREFIX must not overlap AMLPROXY_OUTPUT_PREFIX, "
            "AMLPROXY_REJECTS_PREFIX or AMLPROXY_CHUNK_PREFIX (outputs would "
            "trigger the function again)"
        )
    if self.chunk_prefix in (self.output_prefix, self.rejects_prefix):
        problems.append("AMLPROXY_CHUNK_PREFIX must differ from AMLPROXY_OUTPUT_PREFIX and "
                        "AMLPROXY_REJECTS_PREFIX")
    if self.chunk_queue_url and not self.chunk_table:
        problems.append("AMLPROXY_CHUNK_QUEUE_URL needs AMLPROXY_CHUNK_TABLE (the plans "
                        "and their completion)")
    if self.api_max_records * API_BYTES_PER_RECORD > LAMBDA_RESPONSE_LIMIT:
        most = LAMBDA_RESPONSE_LIMIT // API_BYTES_PER_RECORD
        problems.append(
            f"AMLPROXY_API_MAX_RECORDS={self.api_max_records} could exceed Lambda's 6 MB "
            f"response limit (at most {most})"
        )
    return problems
