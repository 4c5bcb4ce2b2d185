"""sam/template.yaml, read as written: least-privilege roles and the trigger wiring.

These tests need no tool venv: they evaluate the template's own resources (the roles are
plain AWS::IAM::Role resources, which the SAM transform leaves untouched — asserted in
test_sam_tools.py) for several parameter scenarios.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.template.cfn_resolve import StackResolver
from tests.template.expected import EXPECTED_GRANTS
from tests.template.iam_grants import (
    WILDCARD_RESOURCE_ALLOW_LIST,
    function_roles,
    role_documents,
    role_grants,
)
from tests.template.scenarios import SCENARIOS
from tests.template.tools import TEMPLATE_PATH

ResolverFor = Callable[[Mapping[str, Any], str], StackResolver]

HANDLERS = {
    "S3Function": "amlproxy.triggers.s3.handler",
    "SnsFunction": "amlproxy.triggers.sns.handler",
    "SqsFunction": "amlproxy.triggers.sqs.handler",
    "ChunkFunction": "amlproxy.triggers.chunks.handler",
    "ApiFunction": "amlproxy.triggers.api.handler",
}


def _resources_of_type(template: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _environment(resolver: StackResolver, function: str) -> dict[str, str]:
    merged = dict(resolver.template["Globals"]["Function"]["Environment"]["Variables"])
    props = resolver.template["Resources"][function]["Properties"]
    merged.update(props.get("Environment", {}).get("Variables", {}))
    return {k: str(v) for k, v in resolver.resolve(merged).items()}


# ---------------------------------------------------------------- IAM: exact grants
@pytest.mark.parametrize("scenario", sorted(EXPECTED_GRANTS))
def test_each_role_grants_exactly_the_expected_actions_on_the_expected_arns(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    resolver = resolver_for(sam_template, scenario)
    roles = function_roles(sam_template)
    for function, expected in EXPECTED_GRANTS[scenario].items():
        actual = role_grants(resolver, roles[function])
        assert actual == expected, (
            f"{scenario}/{function}: extra {sorted(actual - expected)}, "
            f"missing {sorted(expected - actual)}"
        )


def test_each_function_runs_as_its_own_role_and_nothing_else_grants_iam(
    sam_template: dict[str, Any],
) -> None:
    roles = function_roles(sam_template)
    assert set(roles) == set(HANDLERS)
    assert len(set(roles.values())) == len(roles), f"roles shared: {roles}"
    for function, handler in HANDLERS.items():
        props = sam_template["Resources"][function]["Properties"]
        assert props["Handler"] == handler
        assert "Policies" not in props, f"{function}: SAM Policies would add a generated role"
    iam_resources = {k: v["Type"] for k, v in sam_template["Resources"].items()
                     if v["Type"].startswith("AWS::IAM::")}
    assert iam_resources == {role: "AWS::IAM::Role" for role in roles.values()}
    for role in roles.values():
        props = sam_template["Resources"][role]["Properties"]
        assert "ManagedPolicyArns" not in props, f"{role}: managed policies are not reviewed here"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_wildcard_action_and_no_wildcard_resource_outside_the_xray_allow_list(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    resolver = resolver_for(sam_template, scenario)
    tracing = SCENARIOS[scenario].get("Tracing", "off") != "off"
    for function, role in function_roles(sam_template).items():
        grants = role_grants(resolver, role)
        star_actions = {action for action, resource in grants if resource == "*"}
        assert star_actions == (set(WILDCARD_RESOURCE_ALLOW_LIST) if tracing else set()), (
            f"{scenario}/{function}: Resource '*' for {sorted(star_actions)}")
        for action, resource in grants:
            assert "*" not in action and "?" not in action, f"wildcard action {action}"
            if resource == "*":
                continue
            assert "?" not in resource, resource
            # A trailing '*' is allowed only as 'every key under this S3 prefix' or
            # 'every stream of this log group'; no other wildcard anywhere in an ARN.
            resource = resource.split(" when ")[0]  # the condition may hold a prefix with '*'
            body = resource.removesuffix("*")
            assert "*" not in body, f"{scenario}/{function}: {action} on {resource}"
            if body != resource:
                assert re.fullmatch(r"arn:aws:s3:::[a-z0-9.-]+/([^/*?]+/)+", body) or re.fullmatch(
                    r"arn:aws:logs:[a-z0-9-]+:\d{12}:log-group:[^*?:]+:", body
                ), f"{scenario}/{function}: unexpected trailing wildcard in {resource}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_s3_access_is_prefix_scoped_and_follows_each_trigger(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    params = {**{k: str(v.get("Default", "")) for k, v in sam_template["Parameters"].items()},
              **SCENARIOS[scenario]}
    output_bucket = params["OutputBucketName"] or params["InputBucketName"]
    resolver = resolver_for(sam_template, scenario)
    for function, role in function_roles(sam_template).items():
        s3 = {(a, r) for a, r in role_grants(resolver, role) if a.startswith("s3:")}
        read_input = {(a, f"arn:aws:s3:::{params['InputBucketName']}/{params['InputPrefix']}*")
                      for a in ("s3:GetObject", "s3:GetObjectVersion")}
        writers = ("S3Function", "ChunkFunction")
        if function == "ApiFunction" or (
                function not in writers and params["MessageS3Pointers"] == "disabled"):
            assert s3 == set(), f"{function} needs no S3 access: {s3}"
            continue
        if function not in writers:  # SNS/SQS messages pointing at S3 objects: read them
            assert s3 == read_input, f"{function}: {s3}"
            continue
        chunks = {(a, f"arn:aws:s3:::{output_bucket}/{params['ChunkPrefix']}*")
                  for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")}
        outputs = {f"arn:aws:s3:::{output_bucket}/{params['OutputPrefix']}*",
                   f"arn:aws:s3:::{output_bucket}/{params['RejectsPrefix']}*"}
        assert s3 == read_input | {
            (a, r) for r in outputs
            for a in ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
        } | (chunks if function == "ChunkFunction" else set()), f"{function}: {s3}"
        writes = {r for a, r in s3 if a == "s3:PutObject"}
        read_prefix = f"arn:aws:s3:::{params['InputBucketName']}/{params['InputPrefix']}"
        assert not any(r.startswith(read_prefix) for r in writes), (
            "the S3 function must not write where it reads")


def test_the_documented_allow_list_is_the_one_asserted(sam_template: dict[str, Any]) -> None:
    documented = sam_template["Metadata"]["amlproxy"]["WildcardResourceAllowList"]
    assert set(documented) == WILDCARD_RESOURCE_ALLOW_LIST


def test_roles_trust_only_the_lambda_service(sam_template: dict[str, Any],
                                             resolver_for: ResolverFor) -> None:
    resolver = resolver_for(sam_template, "sagemaker")
    for role in function_roles(sam_template).values():
        props = resolver.resolve(sam_template["Resources"][role]["Properties"])
        assert props["AssumeRolePolicyDocument"]["Statement"] == [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]
        assert "PermissionsBoundary" not in props  # only when a boundary ARN is given
        assert len(role_documents(resolver, role)) == 1


# ------------------------------------------------------------ parameter validation
@pytest.mark.parametrize(("parameter", "value"), [
    ("InputPrefix", "input/*"), ("InputPrefix", "in?put/"), ("InputPrefix", "input"),
    ("InputPrefix", "/input/"), ("InputPrefix", ""), ("InputPrefix", "a//b/"),
    ("OutputPrefix", "*"), ("RejectsPrefix", "rej${x}/"),
    ("SageMakerEndpointName", "Census-XGB"), ("SageMakerEndpointName", "census_xgb"),
    ("SageMakerEndpointName", "census-*"), ("AmlModelId", "ml-*"),
    ("InputBucketName", "Amlproxy-In"), ("CallbackUrl", "http://insecure.example.com"),
    ("CallbackSecretArn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"),
    ("Backend", "local"), ("ApiAuth", "NONE"),
])
def test_values_that_could_widen_an_arn_are_refused(sam_template: dict[str, Any],
                                                    parameter: str, value: str) -> None:
    params = {**SCENARIOS["sagemaker"], parameter: value}
    with pytest.raises(ValueError, match=parameter):
        StackResolver(sam_template, params)


@pytest.mark.parametrize(("parameter", "value"), [
    ("InputPrefix", "input/"), ("InputPrefix", "census/2024-01/in/"),
    ("SageMakerEndpointName", "census-xgb-2"), ("AmlModelId", "ml-AbC.123_x"),
])
def test_ordinary_values_are_accepted(sam_template: dict[str, Any],
                                      parameter: str, value: str) -> None:
    StackResolver(sam_template, {**SCENARIOS["sagemaker"], parameter: value})


def _broken_rules(template: Mapping[str, Any], params: Mapping[str, str]) -> set[str]:
    resolver = StackResolver(template, params)
    broken = set()
    for name, rule in template["Rules"].items():
        if "RuleCondition" in rule and not resolver.evaluate_condition(rule["RuleCondition"]):
            continue
        if not all(resolver.evaluate_condition(a["Assert"]) for a in rule["Assertions"]):
            broken.add(name)
    return broken


@pytest.mark.parametrize(("overrides", "rule"), [
    ({"SageMakerEndpointName": ""}, "SageMakerBackendNeedsEndpoint"),
    ({"Backend": "aml"}, "AmlBackendNeedsModel"),
    ({"OutputPrefix": "input/"}, "PrefixesDiffer"),
    ({"RejectsPrefix": "input/"}, "PrefixesDiffer"),
    ({"RejectsPrefix": "output/"}, "PrefixesDiffer"),
    ({"OutputBucketName": "amlproxy-out", "OutputPrefix": "input/"}, "PrefixesDiffer"),
    ({"CallbackSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"},
     "CallbackSecretNeedsUrl"),
    ({"CallbackUrl": "https://hooks.example.com/x"}, "CallbackUrlNeedsSecret"),
    ({"Tracing": "otel"}, "OtelTracingNeedsTheAdotLayer"),
    ({"AdotLayerArn": "arn:aws:lambda:us-east-1:901920570463:layer:aws-otel-python-arm64:1"},
     "AdotLayerOnlyWithOtel"),
    ({"SnapStart": "enabled"}, "SnapStartNeedsPython312"),
    ({"SnapStart": "enabled", "PythonRuntime": "python3.11"}, "SnapStartNeedsPython312"),
])
def test_rules_refuse_inconsistent_parameters(sam_template: dict[str, Any],
                                              overrides: dict[str, str], rule: str) -> None:
    for scenario in SCENARIOS.values():
        assert _broken_rules(sam_template, scenario) == set()
    assert _broken_rules(sam_template, {**SCENARIOS["sagemaker"], **overrides}) == {rule}


# --------------------------------------------------------------- trigger wiring
def test_s3_notifications_are_filtered_to_the_input_prefix_and_queued_for_the_planner(
        sam_template: dict[str, Any]) -> None:
    bucket = sam_template["Resources"]["InputBucket"]
    notification = bucket["Properties"]["NotificationConfiguration"]
    assert notification == {"QueueConfigurations": [{
        "Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": ["IngestQueue", "Arn"]},
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": {"Ref": "InputPrefix"}}]}},
    }]}
    assert bucket["DependsOn"] == "IngestQueuePolicy"  # S3 checks it may send, at once
    events = sam_template["Resources"]["S3Function"]["Properties"]["Events"]
    assert len(events) == 1
    (event,) = events.values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}


def test_async_triggers_have_retries_and_an_on_failure_queue(
        sam_template: dict[str, Any]) -> None:
    configs = _resources_of_type(sam_template, "AWS::Lambda::EventInvokeConfig")
    by_function = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
                   for c in configs.values()}
    assert set(by_function) == {"SnsFunction"}  # S3 reaches its function through a queue
    alias = sam_template["Globals"]["Function"]["AutoPublishAlias"]
    for function, props in by_function.items():
        assert props["Qualifier"] == alias  # the alias the trigger invokes, not $LATEST
        assert sam_template["Resources"][f"{function}EventInvokeConfig"]["DependsOn"] == (
            f"{function}Alias{alias}")
        assert props["MaximumRetryAttempts"] == {"Ref": "AsyncMaxRetryAttempts"}
        assert props["MaximumEventAgeInSeconds"] == {"Ref": "AsyncMaxEventAgeSeconds"}
        assert props["DestinationConfig"] == {
            "OnFailure": {"Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}}
    sns_event = sam_template["Resources"]["SnsFunction"]["Properties"]["Events"]["PredictMessage"]
    assert sns_event["Properties"]["Topic"] == {"Ref": "PredictTopic"}
    assert sns_event["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}


def test_sqs_trigger_reports_batch_item_failures_and_the_queue_has_a_dlq(
        sam_template: dict[str, Any]) -> None:
    (event,) = sam_template["Resources"]["SqsFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "ReservedConcurrency"}}
    redrive = sam_template["Resources"]["WorkQueue"]["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]},
                       "maxReceiveCount": {"Ref": "QueueMaxReceiveCount"}}


def test_functions_share_concurrency_tracing_and_log_settings(
        sam_template: dict[str, Any]) -> None:
    globals_ = sam_template["Globals"]["Function"]
    assert globals_["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    assert globals_["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert globals_["Layers"] == {"Fn::If": ["UseAdotLayer", [{"Ref": "AdotLayerArn"}],
                                             {"Ref": "AWS::NoValue"}]}
    assert globals_["Runtime"] == {"Ref": "PythonRuntime"}
    log_groups = _resources_of_type(sam_template, "AWS::Logs::LogGroup")
    for function in HANDLERS:
        props = sam_template["Resources"][function]["Properties"]
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # Lambda's JSON log format: its formatter keeps the fields amlproxy adds to records
        # (amlproxy.observability.logs); the records are JSON lines in either format
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert "Tracing" not in props, f"{function} overrides the global Tracing"
        # the chunk workers' concurrency is their own knob (docs/scaling.md)
        assert props.get("ReservedConcurrentExecutions") == (
            {"Ref": "ChunkMaxConcurrency"} if function == "ChunkFunction" else None), function


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_functions_get_the_settings_their_handlers_read(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    resolver = resolver_for(sam_template, scenario)
    params = resolver.parameters
    tracing = params["Tracing"]
    callback = bool(params["CallbackUrl"])
    sagemaker = params["Backend"] == "sagemaker"
    idempotency = params["IdempotencyTable"] == "enabled"
    for function in HANDLERS:
        env = _environment(resolver, function)
        # Settings the handlers read: set when given, absent (not "") otherwise.
        optional = {
            "AMLPROXY_SAGEMAKER_ENDPOINT": params["SageMakerEndpointName"] if sagemaker else "",
            "AMLPROXY_AML_MODEL_ID": params["AmlModelId"] if not sagemaker else "",
            "AMLPROXY_AML_PREDICT_ENDPOINT": params["AmlPredictEndpoint"],
            "AMLPROXY_LABELS": params["Labels"],
            "AMLPROXY_DYNAMODB_TTL_DAYS": params["ResultsTtlDays"],
        }
        for name, value in optional.items():
            assert env.get(name, "") == value, (function, name)
            assert env.get(name) != "", f"{function}: {name} set to an empty string"
        assert env["AMLPROXY_BACKEND"] == params["Backend"]
        assert env["AMLPROXY_AML_DISCOVER_ENDPOINT"] == str(
            not sagemaker and not params["AmlPredictEndpoint"]).lower()
        assert env["AMLPROXY_DYNAMODB_TABLE"] == "amlproxy-test-ResultsTable"
        assert env["AMLPROXY_TRACING"] == tracing
        assert env.get("AWS_LAMBDA_EXEC_WRAPPER") == (
            "/opt/otel-instrument" if tracing == "otel" else None)
        assert env["AMLPROXY_LOG_LEVEL"] == params["LogLevel"]
        assert env["AMLPROXY_SCHEMA"] == params["Schema"]
        assert env["AMLPROXY_CONCURRENCY"] == params["BackendConcurrency"]
        assert env["AMLPROXY_METRICS_NAMESPACE"] == "amlproxy"
    s3_env = _environment(resolver, "S3Function")
    assert s3_env["AMLPROXY_OUTPUT_BUCKET"] == (params["OutputBucketName"]
                                                or params["InputBucketName"])
    assert (s3_env["AMLPROXY_INPUT_PREFIX"], s3_env["AMLPROXY_OUTPUT_PREFIX"],
            s3_env["AMLPROXY_REJECTS_PREFIX"]) == (
        params["InputPrefix"], params["OutputPrefix"], params["RejectsPrefix"])
    assert s3_env["AMLPROXY_SINKS"] == ("s3,dynamodb,callback" if callback else "s3,dynamodb")
    for function in ("S3Function", "SnsFunction", "SqsFunction", "ChunkFunction"):
        env = _environment(resolver, function)
        if function == "ChunkFunction":
            assert env["AMLPROXY_SINKS"] == s3_env["AMLPROXY_SINKS"]
            assert env["AMLPROXY_OUTPUT_BUCKET"] == s3_env["AMLPROXY_OUTPUT_BUCKET"]
        elif function != "S3Function":
            assert env["AMLPROXY_SINKS"] == ("dynamodb,callback" if callback else "dynamodb")
            # Results of messages: DynamoDB; the bucket is the loop guard's.
            assert env["AMLPROXY_OUTPUT_BUCKET"] == s3_env["AMLPROXY_OUTPUT_BUCKET"]
        assert env.get("AMLPROXY_CALLBACK_URL", "") == params["CallbackUrl"]
        assert env.get("AMLPROXY_CALLBACK_SECRET_ARN", "") == params["CallbackSecretArn"]
        # Idempotency-Key is read by the API trigger only: their outputs are keyed.
        assert not {"AMLPROXY_IDEMPOTENCY_TABLE", "AMLPROXY_IDEMPOTENCY_TTL_S"} & set(env)
        # The loop guard of S3 pointers needs the same prefixes as the S3 trigger.
        assert (env["AMLPROXY_INPUT_PREFIX"], env["AMLPROXY_OUTPUT_PREFIX"],
                env["AMLPROXY_REJECTS_PREFIX"], env["AMLPROXY_CHUNK_PREFIX"]) == (
            params["InputPrefix"], params["OutputPrefix"], params["RejectsPrefix"],
            params["ChunkPrefix"])
        assert "AMLPROXY_CHECKPOINT_PREFIX" not in env  # the checkpoint path is gone
    api_env = _environment(resolver, "ApiFunction")
    assert api_env["AMLPROXY_SINKS"] == "dynamodb"
    assert not {"AMLPROXY_CALLBACK_URL", "AMLPROXY_CALLBACK_SECRET_ARN"} & set(api_env)
    assert api_env["AMLPROXY_API_MAX_BODY_BYTES"] == params["ApiMaxBodyBytes"]
    assert api_env.get("AMLPROXY_IDEMPOTENCY_TABLE") == (
        "amlproxy-test-IdempotencyStore" if idempotency else None)
    assert api_env.get("AMLPROXY_IDEMPOTENCY_TTL_S") == (
        params["IdempotencyTtlSeconds"] if idempotency else None)
    assert resolver.resource_exists("IdempotencyStore") is idempotency
    outputs = {name for name, output in resolver.template["Outputs"].items()
               if "Condition" not in output or resolver.condition(output["Condition"])}
    assert ("IdempotencyTableName" in outputs) is idempotency


def test_the_idempotency_table_is_on_by_default(sam_template: dict[str, Any]) -> None:
    # The API's Idempotency-Key works only with the table: without it the header is ignored.
    assert sam_template["Parameters"]["IdempotencyTable"]["Default"] == "enabled"
    assert {scenario.get("IdempotencyTable", "enabled") for scenario in SCENARIOS.values()
            } == {"enabled", "disabled"}


# ------------------------------------------------------------------ S3 lifecycle
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_incomplete_multipart_uploads_of_the_s3_sink_are_aborted_after_a_day(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    resolver = resolver_for(sam_template, scenario)
    params = resolver.parameters
    separate = bool(params["OutputBucketName"])

    def rules(bucket: str) -> list[dict[str, Any]] | None:
        props = resolver.resolve(sam_template["Resources"][bucket]["Properties"])
        lifecycle = props.get("LifecycleConfiguration")
        return None if lifecycle is None else list(lifecycle["Rules"])

    abort = {"DaysAfterInitiation": 1}
    # chunk objects of an object never assembled: kept as long as the chunk DLQ keeps a
    # message that could be redriven
    dlq_days = int(sam_template["Resources"]["ChunkDeadLetterQueue"]["Properties"][
        "MessageRetentionPeriod"]) // 86400
    expire = {"Id": "ExpireChunks", "Status": "Enabled",
              "Prefix": params["ChunkPrefix"], "ExpirationInDays": dlq_days}
    assert dlq_days == 14
    if separate:
        assert resolver.resource_exists("OutputBucket")
        # A bucket of its own: every incomplete upload in it, whatever its prefix.
        assert rules("OutputBucket") == [{"Id": "AbortIncompleteMultipartUploads",
                                          "Status": "Enabled",
                                          "AbortIncompleteMultipartUpload": abort}, expire]
        assert rules("InputBucket") is None  # clients' uploads of inputs are theirs
    else:
        assert not resolver.resource_exists("OutputBucket")
        found = rules("InputBucket")
        assert found is not None and expire in found  # chunks of objects never assembled
        found = [r for r in found if r != expire]
        assert {(r["Prefix"], r["Status"], str(r["AbortIncompleteMultipartUpload"]))
                for r in found} == {(params["OutputPrefix"], "Enabled", str(abort)),
                                    (params["RejectsPrefix"], "Enabled", str(abort))}
        assert all(set(r) == {"Id", "Status", "Prefix", "AbortIncompleteMultipartUpload"}
                   for r in found), "a lifecycle rule that does more than abort uploads"
        assert not any(params["InputPrefix"].startswith(r["Prefix"]) for r in [*found, expire])


# ---------------------------------------------------------------------------- API
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_api_uses_the_chosen_auth_on_both_routes(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    resolver = resolver_for(sam_template, scenario)
    api_key = resolver.parameters["ApiAuth"] == "API_KEY"
    body = resolver.resolve(sam_template["Resources"]["PredictApi"]["Properties"]["DefinitionBody"])
    routes = {(path, method) for path, item in body["paths"].items() for method in item}
    assert routes == {("/predict", "post"), ("/schema", "get"), ("/openapi.json", "get")}
    for path, item in body["paths"].items():
        for operation in item.values():
            assert operation["security"] == [{"api_key": []} if api_key else {"sigv4": []}], path
            assert operation["x-amazon-apigateway-integration"]["uri"].endswith(
                ":function:amlproxy-test-ApiFunction:live/invocations")  # the alias
    for name in ("ApiUsagePlan", "ApiKey", "ApiUsagePlanKey"):
        assert resolver.resource_exists(name) is api_key, name


def test_api_stage_is_throttled_and_invocation_is_limited_to_the_two_routes(
        sam_template: dict[str, Any], resolver_for: ResolverFor) -> None:
    props = sam_template["Resources"]["PredictApi"]["Properties"]
    (settings,) = props["MethodSettings"]
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    resolver = resolver_for(sam_template, "sagemaker")
    permissions = _resources_of_type(sam_template, "AWS::Lambda::Permission")
    source_arns = {resolver.resolve(p["Properties"]["SourceArn"]) for p in permissions.values()}
    api = "arn:aws:execute-api:us-east-1:123456789012:amlproxy-test-PredictApi"
    assert source_arns == {f"{api}/*/POST/predict", f"{api}/*/GET/schema",
                           f"{api}/*/GET/openapi.json"}


def test_the_api_definition_is_the_generated_one(sam_template: dict[str, Any]) -> None:
    """The template's DefinitionBody is what the function's own OpenAPI parts give for API
    Gateway (run ``python -m amlproxy.triggers._openapi_gateway`` after changing them)."""
    from amlproxy.triggers._openapi_gateway import api_gateway_definition

    body = sam_template["Resources"]["PredictApi"]["Properties"]["DefinitionBody"]
    assert body == api_gateway_definition()
    assert body["openapi"].startswith("3.0")
    schemas = body["components"]["schemas"]
    assert all(name.isalnum() for name in schemas)  # API Gateway model names

    def keywords(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keywords(v)}
        if isinstance(node, list):
            return {k for v in node for k in keywords(v)}
        return set()

    assert not keywords(schemas) & {"anyOf", "oneOf", "additionalProperties", "examples",
                                    "example", "exclusiveMinimum", "discriminator", "const"}
    assert not any(isinstance(s.get("type"), list) for s in schemas.values())


def test_the_example_samconfig_names_valid_consistent_parameters(
        sam_template: dict[str, Any]) -> None:
    import tomllib

    config = tomllib.loads((TEMPLATE_PATH.parent / "samconfig.example.toml").read_text("utf-8"))
    deploy = config["default"]["deploy"]["parameters"]
    overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert _broken_rules(sam_template, overrides) == set()  # also validates every value


@pytest.mark.parametrize("runtime", ["python3.12", "python3.13"])
def test_snapstart_is_an_option_on_published_versions_of_a_recent_python(
        sam_template: dict[str, Any], resolver_for: ResolverFor, runtime: str) -> None:
    parameters = sam_template["Parameters"]
    assert parameters["SnapStart"]["Default"] == "disabled"
    assert parameters["PythonRuntime"]["AllowedValues"] == ["python3.11", "python3.12",
                                                            "python3.13"]
    globals_ = sam_template["Globals"]["Function"]
    assert globals_["AutoPublishAlias"] == "live"
    on = {**SCENARIOS["sagemaker"], "SnapStart": "enabled", "PythonRuntime": runtime}
    assert _broken_rules(sam_template, on) == set()
    for scenario, apply_on in ((on, "PublishedVersions"), (SCENARIOS["sagemaker"], "None")):
        resolver = StackResolver(sam_template, scenario)
        assert resolver.resolve(globals_["SnapStart"]) == {"ApplyOn": apply_on}
        assert resolver.resolve(globals_["Runtime"]) == scenario.get("PythonRuntime",
                                                                     "python3.11")


def test_the_api_invokes_the_live_alias(sam_template: dict[str, Any]) -> None:
    resources = sam_template["Resources"]
    permissions = _resources_of_type(sam_template, "AWS::Lambda::Permission")
    assert {p["Properties"]["FunctionName"]["Ref"] for p in permissions.values()
            if p["Properties"]["Principal"] == "apigateway.amazonaws.com"} == {
        "ApiFunctionAliaslive"}
    paths = resources["PredictApi"]["Properties"]["DefinitionBody"]["paths"]
    for route in (paths["/predict"]["post"], paths["/schema"]["get"]):
        uri = route["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        assert "${ApiFunctionAliaslive}/invocations" in uri


# Read by the Lambda service itself, not by code in the package: the runtime's bootstrap
# runs AWS_LAMBDA_EXEC_WRAPPER (the ADOT layer's /opt/otel-instrument) around the handler.
LAMBDA_SERVICE_VARIABLES = {"AWS_LAMBDA_EXEC_WRAPPER": "the Lambda runtime (wrapper scripts)"}


# The settings of issue 13 that /work/notes/CHUNKS_CONTRACT.md names and branch `chunks`
# adds to amlproxy/settings.py (with amlproxy/chunks/). In a tree without that package
# they count as read; with it, they must be settings like any other.
CHUNK_CONTRACT_VARIABLES = frozenset({
    "AMLPROXY_CHUNK_PREFIX", "AMLPROXY_CHUNK_QUEUE_URL", "AMLPROXY_CHUNK_TABLE",
    "AMLPROXY_CHUNK_BYTES", "AMLPROXY_FUNCTION_TIMEOUT_S", "AMLPROXY_COMPLETION_TOPIC_ARN",
    "AMLPROXY_AML_MAX_RPS", "AMLPROXY_CHUNK_THROUGHPUT_BPS"})


def _chunks_merged() -> bool:
    import importlib.util

    return importlib.util.find_spec("amlproxy.chunks") is not None


def _settings_variables() -> set[str]:
    from amlproxy.settings import Settings, env_name

    return {env_name(field) for field in Settings.fields}


def _variable_readers() -> dict[str, str]:
    """Every environment variable something reads, with who: amlproxy's settings, and the
    names that appear in the source of amlproxy or of an installed distribution."""
    readers = dict.fromkeys(_settings_variables(), "amlproxy.settings")
    pending = {} if _chunks_merged() else dict.fromkeys(
        CHUNK_CONTRACT_VARIABLES - set(readers), "issue 13 contract (branch chunks)")
    return {**pending, **readers, **LAMBDA_SERVICE_VARIABLES}


@pytest.mark.xfail(not _chunks_merged(), reason="amlproxy/settings.py of branch chunks "
                   "adds them", strict=True)
def test_the_contract_chunk_settings_are_settings() -> None:
    assert _settings_variables() >= CHUNK_CONTRACT_VARIABLES
    assert "AMLPROXY_CHECKPOINT_PREFIX" not in _settings_variables()


def _read_by_source(name: str) -> str | None:
    """The first module (amlproxy's, then an installed package's) whose source names
    ``name`` as a string literal."""
    import importlib.util
    from pathlib import Path

    roots = [Path(importlib.util.find_spec("amlproxy").origin).parent]  # type: ignore[arg-type]
    roots += [Path(importlib.util.find_spec(p).origin).parent  # type: ignore[arg-type]
              for p in ("pydantic", "boto3", "botocore")]
    for root in roots:
        for source in root.rglob("*.py"):
            text = source.read_text(errors="replace")
            if f'"{name}"' in text or f"'{name}'" in text:
                return str(source)
    return None


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_variable_the_template_sets_is_read_by_the_code(
    sam_template: dict[str, Any], resolver_for: ResolverFor, scenario: str
) -> None:
    """No dead variables: each one is a setting of amlproxy or is read by a library the
    functions run (pydantic reads PYDANTIC_DISABLE_PLUGINS)."""
    resolver = resolver_for(sam_template, scenario)
    readers = _variable_readers()
    for function in HANDLERS:
        for name in _environment(resolver, function):
            assert name in readers or _read_by_source(name), f"{function}: nothing reads {name}"
