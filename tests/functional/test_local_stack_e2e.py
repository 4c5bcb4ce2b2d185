"""End to end: ``amlproxy local up`` as a subprocess, driven only by real clients (boto3
for S3, SNS, SQS, DynamoDB and Lambda; http.client for the API), then stopped. Every
function runs in worker processes under the runtime interface client."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from amlproxy.emulator import EmulatorAdmin
from amlproxy.local.process import LocalStackProcess, start_local_stack
from tests.fixtures.aws import make_client

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "census-income-sample.csv"
RECORD = {
    "age": 52, "workclass": "Self-emp-inc", "fnlwgt": 287927, "education": "HS-grad",
    "education-num": 9, "marital-status": "Married-civ-spouse", "occupation": "Exec-managerial",
    "relationship": "Wife", "race": "White", "sex": "Female", "capital-gain": 15024,
    "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    running = start_local_stack(tmp_path_factory.mktemp("local"))
    try:
        yield running
    finally:
        running.stop()


def _wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _post(url: str, body: Any, *, connection: http.client.HTTPConnection | None = None
          ) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", parts.path, body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    status, data = answer.status, json.loads(answer.read())
    if connection is None:
        conn.close()
    return status, data


def _table_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table)["Items"]
    return items


def test_banner_names_the_resources_and_commands(stack: LocalStackProcess) -> None:
    text = "\n".join(stack.banner)
    assert "s3://amlproxy-input/input/" in text
    assert "dynamodb scan --table-name amlproxy-results" in text
    assert f"curl -s -X POST {stack.endpoints['api']}/predict" in text
    state = json.loads(stack.state_file.read_text())
    assert state["pid"] == stack.process.pid and state["endpoints"] == stack.endpoints


def test_uploaded_file_is_scored_into_the_output_bucket_and_the_table(
        stack: LocalStackProcess) -> None:
    s3 = make_client("s3", stack.endpoints["aws"])
    dynamodb = make_client("dynamodb", stack.endpoints["aws"])
    s3.upload_file(str(SAMPLE), "amlproxy-input", "input/census sample.csv")
    rows = len(SAMPLE.read_text().splitlines())

    def outputs() -> list[str]:
        listed = s3.list_objects_v2(Bucket="amlproxy-input", Prefix="output/")
        return [o["Key"] for o in listed.get("Contents", [])]

    keys = _wait_for(outputs)
    assert len(keys) == 1 and keys[0].startswith("output/census sample.csv.")
    body = s3.get_object(Bucket="amlproxy-input", Key=keys[0])["Body"].read().decode()
    predictions = [json.loads(line) for line in body.splitlines()]
    rejects = s3.list_objects_v2(Bucket="amlproxy-input", Prefix="rejects/")["KeyCount"]
    assert predictions and rejects == 1  # the sample holds a few bad rows on purpose
    assert {p["label"] for p in predictions} <= {"<=50K", ">50K"}
    source = "s3://amlproxy-input/input/census sample.csv"

    def stored() -> list[dict[str, Any]]:
        items = _table_items(dynamodb, "amlproxy-results")
        return [i for i in items if i["pk"]["S"] == source]

    items = _wait_for(lambda: len(stored()) == rows and stored())
    assert len(items) == rows
    assert sum(i["status"]["S"] == "ok" for i in items) == len(predictions)


def test_api_answers_and_keeps_the_connection_alive(stack: LocalStackProcess) -> None:
    url = stack.endpoints["api"] + "/predict"
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    status, answer = _post(url, RECORD, connection=conn)
    assert status == 200
    assert answer["prediction"]["label"] in ("<=50K", ">50K")
    assert set(answer["prediction"]["scores"]) == {"<=50K", ">50K"}
    local_port = conn.sock.getsockname()[1]
    status, answer = _post(url, {**RECORD, "age": 200, "sex": "?"}, connection=conn)
    assert conn.sock.getsockname()[1] == local_port  # the same connection, kept alive
    conn.close()
    assert status == 400
    assert {(e["field"], e["index"]) for e in answer["errors"]} == {("age", 0), ("sex", 0)}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", "/schema")
    assert json.loads(conn.getresponse().read())["title"] == "census-income"
    conn.request("GET", "/")
    page = conn.getresponse()
    assert page.status == 200 and b'id="field-education"' in page.read()
    conn.close()


def test_sns_messages_and_sqs_messages_are_scored(stack: LocalStackProcess) -> None:
    sns = make_client("sns", stack.endpoints["aws"])
    sqs = make_client("sqs", stack.endpoints["aws"])
    dynamodb = make_client("dynamodb", stack.endpoints["aws"])
    topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"]
                 if t["TopicArn"].endswith(":amlproxy-predict"))
    message_id = sns.publish(TopicArn=topic, Message=json.dumps([RECORD, RECORD]))["MessageId"]
    queue = sqs.get_queue_url(QueueName="amlproxy-work")["QueueUrl"]
    sqs_id = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(RECORD))["MessageId"]

    def scored(pk: str, count: int) -> list[dict[str, Any]]:
        items = [i for i in _table_items(dynamodb, "amlproxy-results") if i["pk"]["S"] == pk]
        return items if len(items) == count else []

    sns_items = _wait_for(lambda: scored(f"sns:{message_id}", 2))
    assert sorted(int(i["sk"]["N"]) for i in sns_items) == [1, 2]
    assert {i["status"]["S"] for i in sns_items} == {"ok"}
    sqs_items = _wait_for(lambda: scored(f"sqs:{sqs_id}", 1))
    assert sqs_items and sqs_items[0]["status"]["S"] == "ok"
    # the SQS event source deleted the handled message: nothing is left in flight
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert _wait_for(lambda: sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"), attrs


def test_a_failing_s3_invocation_leaves_its_notification_on_the_ingest_queue(
        stack: LocalStackProcess) -> None:
    """S3 -> IngestQueue -> S3Function: a notification the function does not finish stays
    on the queue (in flight for the visibility timeout, 6 x FunctionTimeout), to be
    delivered again up to ChunkMaxReceiveCount times and then dead-lettered
    (tests/functional/test_local_chunk_flow.py follows it to the DLQ)."""
    admin = EmulatorAdmin(stack.endpoints["emulator"])
    s3 = make_client("s3", stack.endpoints["aws"])
    admin.set_faults(model_error_rate=1.0)  # every endpoint call: a 400 model error
    try:
        before = admin.counts()
        status, answer = _post(stack.endpoints["api"] + "/predict", RECORD)
        assert status == 502 and answer["error"]["code"] == "BackendError"
        planner = _status(stack)["event_sources"]
        (ingest,) = [s for s in planner if s["function"] == "S3Function"]
        s3.put_object(Bucket="amlproxy-input", Key="input/doomed file.csv",
                      Body=SAMPLE.read_text().splitlines()[0].encode() + b"\n")

        def redelivered() -> dict[str, Any] | None:
            status = _status(stack)
            (source,) = [s for s in status["event_sources"] if s["function"] == "S3Function"]
            return status if source["redelivered"] > ingest["redelivered"] else None

        after = _wait_for(redelivered)
    finally:
        admin.reset()
    assert after is not None
    assert after["queues"]["IngestQueue"]["ApproximateNumberOfMessagesNotVisible"] == 1
    assert after["queues"]["IngestDeadLetterQueue"]["ApproximateNumberOfMessages"] == 0
    assert admin.counts() != before


def _status(stack: LocalStackProcess) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "amlproxy", "local", "status", "--json",
                           "--state-file", str(stack.state_file)], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)["status"]
    return status


def test_lambda_invoke_api_drives_the_functions(stack: LocalStackProcess) -> None:
    client = make_client("lambda", stack.endpoints["lambda"])
    event = {"version": "2.0", "routeKey": "$default", "rawPath": "/schema",
             "rawQueryString": "", "headers": {}, "isBase64Encoded": False,
             "requestContext": {"http": {"method": "GET", "path": "/schema"},
                                "requestId": "e2e-schema"}}
    answer = client.invoke(FunctionName="ApiFunction", Payload=json.dumps(event),
                           LogType="Tail")
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    result = json.loads(answer["Payload"].read())
    assert result["statusCode"] == 200 and json.loads(result["body"])["title"] == "census-income"
    assert base64.b64decode(answer["LogResult"])


def test_status_counts_and_a_killed_worker_is_replaced(stack: LocalStackProcess) -> None:
    status, first = _post(stack.endpoints["api"] + "/predict", RECORD)
    assert status == 200
    before = _status(stack)
    assert before["runtime_client"] in ("awslambdaric", "builtin")
    api = before["functions"]["ApiFunction"]
    assert api["invocations"] >= 1 and api["workers"]
    assert set(before["functions"]) == {"S3Function", "SnsFunction", "SqsFunction",
                                        "ChunkFunction", "ApiFunction"}
    killed = {w["pid"] for w in api["workers"]}
    for pid in killed:  # a crash of every idle API worker, from outside
        os.kill(pid, signal.SIGKILL)
    assert _wait_for(lambda: killed.isdisjoint(
        w["pid"] for w in _status(stack)["functions"]["ApiFunction"]["workers"]))
    status, again = _post(stack.endpoints["api"] + "/predict", RECORD)
    assert status == 200
    assert again["prediction"]["scores"] == first["prediction"]["scores"]
    after = _status(stack)["functions"]["ApiFunction"]
    assert after["cold_starts"] > api["cold_starts"]
    assert after["workers"] and killed.isdisjoint(w["pid"] for w in after["workers"])
    dynamodb = make_client("dynamodb", stack.endpoints["aws"])
    assert dynamodb.describe_table(TableName="amlproxy-results")["Table"]  # moto lives on


def test_down_stops_the_stack_and_leaves_nothing_behind(tmp_path: Path) -> None:
    running = start_local_stack(tmp_path, "--no-prewarm")
    try:
        ports = [urlsplit(url).port for url in running.endpoints.values()]
        children = _children(running.process.pid)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        status = subprocess.run(
            [sys.executable, "-m", "amlproxy", "local", "status", "--state-file",
             str(running.state_file)], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and str(running.process.pid) in status.stdout
        down = subprocess.run(
            [sys.executable, "-m", "amlproxy", "local", "down", "--state-file",
             str(running.state_file)], env=env, capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert running.process.wait(10) == 0
    finally:
        running.stop()
    assert not running.state_file.exists()
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")]
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
