"""When a handler module builds the runtime at import (Lambda's init phase) and when it
leaves it to the first invocation (tests, library use, the in-process local stack).
Under the real runtime client: tests/functional/test_lambda_runtime.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from amlproxy.triggers._runtime import in_lambda_init


@pytest.mark.parametrize(("runtime_api", "handler", "module", "eager"), [
    (None, None, "amlproxy.triggers.s3", False),  # tests, library use: lazily
    ("127.0.0.1:9001", None, "amlproxy.triggers.s3", True),  # a runtime client, no _HANDLER
    ("127.0.0.1:9001", "amlproxy.triggers.s3.handler", "amlproxy.triggers.s3", True),
    ("127.0.0.1:9001", "amlproxy/triggers/s3.handler", "amlproxy.triggers.s3", True),
    ("127.0.0.1:9001", "amlproxy.triggers.sns.handler", "amlproxy.triggers.s3", False),
    ("127.0.0.1:9001", "my_app.handler", "amlproxy.triggers.api", False),  # a library
])
def test_the_runtime_is_built_at_import_only_for_the_functions_handler(
    monkeypatch: pytest.MonkeyPatch, runtime_api: str | None, handler: str | None,
    module: str, eager: bool,
) -> None:
    for name, value in (("AWS_LAMBDA_RUNTIME_API", runtime_api), ("_HANDLER", handler)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert in_lambda_init(module) is eager


def imported(module: str, then: str = "print('built' if r._runtime is not None else 'lazy')",
             **env: str) -> subprocess.CompletedProcess[str]:
    code = f"import {module}, amlproxy.triggers._runtime as r; {then}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AMLPROXY_", "AWS_LAMBDA"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_importing_a_handler_builds_the_runtime_in_the_init_phase() -> None:
    lambda_env = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AMLPROXY_BACKEND": "local"}
    assert imported("amlproxy.triggers.sqs", **lambda_env).stdout.strip() == "built"
    assert imported("amlproxy.triggers.sqs", AMLPROXY_BACKEND="local").stdout.strip() == "lazy"
    bad = imported("amlproxy.triggers.sqs", **{**lambda_env, "AMLPROXY_BACKEND": "aml"})
    assert bad.returncode != 0 and "ConfigurationError" in bad.stderr
    assert "AMLPROXY_AML_MODEL_ID" in bad.stderr  # the import itself fails, naming it


def test_what_init_built_is_frozen_out_of_the_collectors_generations() -> None:
    """Objects built in init live as long as the process: gc.freeze() keeps the collections
    during invocations from walking them (only under Lambda's init)."""
    then = "import gc; print(gc.get_freeze_count() > 1000, gc.get_threshold()[0])"
    lambda_env = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AMLPROXY_BACKEND": "local"}
    assert imported("amlproxy.triggers.sqs", then, **lambda_env).stdout.split() == [
        "True", "50000"]  # and the young generation collected less often
    assert imported("amlproxy.triggers.sqs", then, AMLPROXY_BACKEND="local"
                    ).stdout.split() == ["False", "700"]


# a trigger's init under Lambda with the SageMaker backend and a DynamoDB sink; no call is made
SAGEMAKER_INIT_ENV = {
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AMLPROXY_BACKEND": "sagemaker",
    "AMLPROXY_SAGEMAKER_ENDPOINT": "census-income", "AMLPROXY_REGION": "us-east-1",
    "AMLPROXY_ENDPOINT_URL": "http://127.0.0.1:9", "AMLPROXY_AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AMLPROXY_SINKS": "dynamodb", "AMLPROXY_DYNAMODB_TABLE": "results",
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.mark.parametrize(("module", "sinks"), [
    ("amlproxy.triggers.s3", "s3"),
    ("amlproxy.triggers.sns", "dynamodb"),
    ("amlproxy.triggers.sqs", "dynamodb"),
    ("amlproxy.triggers.api", "dynamodb"),
])
def test_init_makes_its_clients_from_botocore_without_importing_boto3(
    module: str, sinks: str
) -> None:
    """boto3's session imports s3transfer and its resource layer (~16 ms of a cold start);
    the clients init makes are botocore's, the same low-level clients."""
    then = ("import sys, botocore.client; rt = r.get_runtime(); "
            f"c = rt.clients.client({sinks!r}); "
            "assert isinstance(c, botocore.client.BaseClient); "
            "print(sorted(m for m in ('boto3', 's3transfer') if m in sys.modules))")
    answer = imported(module, then, **{**SAGEMAKER_INIT_ENV, "AMLPROXY_SINKS": sinks})
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["amlproxy.triggers.s3", "amlproxy.triggers.sns",
                                    "amlproxy.triggers.sqs", "amlproxy.triggers.api"])
def test_init_builds_settings_and_schema_without_importing_pydantic(module: str) -> None:
    """``from pydantic import BaseModel`` is 0.28 G instructions, a fifth of a cold start:
    the settings and the record schema are validated by pydantic-core alone."""
    then = ("import sys; rt = r.get_runtime(); rt.clients.client('dynamodb'); "
            "print(sorted(m for m in sys.modules if m == 'pydantic' "
            "or m.startswith('pydantic.')))")
    answer = imported(module, then, **SAGEMAKER_INIT_ENV, PYDANTIC_DISABLE_PLUGINS="__all__")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]"
