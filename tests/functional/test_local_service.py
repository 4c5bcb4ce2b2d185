"""The local Lambda service's runtime contract, under awslambdaric and under the built-in
runtime loop, over the Runtime API the project implements: an invocation answers with
Lambda's context, a deadline kills the worker and the next invocation cold-starts, an
init error is reported and fails the invocation, errors and crashes, and the logs in
both formats on both outputs.

One service per runtime client serves the module (a worker costs a process start)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from amlproxy.local.functions import FunctionSpec
from amlproxy.local.pool import ServiceSettings
from amlproxy.local.service import LambdaService
from amlproxy.local.worker_logs import decode_frames
from amlproxy.local.workers import WorkerSettings, awslambdaric_available
from tests.functional.test_emulator_process import gone

HANDLERS = "tests.functional.local_handlers"
CLIENTS = ["awslambdaric", "builtin"] if awslambdaric_available() else ["builtin"]
FUNCTIONS = [
    FunctionSpec("Echo", f"{HANDLERS}.echo", timeout_s=3, memory_mb=256),
    FunctionSpec("Sleep", f"{HANDLERS}.sleep", timeout_s=1),
    FunctionSpec("Fail", f"{HANDLERS}.fail"),
    FunctionSpec("Crash", f"{HANDLERS}.crash"),
    FunctionSpec("Broken", f"{HANDLERS}.echo",
                 environment={"LOCAL_HANDLERS_INIT_ERROR": "AMLPROXY_BACKEND: bad value"}),
    FunctionSpec("Missing", "tests.functional.no_such_module.handler"),
]


@pytest.fixture(scope="module", params=CLIENTS)
def service(request: pytest.FixtureRequest) -> Iterator[LambdaService]:
    running = LambdaService(FUNCTIONS, ServiceSettings(
        workers=WorkerSettings(runtime_client=request.param)))
    try:
        yield running
    finally:
        running.stop()


def test_an_invocation_answers_with_the_lambda_context(service: LambdaService) -> None:
    context = json.dumps({"custom": {"caller": "test"}, "env": {}, "client": {}})
    outcome = service.invoke("Echo", {"hello": "world"}, client_context=context,
                             request_id="req-1")
    assert outcome.kind == "ok", outcome.payload
    answer = outcome.json()
    assert answer["event"] == {"hello": "world"}
    assert answer["request_id"] == "req-1"
    assert answer["function_name"] == "Echo"
    assert answer["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:Echo"
    assert str(answer["memory_limit_in_mb"]) == "256"
    assert 1000 < answer["remaining_ms"] <= 3000  # the deadline header, 3 s away
    assert answer["client_context"] in ({"caller": "test"}, json.loads(context))
    assert answer["trace_id"].startswith("Root=1-")
    env = answer["env"]
    assert env["_HANDLER"] == f"{HANDLERS}.echo"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/Echo"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["AWS_REGION"] == "us-east-1"
    again = service.invoke("Echo", {}).json()
    assert again["pid"] == answer["pid"]  # warm: the same worker
    assert again["env"]["AWS_LAMBDA_RUNTIME_API"] == env["AWS_LAMBDA_RUNTIME_API"]


def test_a_deadline_kills_the_worker_and_the_next_invocation_cold_starts(
        service: LambdaService) -> None:
    warm = service.invoke("Sleep", {"seconds": 0})
    assert warm.kind == "ok"
    pid = warm.json()["pid"]
    before = service.pool("Sleep").stats.cold_starts
    started = time.monotonic()
    outcome = service.invoke("Sleep", {"seconds": 30})
    elapsed = time.monotonic() - started
    assert outcome.kind == "timeout"
    assert outcome.json()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in outcome.json()["errorMessage"]
    assert 1.0 <= elapsed < 3.0
    assert gone(pid), "the worker was killed at the deadline"
    after = service.invoke("Sleep", {"seconds": 0})
    assert after.kind == "ok" and after.json()["pid"] != pid
    assert service.pool("Sleep").stats.cold_starts == before + 1
    assert service.pool("Sleep").stats.timeouts >= 1


def test_an_init_error_is_reported_and_fails_the_invocation(service: LambdaService) -> None:
    outcome = service.invoke("Broken", {})
    assert outcome.kind == "init_error"
    error = outcome.json()
    assert error["errorType"] == "ConfigurationError"
    assert error["errorMessage"] == "AMLPROXY_BACKEND: bad value"
    missing = service.invoke("Missing", {}).json()
    assert missing["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in missing["errorMessage"]
    again = service.invoke("Broken", {})  # the next invocation tries a fresh init
    assert again.kind == "init_error"
    stats = service.pool("Broken").stats
    assert stats.init_errors == 2 and stats.cold_starts == 2
    assert service.pool("Broken").status()["workers"] == []


def test_a_function_error_keeps_the_worker_and_a_crash_loses_it(
        service: LambdaService) -> None:
    first = service.invoke("Fail", {"message": "no good"})
    assert first.kind == "error"
    assert first.error_type == "ValueError"
    assert first.json()["errorMessage"] == "no good"
    assert first.json()["stackTrace"]
    service.invoke("Fail", {})
    assert service.pool("Fail").stats.cold_starts == 1  # warm after an error
    time.sleep(0.1)  # the log readers trail the answer
    assert any("no good" in r.text for r in service.logs.records("Fail"))  # logged too
    crash = service.invoke("Crash", {})
    assert crash.kind == "crash"
    assert crash.json()["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in crash.json()["errorMessage"]
    assert service.pool("Crash").status()["workers"] == []


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
@pytest.mark.parametrize("output", ["stdout", "telemetry"])
def test_logs_in_both_formats_on_both_outputs(client: str, log_format: str, output: str) -> None:
    logs = FunctionSpec("Logs", f"{HANDLERS}.logs", application_log_level="INFO")
    running = LambdaService([logs], ServiceSettings(
        workers=WorkerSettings(runtime_client=client, log_format=log_format,  # type: ignore[arg-type]
                               log_output=output)))  # type: ignore[arg-type]
    try:
        outcome = running.invoke("Logs", {"count": 2}, request_id="req-logs")
        assert outcome.json() == 2
    finally:
        running.stop()
    records = running.logs.records("Logs")
    assert {r.output for r in records} == {output}
    warning = [r for r in records if "a warning" in r.text]
    if output == "telemetry":  # one frame per record, the newline inside it
        assert len(warning) == 1 and "newline" in warning[0].text
        # the level is in the frame type with JSON (or a log level set), as awslambdaric
        assert warning[0].frame_level == ("WARN" if log_format == "JSON" else None)
        assert warning[0].frame_format == log_format.lower()
    if log_format == "JSON":
        docs = [json.loads(r.text) for r in records]  # every record is one JSON document
        assert {d["level"] for d in docs} >= {"INFO", "WARNING"}
        info = [d for d in docs if d["message"] == "record 1"]
        assert info and info[0]["requestId"] == "req-logs" and info[0]["index"] == 1
    else:
        assert any(r.text.startswith("[WARNING]\t") and "\treq-logs\t" in r.text
                   for r in records)


def test_telemetry_frames_decode_across_reads() -> None:
    import struct

    frames = [struct.pack(">IIQ", 0xA55A000E, len(m), 1_700_000_000_000_000 + i) + m
              for i, m in enumerate([b'{"a":1}', b"second\nline", b""])]
    data = b"".join(frames)
    decoded, rest = decode_frames(data[:-3])
    assert [m for _, _, m in decoded] == [b'{"a":1}', b"second\nline"] and rest
    decoded, rest = decode_frames(rest + data[-3:])
    assert [m for _, _, m in decoded] == [b""] and rest == b""
    with pytest.raises(ValueError, match="not a telemetry log frame"):
        decode_frames(b"\x00" * 16)
