"""One retry layer: botocore makes one attempt per call, the RetryPolicy makes the retries.

A local HTTP server on 127.0.0.1 stands in for a failing AWS service: it answers every
request with a scripted error in the service's own wire format (JSON for DynamoDB and
Secrets Manager, XML for S3) and counts the requests, so each test sees exactly how many
HTTP attempts the real clients made.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from amlproxy.bootstrap import AwsClients, build_shared_sinks
from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import RetriesExhaustedError, SinkError, SinkWriteError
from amlproxy.settings import Settings
from amlproxy.sinks import dynamodb, s3
from amlproxy.sinks._aws import RetryingClient, aws_retryable
from tests.fixtures.threads import serving_forever

SOURCE = "s3://in/census.csv"


@dataclass
class FailingService:
    """Answers ``status`` with error ``code`` to everything, and counts the requests."""

    status: int = 500
    code: str = "InternalServerError"
    requests: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, target: str | None) -> tuple[int, str, bytes]:
        with self.lock:
            self.requests.append(target or "rest")
        if target is not None:  # the JSON protocols name the operation in X-Amz-Target
            body = {"__type": f"com.amazonaws.service#{self.code}", "message": "scripted"}
            return self.status, "application/x-amz-json-1.0", json.dumps(body).encode()
        xml = f"<Error><Code>{self.code}</Code><Message>scripted</Message></Error>"
        return self.status, "application/xml", xml.encode()


@pytest.fixture
def service() -> Iterator[FailingService]:
    found = FailingService()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            status, kind, body = found.answer(self.headers.get("x-amz-target"))
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving_forever(server):
        yield found


def settings_for(service: FailingService, **extra: Any) -> Settings:
    return Settings(aws_endpoint_url=service.url, region="us-east-1", max_attempts=3,
                    retry_base_delay_s=0.001, retry_max_delay_s=0.002, **extra)


def ok(line: int) -> Outcome:
    prediction = Prediction(">50K", {"<=50K": 0.3, ">50K": 0.7}, None, "local", "lr-1", 0.4)
    return Outcome(SOURCE, line, Status.OK, {"age": 39.0}, None, prediction)


@pytest.mark.parametrize("name", ["dynamodb", "s3", "secretsmanager"])
def test_the_clients_of_aws_clients_make_one_attempt_per_call(
    service: FailingService, name: str
) -> None:
    client = AwsClients(settings_for(service)).client(name)
    call = {
        "dynamodb": lambda: client.describe_table(TableName="t"),
        "s3": lambda: client.get_object(Bucket="b", Key="k"),
        "secretsmanager": lambda: client.get_secret_value(SecretId="s"),
    }[name]
    with pytest.raises(ClientError):
        call()
    assert len(service.requests) == 1


def test_the_sinks_default_clients_make_one_attempt_per_call(
    service: FailingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", service.url)
    with pytest.raises(ClientError):
        dynamodb.default_client().describe_table(TableName="t")
    with pytest.raises(ClientError):
        s3.default_client().head_bucket(Bucket="b")
    assert len(service.requests) == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "InternalServerError"), (400, "ProvisionedThroughputExceededException"),
     (400, "ThrottlingException"), (503, "ServiceUnavailable")],
)
def test_the_dynamodb_sink_makes_exactly_the_policy_attempts(
    service: FailingService, status: int, code: str
) -> None:
    service.status, service.code = status, code
    clients = AwsClients(settings_for(service))
    sink = dynamodb.DynamoDbSink("t", client=clients.client("dynamodb"),
                                 retry_policy=clients.retry_policy)
    with pytest.raises(SinkWriteError) as caught:
        sink.write([ok(n) for n in range(1, 31)])  # two chunks: the second is not tried
    assert service.requests == ["DynamoDB_20120810.BatchWriteItem"] * 3
    assert len(caught.value.keys) == 30
    assert "gave up after 3 attempt(s): max attempts" in str(caught.value)


def test_a_client_error_is_not_retried(service: FailingService) -> None:
    service.status, service.code = 400, "ValidationException"
    clients = AwsClients(settings_for(service))
    sink = dynamodb.DynamoDbSink("t", client=clients.client("dynamodb"),
                                 retry_policy=clients.retry_policy)
    with pytest.raises(SinkWriteError, match="not retried"):
        sink.write([ok(1)])
    assert len(service.requests) == 1


def test_the_s3_sink_makes_exactly_the_policy_attempts(service: FailingService) -> None:
    service.status, service.code = 503, "SlowDown"
    clients = AwsClients(settings_for(service))
    sink = s3.S3Sink("b", "out.jsonl", client=clients.client("s3"),
                     retry_policy=clients.retry_policy)
    sink.write([ok(1)])
    with pytest.raises(SinkError, match="gave up after 3 attempt"):
        sink.close()
    assert service.requests == ["rest"] * 3


def test_the_shared_sinks_get_the_invocation_deadline(service: FailingService) -> None:
    """bootstrap hands the sinks the runtime's Deadline: once it has passed, nothing is sent."""
    deadline = Deadline()
    settings = settings_for(service, dynamodb_table="t", sinks=("dynamodb",))
    clients = AwsClients(settings, deadline=deadline)
    (sink,) = build_shared_sinks(settings, clients)
    deadline.set_remaining(0.0)
    with pytest.raises(SinkWriteError, match="deadline passed before the first attempt"):
        sink.write([ok(1)])
    assert service.requests == []
    deadline.set_remaining(None)
    with pytest.raises(SinkWriteError, match="max attempts"):
        sink.write([ok(1)])
    assert len(service.requests) == 3


def test_the_retrying_client_runs_each_operation_under_the_policy(
    service: FailingService,
) -> None:
    service.status, service.code = 500, "InternalError"
    clients = AwsClients(settings_for(service))
    s3_client = clients.retrying("s3")
    with pytest.raises(ClientError) as caught:
        s3_client.get_object(Bucket="b", Key="k")
    assert len(service.requests) == 3
    assert "gave up after 3 attempt(s): max attempts" in caught.value.__notes__[-1]
    assert s3_client.meta.service_model.service_name == "s3"  # not an operation: as is
    service.status, service.code = 403, "AccessDenied"
    with pytest.raises(ClientError):
        s3_client.get_object(Bucket="b", Key="k")
    assert len(service.requests) == 4  # a 403 is not retried
    clients.retry_policy.deadline.set_remaining(0.0)
    with pytest.raises(ClientError):  # the triggers' calls wrap up work: past the deadline too
        s3_client.get_object(Bucket="b", Key="k")
    assert len(service.requests) == 5
    bounded = RetryingClient(clients.client("s3"), clients.retry_policy,
                             clients.retry_policy.deadline)
    with pytest.raises(RetriesExhaustedError):
        bounded.get_object(Bucket="b", Key="k")
    assert len(service.requests) == 5


def test_the_s3_sink_stops_uploading_parts_at_the_deadline_but_ends_the_run(
    service: FailingService,
) -> None:
    """A part the run writes is not sent after the deadline; the abort that ends the run
    still is (it runs in the margin before the timeout)."""
    service.status, service.code = 500, "InternalError"
    deadline = Deadline()
    deadline.set_remaining(0.0)
    clients = AwsClients(settings_for(service), deadline=deadline)
    sink = s3.S3Sink("b", "out.jsonl", client=clients.client("s3"), part_size=s3.MIN_PART_SIZE,
                     retry_policy=clients.retry_policy)
    sink._upload_id = "an-upload"  # a multipart upload the run started before the deadline
    with pytest.raises(SinkError, match="deadline passed before the first attempt"):
        sink.write([ok(n) for n in range(1, 40_001)])  # over 5 MiB: a part is due
    assert service.requests == ["rest"] * 3  # no UploadPart: AbortMultipartUpload, 3 tries


def test_retries_are_bounded_by_the_deadline_not_only_the_cap(service: FailingService) -> None:
    deadline = Deadline()
    deadline.set_remaining(0.5)
    policy = RetryPolicy(max_attempts=10_000, base_delay_s=0.01, max_delay_s=0.02,
                         deadline=deadline)
    clients = AwsClients(settings_for(service))
    sink = dynamodb.DynamoDbSink("t", client=clients.client("dynamodb"), retry_policy=policy)
    started = time.monotonic()
    with pytest.raises(SinkWriteError, match="deadline"):
        sink.write([ok(1)])
    assert time.monotonic() - started < 1.0
    assert 2 < len(service.requests) < 10_000


def test_what_is_retryable() -> None:
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert aws_retryable(client_error("RequestTimeout", 400))  # S3's: botocore retried it
    assert aws_retryable(client_error("SlowDown", 503))
    assert aws_retryable(client_error("TransactionInProgressException", 400))
    assert aws_retryable(client_error("Anything", 502))
    assert aws_retryable(client_error("Anything", 429))
    assert aws_retryable(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert aws_retryable(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert aws_retryable(ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert not aws_retryable(client_error("AccessDenied", 403))
    assert not aws_retryable(client_error("ConditionalCheckFailedException", 400))
    assert not aws_retryable(client_error("NoSuchKey", 404))
    assert not aws_retryable(NoCredentialsError())
    assert not aws_retryable(ValueError("not a botocore error"))
