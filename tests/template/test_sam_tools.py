"""The SAM template through the real tools: aws-sam-translator, cfn-lint, checkov, parliament.

Slow: the tools live in .venv-tools (sam/tools/install.sh installs it on first use, about
two minutes on a fresh machine; then the whole module takes about 30 s). Run with
``pytest -m slow tests/template``; CI should set AMLPROXY_REQUIRE_SAM_TOOLS=1 so that a
failed install fails instead of skipping.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
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
from tests.template.scenarios import ACCOUNT, REGION, SCENARIOS, STACK
from tests.template.tools import TEMPLATE_PATH, SamTools

pytestmark = pytest.mark.slow

# checkov's IAM checks, plus the Lambda ones that concern the functions' blast radius.
CHECKOV_IAM_CHECKS = [
    "CKV_AWS_40",   # IAM policies attached only to groups or roles
    "CKV_AWS_60",   # role assumable only by specific services or principals
    "CKV_AWS_61",   # no assume-role permission across all services
    "CKV_AWS_62",   # no "*:*" administrative policy
    "CKV_AWS_63",   # no "*" action
    "CKV_AWS_107",  # no credentials exposure
    "CKV_AWS_108",  # no data exfiltration
    "CKV_AWS_109",  # no permissions management without constraints
    "CKV_AWS_110",  # no privilege escalation
    "CKV_AWS_111",  # no write access without constraints
]
CHECKOV_LAMBDA_CHECKS = [
    "CKV_AWS_45",   # no hard-coded secrets in the environment
    "CKV_AWS_115",  # function-level concurrency limit
    "CKV_AWS_116",  # dead-letter queue
    "CKV_AWS_364",  # service permissions limited by SourceArn or SourceAccount
]
FUNCTIONS = ("S3Function", "SnsFunction", "SqsFunction", "ChunkFunction", "ApiFunction")
ROLES = tuple(f"{function}Role" for function in FUNCTIONS)
# The documented suppressions (Metadata.checkov.skip in sam/template.yaml), and nothing else.
EXPECTED_SKIPS = {("CKV_AWS_116", f"AWS::Lambda::Function.{function}") for function in FUNCTIONS}

ResolverFor = Callable[[Mapping[str, Any], str], StackResolver]


def _resolver(template: Mapping[str, Any], scenario: str) -> StackResolver:
    return StackResolver(template, SCENARIOS[scenario], stack_name=STACK, region=REGION,
                         account=ACCOUNT)


def _resolved_stack(template: Mapping[str, Any], scenario: str) -> dict[str, Any]:
    """The transformed template as CloudFormation would deploy it for a scenario: only the
    resources whose condition holds, every intrinsic function worked out."""
    resolver = _resolver(template, scenario)
    resources = {}
    for logical_id, resource in template["Resources"].items():
        if resolver.resource_exists(logical_id):
            body = {k: v for k, v in resource.items() if k != "Condition"}
            resources[logical_id] = resolver.resolve(body)
    return {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return path


# -------------------------------------------------------------- the transform
def test_transform_keeps_our_roles_and_adds_no_iam_of_its_own(
        sam_template: dict[str, Any], transformed_template: dict[str, Any]) -> None:
    resources = transformed_template["Resources"]
    iam = {k for k, v in resources.items() if v["Type"].startswith("AWS::IAM::")}
    assert iam == set(ROLES)
    for role in ROLES:
        assert resources[role] == sam_template["Resources"][role], f"SAM changed {role}"
    assert function_roles(transformed_template) == {f: f"{f}Role" for f in FUNCTIONS}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Permission":
            props = resource["Properties"]
            assert "SourceArn" in props or "SourceAccount" in props, logical_id


@pytest.mark.parametrize("scenario", sorted(EXPECTED_GRANTS))
def test_transformed_roles_grant_exactly_the_expected_set(
        transformed_template: dict[str, Any], scenario: str) -> None:
    resolver = _resolver(transformed_template, scenario)
    for function, role in function_roles(transformed_template).items():
        assert role_grants(resolver, role) == EXPECTED_GRANTS[scenario][function]


def test_transform_turns_the_triggers_into_the_expected_resources(
        transformed_template: dict[str, Any]) -> None:
    resources = transformed_template["Resources"]
    bucket = resources["InputBucket"]["Properties"]["NotificationConfiguration"]
    # S3 -> IngestQueue -> S3Function: no Lambda notification, no permission for S3
    assert set(bucket) == {"QueueConfigurations"}
    (notification,) = bucket["QueueConfigurations"]
    assert notification["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert not [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"
                and r["Properties"]["Principal"] == "s3.amazonaws.com"]
    # every trigger invokes the published "live" alias (SnapStart applies to versions only)
    (subscription,) = [r["Properties"] for r in resources.values()
                       if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription["Endpoint"] == {"Ref": "SnsFunctionAliaslive"}
    for function in FUNCTIONS:
        alias = resources[f"{function}Aliaslive"]
        assert alias["Type"] == "AWS::Lambda::Alias"
        assert resources[function]["Properties"]["SnapStart"] == {"ApplyOn": {
            "Fn::If": ["SnapStartOn", "PublishedVersions", "None"]}}
    assert notification["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": {"Ref": "InputPrefix"}}]
    mappings = {m["EventSourceArn"]["Fn::GetAtt"][0]: m for m in (
        r["Properties"] for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping")}
    assert {queue: m["FunctionName"] for queue, m in mappings.items()} == {
        "IngestQueue": {"Ref": "S3FunctionAliaslive"},
        "ChunkQueue": {"Ref": "ChunkFunctionAliaslive"},
        "WorkQueue": {"Ref": "SqsFunctionAliaslive"}}
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
               for m in mappings.values())
    assert mappings["ChunkQueue"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "ChunkMaxConcurrency"}}
    stages = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    (stage,) = stages
    assert stage["MethodSettings"][0]["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}


# ------------------------------------------------------------------ cfn-lint
def test_cfn_lint_finds_nothing_in_the_sam_template_or_its_transform(
        sam_tools: SamTools, transformed_template: dict[str, Any], tmp_path: Path) -> None:
    transformed = _write(tmp_path / "transformed.json", transformed_template)
    # Control, in the same run: a copy with an obsolete runtime must be reported.
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE_PATH.read_text("utf-8").replace(
        "Handler: amlproxy.triggers.api.handler",
        "Handler: amlproxy.triggers.api.handler\n      Runtime: python2.7"), encoding="utf-8")
    code, output = sam_tools.cfn_lint(TEMPLATE_PATH, transformed, broken)
    assert code != 0
    findings = [line for line in output.splitlines() if line.strip()]
    assert findings, "cfn-lint reported nothing, not even for the broken control"
    assert all(line.startswith(str(broken)) for line in findings), "\n".join(findings)
    assert any("python2.7" in line for line in findings)


# -------------------------------------------------------------------- checkov
@pytest.fixture(scope="module")
def checkov_results(sam_tools: SamTools, transformed_template: dict[str, Any],
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One checkov run over: the transformed template, its resolved form per scenario, and two
    controls (the 'sagemaker' stack without the suppressions, and that stack with one role
    widened to s3:PutObject on "*").
    Returns file name -> {"passed"/"failed"/"skipped": {(check id, resource)}, ...}."""
    directory = tmp_path_factory.mktemp("checkov")
    _write(directory / "transformed.json", transformed_template)
    for scenario in SCENARIOS:
        _write(directory / f"resolved-{scenario}.json",
               _resolved_stack(transformed_template, scenario))
    control = _resolved_stack(transformed_template, "sagemaker")
    for resource in control["Resources"].values():
        resource.pop("Metadata", None)
    _write(directory / "control-unsuppressed.json", control)
    widened = copy.deepcopy(control)
    (policy,) = widened["Resources"]["ApiFunctionRole"]["Properties"]["Policies"]
    policy["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})
    _write(directory / "control-widened.json", widened)

    report = sam_tools.checkov(directory, CHECKOV_IAM_CHECKS + CHECKOV_LAMBDA_CHECKS)
    assert report["parsing_errors"] == []
    by_file: dict[str, dict[str, Any]] = {}
    for outcome in ("passed", "failed", "skipped"):
        for result in report[outcome]:
            name = Path(result["file_path"]).name
            entry = by_file.setdefault(name, {"passed": set(), "failed": set(), "skipped": set()})
            entry[outcome].add((result["check_id"], result["resource"]))
    assert set(by_file) == {p.name for p in directory.iterdir()}
    return by_file


def test_checkov_iam_and_lambda_checks_pass_with_only_the_documented_suppressions(
        checkov_results: dict[str, dict[str, Any]]) -> None:
    for name, results in checkov_results.items():
        if name.startswith("control"):
            continue
        assert results["failed"] == set(), name
        assert results["skipped"] == EXPECTED_SKIPS, name
    for name in (f"resolved-{scenario}.json" for scenario in SCENARIOS):
        checked = {check for check, _ in checkov_results[name]["passed"]}
        # Every IAM check really looked at the roles, but CKV_AWS_40, which inspects only
        # AWS::IAM::Policy/ManagedPolicy resources (the template has none).
        assert set(CHECKOV_IAM_CHECKS) - {"CKV_AWS_40"} <= checked, name
        assert {"CKV_AWS_115", "CKV_AWS_364", "CKV_AWS_45"} <= checked, name


def test_checkov_needs_only_the_dlq_suppressions_and_does_catch_a_widened_role(
        checkov_results: dict[str, dict[str, Any]]) -> None:
    # Without Metadata.checkov.skip, the DLQ check fails on the five functions and nothing
    # else fails: CKV_AWS_111 accepts the X-Ray "*" (those actions have no resource-level
    # permissions), so the template carries no IAM suppression at all.
    unsuppressed = checkov_results["control-unsuppressed.json"]
    assert unsuppressed["failed"] == EXPECTED_SKIPS
    assert {("CKV_AWS_111", f"AWS::IAM::Role.{role}") for role in ROLES} <= unsuppressed["passed"]
    widened = checkov_results["control-widened.json"]["failed"] - EXPECTED_SKIPS
    assert ("CKV_AWS_111", "AWS::IAM::Role.ApiFunctionRole") in widened
    assert {resource for _, resource in widened} == {"AWS::IAM::Role.ApiFunctionRole"}


# ----------------------------------------------------------------- parliament
def test_parliament_finds_nothing_in_any_role_policy(
        sam_tools: SamTools, transformed_template: dict[str, Any], tmp_path: Path) -> None:
    policies = {}
    for scenario in SCENARIOS:
        resolver = _resolver(transformed_template, scenario)
        for role in ROLES:
            for index, document in enumerate(role_documents(resolver, role)):
                policies[f"{scenario}/{role}/{index}"] = document
    assert len(policies) == len(SCENARIOS) * len(ROLES)
    findings = sam_tools.parliament(policies, tmp_path)
    assert set(findings) == set(policies)
    assert {name: found for name, found in findings.items() if found} == {}


def test_parliament_does_report_a_bad_policy(sam_tools: SamTools, tmp_path: Path) -> None:
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"},
        {"Effect": "Allow", "Action": "s3:GetObjectt", "Resource": "arn:aws:s3:::bucket/*"},
    ]}
    issues = {f["issue"] for f in sam_tools.parliament({"bad": bad}, tmp_path)["bad"]}
    assert {"RESOURCE_MISMATCH", "UNKNOWN_ACTION"} <= issues


def test_wildcard_allow_list_is_exactly_the_actions_without_resource_level_permissions(
        sam_tools: SamTools, sam_template: dict[str, Any]) -> None:
    actions: set[str] = set()
    for scenario in SCENARIOS:
        resolver = _resolver(sam_template, scenario)
        for role in ROLES:
            actions |= {action for action, _ in role_grants(resolver, role)}
    resource_types = sam_tools.action_resource_types(sorted(actions))
    unscopable = {action for action, types in resource_types.items() if not types}
    assert unscopable == set(WILDCARD_RESOURCE_ALLOW_LIST)
