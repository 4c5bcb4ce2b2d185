"""The handlers under the real runtime interface client (``python -m awslambdaric
HANDLER``) against a minimal Runtime API (tests/fixtures/runtime_api.py): the runtime is
built in the init phase, so a bad setting is an init error (``/runtime/init/error``) and
no event is consumed; every log record is one JSON line in the Text and JSON formats, on
stdout and on the telemetry fd; a foreign event is an invocation error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from amlproxy.local.functions import FunctionSpec
from amlproxy.local.service import LambdaService
from tests.events import load_event
from tests.fixtures.runtime_api import RuntimeApi
from tests.unit.test_lambda_logs import frames

pytest.importorskip("awslambdaric", reason="awslambdaric: Linux only")


@dataclass
class Worker:
    """One ``python -m awslambdaric`` process and what it wrote."""

    process: subprocess.Popen[bytes]
    telemetry: list[bytes] = field(default_factory=list)
    stdout: str = ""
    drain: threading.Thread | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        self.stdout = out.decode()
        if self.drain is not None:
            self.drain.join(timeout=30)  # the fd's last frames


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    api = RuntimeApi().start()
    yield api
    api.stop()


def start_worker(api: RuntimeApi, handler: str, *, log_format: str = "Text",
                 telemetry: bool = False, **settings: str) -> Worker:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMLPROXY_", "_LAMBDA"))}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": "amlproxy-test",
        "AWS_LAMBDA_LOG_FORMAT": log_format, "_HANDLER": handler, "AMLPROXY_BACKEND": "local",
        **{f"AMLPROXY_{k.upper()}": v for k, v in settings.items()},
    })
    read_fd = write_fd = -1
    if telemetry:
        read_fd, write_fd = os.pipe()
        env["_LAMBDA_TELEMETRY_LOG_FD"] = str(write_fd)
    process = subprocess.Popen([sys.executable, "-m", "awslambdaric", handler], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               pass_fds=(write_fd,) if telemetry else ())
    worker = Worker(process)
    if telemetry:
        os.close(write_fd)

        def drain() -> None:
            with os.fdopen(read_fd, "rb") as pipe:
                while chunk := pipe.read(65536):
                    worker.telemetry.append(chunk)

        worker.drain = threading.Thread(target=drain, daemon=True)
        worker.drain.start()
    return worker


BAD_SETTINGS = [  # (handler, settings, the setting the error names): each of the four
    ("amlproxy.triggers.s3.handler", {"input_prefix": "output/"}, "AMLPROXY_INPUT_PREFIX"),
    ("amlproxy.triggers.s3.handler", {"sinks": "dynamodb"}, "AMLPROXY_DYNAMODB_TABLE"),
    ("amlproxy.triggers.sns.handler", {"sinks": "s3"}, "AMLPROXY_OUTPUT_BUCKET"),  # per trigger
    ("amlproxy.triggers.sns.handler", {"backend": "aml"}, "AMLPROXY_AML_MODEL_ID"),
    ("amlproxy.triggers.sqs.handler", {"backend": "sagemaker"}, "AMLPROXY_SAGEMAKER_ENDPOINT"),
    ("amlproxy.triggers.sqs.handler", {"sinks": "s3"}, "AMLPROXY_OUTPUT_BUCKET"),
    ("amlproxy.triggers.api.handler", {"concurrency": "0"}, "AMLPROXY_CONCURRENCY"),
    ("amlproxy.triggers.api.handler", {"api_max_records": "100000"},
     "AMLPROXY_API_MAX_RECORDS"),
]
CHUNK_BAD_SETTINGS = [  # the chunk room's settings, of the chunk worker and the planner
    ("amlproxy.triggers.chunks.handler", {}, "the chunk worker needs AMLPROXY_CHUNK_TABLE"),
    ("amlproxy.triggers.s3.handler", {"chunk_queue_url": "http://127.0.0.1:9/q"},
     "AMLPROXY_CHUNK_QUEUE_URL needs AMLPROXY_CHUNK_TABLE"),
]


@pytest.mark.parametrize(("handler", "settings", "problem"), BAD_SETTINGS + CHUNK_BAD_SETTINGS)
def test_a_bad_setting_is_an_init_error(runtime_api: RuntimeApi, handler: str,
                                        settings: dict[str, str], problem: str) -> None:
    worker = start_worker(runtime_api, handler, **settings)
    assert worker.process.wait(timeout=60) != 0  # the runtime exits after reporting it
    worker.stop()
    (error,) = runtime_api.init_errors
    assert error["errorType"] == "ConfigurationError" and problem in error["errorMessage"]
    assert runtime_api.results.empty()  # no event was taken
    ours = [json.loads(line) for line in worker.stdout.split("\n") if line.startswith("{")]
    assert any(problem in line["message"] and line["phase"] == "init" for line in ours)


def schema_request() -> dict[str, Any]:
    event = load_event("function_url")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/schema"
    event["requestContext"]["http"]["method"] = "GET"
    return event


@pytest.mark.parametrize("telemetry", [False, True], ids=["stdout", "telemetry-fd"])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_logs_under_the_runtime_client(runtime_api: RuntimeApi, log_format: str,
                                       telemetry: bool) -> None:
    worker = start_worker(runtime_api, "amlproxy.triggers.api.handler", log_format=log_format,
                          telemetry=telemetry)
    try:
        answers = [runtime_api.invoke(schema_request()) for _ in range(2)]
        refused = runtime_api.invoke(load_event("s3_put"))
    finally:
        worker.stop()
    assert [(a.ok, a.body["statusCode"]) for a in answers] == [(True, 200), (True, 200)]
    assert not refused.ok and refused.body["errorType"] == "UnsupportedEventError"
    assert runtime_api.init_errors == []

    lines = worker.stdout.split("\n")[:-1]  # not splitlines(): \r is no line end here
    # awslambdaric's own report of the raised error (not a record of ours): in the Text
    # format one text line ("[ERROR] UnsupportedEventError: ...", its traceback joined with
    # \r) on stdout, or a text frame; in the JSON format one JSON object
    text_reports = [line for line in lines if line.startswith("[ERROR]")]
    assert len(text_reports) == (1 if log_format == "Text" and not telemetry else 0)
    docs = [json.loads(line) for line in lines if line not in text_reports]
    if telemetry:
        messages = [m for _, m in frames(b"".join(worker.telemetry))]
        json_frames = [m for m in messages if not m.startswith("[ERROR]")]
        assert len(json_frames) == len(messages) - (log_format == "Text")
        assert all("\n" not in m.rstrip("\n") for m in json_frames)  # one line each
        found = [json.loads(m) for m in json_frames]
    else:
        found = [doc for doc in docs if "_aws" not in doc]
    reports = [doc for doc in found if "errorType" in doc and "message" not in doc]
    assert [r["errorType"] for r in reports] == (["UnsupportedEventError"] if log_format == "JSON"
                                                 else [])
    records = [doc for doc in found if doc not in reports]
    assert [doc["ApiRequests"] for doc in docs if "_aws" in doc] == [1, 1]  # EMF, parseable
    ready = next(r for r in records if r["message"] == "runtime ready")
    assert ready["phase"] == "init"  # built before the first event
    served = [r for r in records if r["message"] == "GET /schema -> 200"]
    assert [(r["request_id"], r["cold_start"]) for r in served] == [
        (answers[0].request_id, True), (answers[1].request_id, False)]
    assert all((r["trigger"], r["function"]) == ("api", "amlproxy-test") for r in served)
    refusal = next(r for r in records if r["message"].startswith("event refused"))
    assert refusal["request_id"] == refused.request_id and refusal["level"] == "ERROR"


def test_a_bad_setting_is_an_init_error_under_the_local_service() -> None:
    """Each handler with a bad setting under the local Lambda service: its first
    invocation ends in the init phase (an init error naming the setting), the handler
    never gets the event, and the next invocation tries a fresh init."""
    cases = {handler.split(".")[2]: (handler, settings, problem)
             for handler, settings, problem in BAD_SETTINGS[1::2]}  # one of each handler
    assert sorted(cases) == ["api", "s3", "sns", "sqs"]
    service = LambdaService([FunctionSpec(name, handler, environment={
        "AMLPROXY_BACKEND": "local", **{f"AMLPROXY_{k.upper()}": v for k, v in settings.items()}})
        for name, (handler, settings, _) in cases.items()])
    events = {"s3": "s3_put", "sns": "sns_notification", "sqs": "sqs_receive_message",
              "api": "apigateway_aws_proxy"}
    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            outcomes = dict(zip(cases, pool.map(
                lambda name: service.invoke(name, load_event(events[name])), cases),
                strict=True))
        for name, outcome in outcomes.items():
            assert outcome.kind == "init_error", (name, outcome.payload)
            error = outcome.json()
            assert error["errorType"] == "ConfigurationError"
            assert cases[name][2] in error["errorMessage"]
            stats = service.pool(name).stats
            assert (stats.init_errors, stats.errors, stats.cold_starts) == (1, 0, 1)
            assert service.pool(name).status()["workers"] == []  # none left to serve
    finally:
        service.stop()
