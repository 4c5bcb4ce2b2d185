"""The chunk flow of the SAM template on the local stack: an upload -> moto's S3
notification -> IngestQueue -> the S3 function (the planner) -> ChunkQueue -> chunk
workers, at most ChunkMaxConcurrency at once -> assembly -> the completion topic; the
ChunkTable progress read by ``amlproxy local status`` and ``amlproxy local progress``.

The template is sam/template.yaml with two handlers swapped for the stand-ins of
tests/functional/chunk_handlers.py (the wiring is under test here, not the scoring), and
the functions run in worker processes of the local Lambda service.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlproxy.local.process import start_local_stack
from amlproxy.local.stack import LocalDeployment
from amlproxy.local.template import TEMPLATE_PATH
from tests.fixtures.aws import make_client

REPO = Path(__file__).resolve().parents[2]
ROWS = 40  # 8 chunks of the stand-in planner's 5 lines
SOURCE_KEY = "input/big census.csv"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sam/template.yaml with the planner and the chunk worker swapped for stand-ins."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    for real, stand_in in (("amlproxy.triggers.s3.handler", "planner"),
                           ("amlproxy.triggers.chunks.handler", "worker")):
        assert text.count(f"Handler: {real}") == 1
        text = text.replace(f"Handler: {real}",
                            f"Handler: tests.functional.chunk_handlers.{stand_in}")
    path = tmp_path_factory.mktemp("template") / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _rows() -> bytes:
    return b"".join(f"{n},State-gov,{77516 + n}\n".encode() for n in range(1, ROWS + 1))


def _wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _subscribe(stack_aws: str, topic_arn: str) -> tuple[Any, str]:
    sqs, sns = make_client("sqs", stack_aws), make_client("sns", stack_aws)
    url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return sqs, url


def test_an_upload_is_planned_fanned_out_to_at_most_n_workers_and_assembled(
        local_deployment: Callable[..., LocalDeployment], template: Path) -> None:
    stack = local_deployment(template=template, prewarm=False,
                             parameters={"ChunkMaxConcurrency": "3"})
    assert stack.resources is not None and stack.service is not None
    functions = {spec.name: spec for spec in stack.functions}
    (ingest,) = functions["S3Function"].sqs
    (chunks,) = functions["ChunkFunction"].sqs
    assert ingest.queue_arn.endswith(":amlproxy-ingest") and not functions["S3Function"].s3
    assert chunks.queue_arn.endswith(":amlproxy-chunks") and chunks.maximum_concurrency == 3
    assert functions["ChunkFunction"].reserved_concurrency == 3
    assert stack.resources.tables["ChunkTable"] == "amlproxy-chunks"
    aws = stack.endpoints["aws"]
    sqs, completions = _subscribe(aws, stack.resources.topics["CompletionTopic"])
    s3 = make_client("s3", aws)
    s3.put_object(Bucket="amlproxy-input", Key=SOURCE_KEY, Body=_rows())

    def assembled() -> list[dict[str, Any]]:
        return [o for o in stack.objects() if o["status"] == "assembled"]

    (done,) = _wait_for(assembled)
    assert done["object"].startswith(f"s3://amlproxy-input/{SOURCE_KEY}?versionId=")
    item = make_client("dynamodb", aws).scan(TableName="amlproxy-chunks")["Items"][0]
    assert item["event_key"]["S"] == "input/big+census.csv"  # as S3 spells it in events
    assert (done["chunks"], done["done"], done["percent"]) == (8, 8, 100.0)
    assert done["counts"] == {"total": ROWS, "ok": ROWS, "rejected": 0, "failed": 0}
    stem = done["object"].split("/", 3)[3].removeprefix("input/").replace("?versionId=", ".")
    output = s3.get_object(Bucket="amlproxy-input", Key=f"output/{stem}.predictions.jsonl")
    assert output["Body"].read() == _rows().upper()  # every line once, in line order
    assert s3.list_objects_v2(Bucket="amlproxy-input", Prefix="chunks/")["KeyCount"] == 0
    timings = [json.loads(s3.get_object(Bucket="amlproxy-input", Key=o["Key"])["Body"].read())
               for o in s3.list_objects_v2(Bucket="amlproxy-input",
                                           Prefix=f"timings/{stem}/")["Contents"]]
    assert len(timings) == 8
    # MaximumConcurrency: 3 workers at most, and they did work side by side
    assert 2 <= _most_at_once([(t["start"], t["end"]) for t in timings]) <= 3
    assert len({t["pid"] for t in timings}) <= 3
    message = _wait_for(lambda: sqs.receive_message(QueueUrl=completions, WaitTimeSeconds=1)
                        .get("Messages"))
    assert json.loads(message[0]["Body"])["object"] == done["object"]
    status = stack.status()
    assert status["objects"] == [done]
    assert status["functions"]["ChunkFunction"]["invocations"] == 8
    assert status["functions"]["S3Function"]["invocations"] >= 1  # (and the s3:TestEvent)
    for queue in ("IngestQueue", "ChunkQueue", "IngestDeadLetterQueue", "ChunkDeadLetterQueue"):
        depth = status["queues"][queue]
        assert depth["ApproximateNumberOfMessages"] == 0, queue


def test_the_queues_follow_a_local_timeout_as_the_template_follows_function_timeout(
        local_deployment: Callable[..., LocalDeployment], template: Path) -> None:
    """(tests/template/test_sam_chunks.py checks 6 x FunctionTimeout in the template.)"""
    stack = local_deployment(template=template, prewarm=False, timeout=2)
    assert stack.resources is not None
    sqs = make_client("sqs", stack.endpoints["aws"])
    for queue in ("IngestQueue", "ChunkQueue", "WorkQueue"):
        attributes = sqs.get_queue_attributes(QueueUrl=stack.resources.queues[queue],
                                              AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == "12", queue  # 6 x --timeout
        if queue != "WorkQueue":
            assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] in (9, "9")


@pytest.mark.slow  # about 40 s: two visibility timeouts of 12 s, and a third receive
def test_a_failing_plan_reaches_the_ingest_dlq_after_chunk_max_receive_count(
        local_deployment: Callable[..., LocalDeployment], template: Path) -> None:
    stack = local_deployment(template=template, prewarm=False, timeout=2,
                             parameters={"ChunkMaxReceiveCount": "2"})
    assert stack.resources is not None and stack.service is not None
    sqs = make_client("sqs", stack.endpoints["aws"])
    make_client("s3", stack.endpoints["aws"]).put_object(
        Bucket="amlproxy-input", Key="input/doomed.csv", Body=b"1,State-gov,1\n")
    dlq = stack.resources.queues["IngestDeadLetterQueue"]

    def dead() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    (notification,) = _wait_for(dead, timeout=60)
    assert notification["Records"][0]["s3"]["object"]["key"].endswith("doomed.csv")
    assert stack.service.pool("S3Function").stats.errors == 2  # ChunkMaxReceiveCount
    assert stack.objects() == []


def _cli(state_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "amlproxy", "local", *args, "--state-file",
                           str(state_file)], env=env, capture_output=True, text=True,
                          timeout=60)


def test_progress_and_status_show_chunks_done_over_a_running_stack(
        tmp_path: Path, template: Path) -> None:
    config = tmp_path / "local.toml"
    config.write_text('[parameters]\nChunkMaxConcurrency = "2"\n', encoding="utf-8")
    running = start_local_stack(tmp_path, "--template", str(template), "--no-prewarm",
                                "--config", str(config))
    try:
        assert any("amlproxy local progress" in line for line in running.banner)
        uri = f"s3://amlproxy-input/{SOURCE_KEY}"
        empty = _cli(running.state_file, "progress")
        assert empty.returncode == 0 and "no object scored in chunks yet" in empty.stdout
        make_client("s3", running.endpoints["aws"]).put_object(
            Bucket="amlproxy-input", Key=SOURCE_KEY, Body=_rows())

        def progress() -> list[dict[str, Any]]:
            done = _cli(running.state_file, "progress", uri, "--json")
            return json.loads(done.stdout) if done.returncode == 0 else []

        seen = _wait_for(lambda: [p for p in progress() if p["status"] == "assembled"])
        assert [(p["done"], p["chunks"], p["counts"]["total"]) for p in seen] == [(8, 8, ROWS)]
        text = _cli(running.state_file, "progress", uri)
        assert text.returncode == 0
        line = next(row for row in text.stdout.splitlines() if uri in row)
        assert line.split()[:3] == ["8/8", "100%", "assembled"]
        assert line.split()[3:7] == [str(ROWS), str(ROWS), "0", "0"]
        assert "results" in text.stdout and ".predictions.jsonl" in text.stdout
        missing = _cli(running.state_file, "progress", "s3://amlproxy-input/input/none.csv")
        assert missing.returncode == 1
        status = _cli(running.state_file, "status")
        assert status.returncode == 0 and "objects scored in chunks" in status.stdout
        assert "ChunkFunction" in status.stdout and uri in status.stdout
        as_json = json.loads(_cli(running.state_file, "status", "--json").stdout)
        assert as_json["status"]["objects"] == seen
        assert as_json["resources"]["chunk_table"] == "amlproxy-chunks"
    finally:
        running.stop()
    stopped = _cli(running.state_file, "progress")
    assert stopped.returncode == 1 and "no local stack is running" in stopped.stdout


@pytest.mark.skipif(importlib.util.find_spec("amlproxy.triggers.chunks") is None,
                    reason="the chunk worker (branch chunks) is not in this tree")
@pytest.mark.slow  # about 70 s on 2 cores
def test_the_real_planner_and_workers_score_a_census_file_in_chunks(
        local_deployment: Callable[..., LocalDeployment]) -> None:
    """The template as it is (amlproxy's own handlers), chunks of 256 KiB: every input line
    is a prediction or a reject, once, and the progress says all chunks are done."""
    stack = local_deployment(prewarm=False, parameters={
        "ChunkBytes": "262144", "ChunkMaxConcurrency": "2"})
    sample = (REPO / "examples" / "census-income-sample.csv").read_bytes()
    body = sample * 25  # about 1 MB: 4 chunks
    s3 = make_client("s3", stack.endpoints["aws"])
    s3.put_object(Bucket="amlproxy-input", Key="input/census x25.csv", Body=body)
    (done,) = _wait_for(lambda: [o for o in stack.objects() if o["status"] == "assembled"],
                        timeout=180)
    assert done["chunks"] == len(body) // 262144 + 1 == done["done"]
    lines = len(body.splitlines())
    assert done["counts"]["total"] == lines
    assert done["counts"]["ok"] + done["counts"]["rejected"] + done["counts"]["failed"] == lines
    listed = s3.list_objects_v2(Bucket="amlproxy-input", Prefix="output/census x25.csv.")
    (output,) = listed["Contents"]
    rows = s3.get_object(Bucket="amlproxy-input", Key=output["Key"])["Body"].read().splitlines()
    assert len(rows) == done["counts"]["ok"] + done["counts"]["failed"]
    assert s3.list_objects_v2(Bucket="amlproxy-input", Prefix="chunks/")["KeyCount"] == 0
    assert stack.status()["functions"]["ChunkFunction"]["invocations"] >= done["chunks"]
