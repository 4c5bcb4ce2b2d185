"""Logs through awslambdaric's own logging code, in-process, in all four modes: Lambda's
two log formats (``LoggingConfig.LogFormat`` Text and JSON) times its two outputs (stdout,
as under the Runtime Interface Emulator or ``sam local``, and the framed telemetry fd).

The handler awslambdaric installs on the root logger (``bootstrap._setup_logging``, with
its ``StandardLogSink`` or ``FramedTelemetryLogSink``) is set up exactly as the runtime
does it before importing a function; then :func:`configure_logging` runs as our runtime
does, and the API handler serves two requests. Every record must be one JSON object on one
line carrying the request id, ``trigger``, ``function`` and ``cold_start``, and the EMF
metrics line must stay a JSON document of its own.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.events import LambdaContext, load_event, use_env

bootstrap = pytest.importorskip("awslambdaric.bootstrap", reason="awslambdaric: Linux only")
log_utils = pytest.importorskip("awslambdaric.lambda_runtime_log_utils")

FRAME_HEADER = 16  # type (4 bytes), length (4), timestamp (8), then the message


def frames(data: bytes) -> list[tuple[bytes, str]]:
    """(frame type, message) of each frame the telemetry sink wrote."""
    found, at = [], 0
    while at < len(data):
        kind, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "big")
        found.append((kind, data[at + FRAME_HEADER:at + FRAME_HEADER + size].decode()))
        at += FRAME_HEADER + size
    assert at == len(data), "a frame runs past the end"
    return found


@contextmanager
def lambda_logging(fmt: str, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[dict[str, Any]]:
    """awslambdaric's root handler for ``fmt`` on ``output``; yields what was written
    (``stdout``, ``frames``) once the block ends. Every piece of logging state it touches
    is restored."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amlproxy-test")
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", fmt)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.Formatter.converter,
             logging.getLogger("amlproxy").level)
    root.handlers.clear()
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)  # StandardLogSink and the EMF line write here
    written: dict[str, Any] = {}
    fd_path = tmp_path / "telemetry"
    sink = (bootstrap.FramedTelemetryLogSink(os.open(fd_path, os.O_WRONLY | os.O_CREAT))
            if output == "fd" else bootstrap.StandardLogSink())
    try:
        with sink:
            log_format = log_utils.LogFormat.from_str(fmt)
            bootstrap._setup_logging(log_format, "", sink)  # as bootstrap.run() does
            yield written
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.Formatter.converter = saved[2]
        logging.getLogger("amlproxy").setLevel(saved[3])
    written["stdout"] = stdout.getvalue()
    written["frames"] = frames(fd_path.read_bytes()) if output == "fd" else []


def invoke(handler: Any, event: Any, context: LambdaContext,
           monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(bootstrap, "_GLOBAL_AWS_REQUEST_ID", context.aws_request_id)
    return handler(event, context)


@pytest.mark.parametrize("output", ["stdout", "fd"])
@pytest.mark.parametrize("fmt", ["Text", "JSON"])
def test_every_record_is_one_json_line_in_every_mode(
    fmt: str, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlproxy.triggers import api

    use_env(monkeypatch, backend="local")
    event = load_event("function_url")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/schema"
    event["requestContext"]["http"]["method"] = "GET"
    contexts = [LambdaContext(function_name="amlproxy-test") for _ in range(2)]
    with lambda_logging(fmt, output, tmp_path, monkeypatch) as written:
        for context in contexts:
            assert invoke(api.handler, event, context, monkeypatch)["statusCode"] == 200
        logging.getLogger("amlproxy.test").warning("odd extras", extra={
            "a_set": {1}, "a_path": Path("/x"), "nan": float("nan"), "nested": {"k": [1, {2}]}})

    lines = written["stdout"].split("\n")
    assert lines[-1] == "", "the output ends with a newline"
    stdout_docs = [json.loads(line) for line in lines[:-1]]  # every line is one JSON object
    emf = [doc for doc in stdout_docs if "_aws" in doc]
    assert [doc["ApiRequests"] for doc in emf] == [1, 1]  # one EMF line per invocation
    assert all(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "amlproxy" for doc in emf)
    if output == "fd":
        assert all(message.endswith("\n") and "\n" not in message[:-1]
                   for _, message in written["frames"])
        records = [json.loads(message) for _, message in written["frames"]]
        assert len(stdout_docs) == len(emf)  # stdout has only the metrics
    else:
        records = [doc for doc in stdout_docs if "_aws" not in doc]
    served = [r for r in records if r["message"] == "GET /schema -> 200"]
    assert [(r["request_id"], r["cold_start"]) for r in served] == [
        (contexts[0].aws_request_id, True), (contexts[1].aws_request_id, False)]
    assert all((r["trigger"], r["function"]) == ("api", "amlproxy-test") for r in served)
    if fmt == "JSON":  # Lambda's own formatter wrote them, and kept our fields
        assert [r["requestId"] for r in served] == [c.aws_request_id for c in contexts]
        assert {kind for kind, _ in written["frames"]} <= set(log_utils._JSON_FRAME_TYPES.values())
    odd = next(r for r in records if r["message"] == "odd extras")
    assert odd["a_set"] == "{1}" and odd["a_path"] == "/x" and odd["nan"] == "nan"
    assert odd["nested"] == {"k": [1, "{2}"]}


def test_without_the_newline_text_records_ran_into_the_metrics_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why :class:`JsonFormatter` ends records with a newline for awslambdaric's handler:
    its stdout sink writes the formatted text as is."""
    from amlproxy.observability.logs import JsonFormatter
    from amlproxy.observability.metrics import EmfMetrics

    with lambda_logging("Text", "stdout", tmp_path, monkeypatch) as written:
        (handler,) = logging.getLogger().handlers
        handler.setFormatter(JsonFormatter())  # no terminator: what the runtime had before
        logging.getLogger("amlproxy").warning("scored")
        metrics = EmfMetrics("amlproxy", {"function": "f"})
        metrics.add("ApiRequests")
        metrics.flush()
    first = written["stdout"].split("\n")[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)  # '{"...":"scored"}{"_aws":...}': two documents on one line
