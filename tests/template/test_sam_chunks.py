"""sam/template.yaml, the chunk flow of large objects (issue 13): S3 -> IngestQueue -> the
planner (S3Function) -> ChunkQueue -> ChunkFunction workers -> assembly, ChunkTable and
CompletionTopic; and the values CloudFormation cannot compute, looked up in Mappings.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.template.cfn_resolve import StackResolver
from tests.template.scenarios import SCENARIOS
from tests.template.tools import TEMPLATE_PATH

ResolverFor = Callable[[Mapping[str, Any], str], StackResolver]
AML_LIMIT_RPS = 200  # Amazon ML's real-time endpoint limit, requests/s
SAMPLE = TEMPLATE_PATH.parents[1] / "examples" / "census-income-sample.csv"
ROW_BYTES = round(len(SAMPLE.read_bytes()) / len(SAMPLE.read_bytes().splitlines()))  # 122
# queue -> the function whose SQS event consumes it
CONSUMED = {"IngestQueue": "S3Function", "ChunkQueue": "ChunkFunction",
            "WorkQueue": "SqsFunction"}


def _mappings_module() -> Any:
    spec = importlib.util.spec_from_file_location("sam_mappings",
                                                  TEMPLATE_PATH.parent / "mappings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _environment(resolver: StackResolver, function: str) -> dict[str, str]:
    merged = dict(resolver.template["Globals"]["Function"]["Environment"]["Variables"])
    props = resolver.template["Resources"][function]["Properties"]
    merged.update(props.get("Environment", {}).get("Variables", {}))
    return {k: str(v) for k, v in resolver.resolve(merged).items()}


def _with(overrides: Mapping[str, str], scenario: str = "sagemaker") -> StackResolver:
    from tests.template.cfn_resolve import load_template

    return StackResolver(load_template(TEMPLATE_PATH), {**SCENARIOS[scenario], **overrides},
                         stack_name="amlproxy-test")


def _broken_rules(resolver: StackResolver) -> set[str]:
    broken = set()
    for name, rule in resolver.template["Rules"].items():
        if "RuleCondition" in rule and not resolver.evaluate_condition(rule["RuleCondition"]):
            continue
        if not all(resolver.evaluate_condition(a["Assert"]) for a in rule["Assertions"]):
            broken.add(name)
    return broken


# ------------------------------------------------------------ generated lookups
def test_the_generated_blocks_are_up_to_date() -> None:
    mappings = _mappings_module()
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert mappings.render(text) == text, "run python sam/mappings.py"
    assert mappings.render(text.replace('"120": {QueueVisibility: 720}',
                                        '"120": {QueueVisibility: 120}')) == text


def test_every_allowed_function_timeout_has_a_visibility_of_six_times_it(
        sam_template: dict[str, Any]) -> None:
    allowed = [int(v) for v in sam_template["Parameters"]["FunctionTimeout"]["AllowedValues"]]
    rows = sam_template["Mappings"]["FunctionTimeouts"]
    assert sorted(int(k) for k in rows) == allowed  # a row for each value, no other
    assert all(rows[str(t)] == {"QueueVisibility": 6 * t} for t in allowed)
    assert len(rows) <= 200  # CloudFormation's limit of attributes per mapping
    assert int(sam_template["Parameters"]["FunctionTimeout"]["Default"]) in allowed


@pytest.mark.parametrize("timeout", ["3", "120", "900"])
def test_every_queue_a_function_consumes_waits_six_function_timeouts(
        sam_template: dict[str, Any], timeout: str) -> None:
    resolver = _with({"FunctionTimeout": timeout})
    resources = sam_template["Resources"]
    for queue, function in CONSUMED.items():
        (event,) = resources[function]["Properties"]["Events"].values()
        assert event["Type"] == "SQS" and event["Properties"]["Queue"] == {
            "Fn::GetAtt": [queue, "Arn"]}
        visibility = resolver.resolve(resources[queue]["Properties"]["VisibilityTimeout"])
        assert int(visibility) == 6 * int(timeout), queue
    assert "QueueVisibilityTimeout" not in sam_template["Parameters"]  # one rule, not two
    consumers = {lid for lid, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
                 for e in r["Properties"].get("Events", {}).values() if e["Type"] == "SQS"}
    assert consumers == set(CONSUMED.values())


@pytest.mark.parametrize("value", ["47", "901", "2"])
def test_a_function_timeout_without_a_row_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="FunctionTimeout"):
        _with({"FunctionTimeout": value})


def test_each_aml_worker_gets_its_share_of_200_requests_per_second(
        sam_template: dict[str, Any]) -> None:
    rows = sam_template["Mappings"]["AmlChunkRates"]
    assert sorted(int(k) for k in rows) == list(range(2, 101))
    for workers in range(2, 101):
        rate = rows[str(workers)]["WorkerMaxRps"]
        assert rate == AML_LIMIT_RPS // workers >= 2
        # one record per request: the planner sizes chunks at this many input bytes/s
        assert rows[str(workers)]["WorkerBytesPerSecond"] == rate * ROW_BYTES
        assert workers * rate <= AML_LIMIT_RPS < workers * (rate + 1)  # the most that fits
    for workers in ("2", "10", "7", "100"):
        env = _environment(_with({"ChunkMaxConcurrency": workers}, "aml-endpoint"),
                           "ChunkFunction")
        assert env["AMLPROXY_AML_MAX_RPS"] == str(AML_LIMIT_RPS // int(workers))
        planner = _environment(_with({"ChunkMaxConcurrency": workers}, "aml-endpoint"),
                               "S3Function")
        assert planner["AMLPROXY_CHUNK_THROUGHPUT_BPS"] == str(
            AML_LIMIT_RPS // int(workers) * ROW_BYTES)
    for function in ("S3Function", "SnsFunction", "SqsFunction", "ApiFunction"):
        assert "AMLPROXY_AML_MAX_RPS" not in _environment(_with({}, "aml-endpoint"), function)
    # SageMaker has no such limit: no rate, and up to the event source's 1000 workers
    sagemaker = _with({"ChunkMaxConcurrency": "1000"})
    assert "AMLPROXY_AML_MAX_RPS" not in _environment(sagemaker, "ChunkFunction")
    assert "AMLPROXY_CHUNK_THROUGHPUT_BPS" not in _environment(sagemaker, "S3Function")
    assert _broken_rules(sagemaker) == set()


def test_the_chunk_concurrency_is_an_event_source_maximum_and_aml_takes_100_at_most() -> None:
    assert _broken_rules(_with({"ChunkMaxConcurrency": "100"}, "aml-endpoint")) == set()
    for value in ("101", "1000"):
        assert _broken_rules(_with({"ChunkMaxConcurrency": value}, "aml-endpoint")) == {
            "AmlChunkWorkersAtMost100"}
    for value in ("1", "1001"):  # SQS event sources take MaximumConcurrency 2 to 1000
        with pytest.raises(ValueError, match="ChunkMaxConcurrency"):
            _with({"ChunkMaxConcurrency": value})


# ----------------------------------------------------------------- the resources
def test_the_chunk_queues_give_a_chunk_nine_deliveries_before_its_dlq(
        sam_template: dict[str, Any]) -> None:
    parameter = sam_template["Parameters"]["ChunkMaxReceiveCount"]
    receives = int(parameter["Default"])
    # a 20% chance per delivery to be cut: under one in a million to reach the DLQ, and 9
    # is the least count that gives it
    assert 0.2 ** receives < 1e-6 <= 0.2 ** (receives - 1)
    assert "0.2^9" in parameter["Description"] and "5e-7" in parameter["Description"]
    resources = sam_template["Resources"]
    for queue, dlq in (("IngestQueue", "IngestDeadLetterQueue"),
                       ("ChunkQueue", "ChunkDeadLetterQueue")):
        props = resources[queue]["Properties"]
        assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                                          "maxReceiveCount": {"Ref": "ChunkMaxReceiveCount"}}
        assert props["SqsManagedSseEnabled"] is True
        assert resources[dlq]["Properties"]["MessageRetentionPeriod"] == 1209600  # 14 days


def test_the_planner_and_the_workers_consume_their_queues_reporting_item_failures(
        sam_template: dict[str, Any]) -> None:
    resources = sam_template["Resources"]
    planner = resources["S3Function"]["Properties"]["Events"]["InputObjectCreated"]
    assert planner["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert planner["Properties"]["BatchSize"] == {"Ref": "IngestBatchSize"}
    batch = sam_template["Parameters"]["IngestBatchSize"]
    assert (batch["MinValue"], batch["MaxValue"]) == (1, 10)
    worker = resources["ChunkFunction"]["Properties"]
    assert worker["Handler"] == "amlproxy.triggers.chunks.handler"
    (event,) = worker["Events"].values()
    assert event["Properties"] == {
        "Queue": {"Fn::GetAtt": ["ChunkQueue", "Arn"]}, "BatchSize": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "ChunkMaxConcurrency"}}}
    concurrency = sam_template["Parameters"]["ChunkMaxConcurrency"]
    assert (concurrency["MinValue"], concurrency["MaxValue"]) == (2, 1000)
    assert worker["ReservedConcurrentExecutions"] == {"Ref": "ChunkMaxConcurrency"}


def test_only_the_input_bucket_may_send_to_the_ingest_queue(
        sam_template: dict[str, Any], resolver_for: ResolverFor) -> None:
    resolver = resolver_for(sam_template, "sagemaker")
    policy = resolver.resolve(sam_template["Resources"]["IngestQueuePolicy"]["Properties"])
    assert policy["Queues"] == [resolver.ref("IngestQueue")]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Sid": "S3NotificationsFromTheInputBucket", "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:us-east-1:123456789012:amlproxy-test-IngestQueue",
        "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::amlproxy-in"},
                      "StringEquals": {"aws:SourceAccount": "123456789012"}}}


def test_the_chunk_table_and_the_completion_topic(sam_template: dict[str, Any]) -> None:
    resources = sam_template["Resources"]
    table = resources["ChunkTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "object", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "object", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    topic = resources["CompletionTopic"]
    assert "Condition" not in topic  # always there: without subscribers it costs nothing
    assert topic["Properties"] == {"KmsMasterKeyId": "alias/aws/sns"}
    outputs = sam_template["Outputs"]
    assert {"IngestQueueUrl", "IngestDeadLetterQueueUrl", "ChunkQueueUrl",
            "ChunkDeadLetterQueueUrl", "ChunkTableName", "CompletionTopicArn"} <= set(outputs)
    groups = {r["Properties"]["LogGroupName"]["Fn::Sub"] for r in resources.values()
              if r["Type"] == "AWS::Logs::LogGroup"}
    assert "/aws/lambda/${AWS::StackName}/chunks" in groups


def test_a_plan_outlives_every_chunk_message_and_chunk_object(
        sam_template: dict[str, Any]) -> None:
    """A chunk redriven from its dead-letter queue on the last day of its retention still
    finds its plan item (else it is dropped and the object is never assembled)."""
    from amlproxy.chunks.store import DEFAULT_TTL_S

    resources = sam_template["Resources"]
    retention = max(int(resources[q]["Properties"]["MessageRetentionPeriod"])
                    for q in ("ChunkQueue", "ChunkDeadLetterQueue"))
    buckets = [resources[b]["Properties"]["LifecycleConfiguration"] for b in
               ("InputBucket", "OutputBucket")]
    rules = [rule for config in buckets for rule in _if_rules(config)
             if rule["Id"] == "ExpireChunks"]
    assert len(rules) == 2 and {r["ExpirationInDays"] for r in rules} == {14}
    assert retention < DEFAULT_TTL_S and DEFAULT_TTL_S >= 14 * 86400


def _if_rules(config: Any) -> list[dict[str, Any]]:
    """The lifecycle rules of a bucket, through a Fn::If if there is one."""
    if isinstance(config, dict) and "Fn::If" in config:
        return [r for branch in config["Fn::If"][1:] if isinstance(branch, dict)
                for r in branch.get("Rules", [])]
    return list(config.get("Rules", []))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_planner_and_the_workers_get_the_chunk_settings(
        sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str) -> None:
    resolver = resolver_for(sam_template, scenario)
    planner = _environment(resolver, "S3Function")
    worker = _environment(resolver, "ChunkFunction")
    table = "amlproxy-test-ChunkTable"
    assert planner["AMLPROXY_CHUNK_QUEUE_URL"] == resolver.ref("ChunkQueue")
    assert planner["AMLPROXY_CHUNK_TABLE"] == worker["AMLPROXY_CHUNK_TABLE"] == table
    assert planner["AMLPROXY_CHUNK_PREFIX"] == worker["AMLPROXY_CHUNK_PREFIX"] == "chunks/"
    assert "AMLPROXY_CHUNK_BYTES" not in planner  # derived from the timeout by default
    assert planner["AMLPROXY_FUNCTION_TIMEOUT_S"] == resolver.parameters["FunctionTimeout"]
    assert worker["AMLPROXY_COMPLETION_TOPIC_ARN"] == resolver.ref("CompletionTopic")
    assert "AMLPROXY_CHUNK_QUEUE_URL" not in worker  # workers never plan
    for function in ("SnsFunction", "SqsFunction", "ApiFunction"):
        env = _environment(resolver, function)
        assert not {"AMLPROXY_CHUNK_QUEUE_URL", "AMLPROXY_CHUNK_TABLE",
                    "AMLPROXY_COMPLETION_TOPIC_ARN"} & set(env), function
    sized = _with({"ChunkBytes": "67108864"}, scenario)
    assert _environment(sized, "S3Function")["AMLPROXY_CHUNK_BYTES"] == "67108864"
    with pytest.raises(ValueError, match="ChunkBytes"):
        _with({"ChunkBytes": "64MiB"}, scenario)


def test_the_chunk_prefix_is_one_of_the_prefixes_that_must_differ() -> None:
    for prefix in ("input/", "output/", "rejects/"):
        assert _broken_rules(_with({"ChunkPrefix": prefix})) == {"PrefixesDiffer"}
    assert _broken_rules(_with({"ChunkPrefix": "parts/"})) == set()

