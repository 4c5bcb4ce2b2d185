"""The small CloudFormation evaluator the template tests rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.template.cfn_resolve import StackResolver, load_template

TEMPLATE = """
Parameters:
  Name: {Type: String, Default: ""}
  Mode: {Type: String, Default: a, AllowedValues: [a, b]}
  Prefix: {Type: String, Default: in/, AllowedPattern: "^([a-z]+/)+$"}
  Required: {Type: String}
Conditions:
  HasName: !Not [!Equals [!Ref Name, ""]]
  IsB: !Equals [!Ref Mode, b]
  Both: !And [!Condition HasName, !Condition IsB]
  Either: !Or [!Condition HasName, !Condition IsB]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !If [HasName, !Ref Name, !Ref AWS::NoValue]
  Queue: {Type: AWS::SQS::Queue}
  Group:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/aws/lambda/${AWS::StackName}/x"}
  OnlyForB: {Type: AWS::SNS::Topic, Condition: IsB}
  Doc:
    Type: AWS::IAM::Role
    Properties:
      Statements:
        - !Sub "arn:${AWS::Partition}:s3:::${Required}/${Prefix}*"
        - !Sub ["${Q}|${Queue.Arn}|${!Literal}", {Q: !GetAtt [Queue, QueueName]}]
        - !If [IsB, only-b, !Ref AWS::NoValue]
        - !GetAtt Table.Arn
        - !GetAtt Group.Arn
        - !Ref Queue
        - !Join ["-", [!Ref Mode, !Select [1, !Split [",", "x,y,z"]]]]
"""


@pytest.fixture
def template(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "t.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return load_template(path)


def _statements(resolver: StackResolver) -> list[Any]:
    props = resolver.resolve(resolver.template["Resources"]["Doc"]["Properties"])
    statements: list[Any] = props["Statements"]
    return statements


def test_defaults_conditions_and_intrinsics_resolve_like_cloudformation(
        template: dict[str, Any]) -> None:
    resolver = StackResolver(template, {"Required": "bkt"}, stack_name="st")
    assert resolver.parameters == {"Name": "", "Mode": "a", "Prefix": "in/", "Required": "bkt"}
    assert not resolver.condition("HasName")
    assert not resolver.condition("Both") and not resolver.condition("Either")
    assert not resolver.resource_exists("OnlyForB") and resolver.resource_exists("Table")
    assert _statements(resolver) == [
        "arn:aws:s3:::bkt/in/*",
        "st-Queue|arn:aws:sqs:us-east-1:123456789012:st-Queue|${Literal}",
        "arn:aws:dynamodb:us-east-1:123456789012:table/st-Table",
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/st/x:*",
        "https://sqs.us-east-1.amazonaws.com/123456789012/st-Queue",
        "a-y",
    ]


def test_the_other_branch_of_every_condition(template: dict[str, Any]) -> None:
    resolver = StackResolver(template, {"Required": "b", "Name": "named", "Mode": "b"},
                             region="eu-west-1", account="210987654321", partition="aws-cn")
    assert resolver.condition("Both") and resolver.condition("Either")
    assert resolver.resource_exists("OnlyForB")
    statements = _statements(resolver)
    assert statements[0] == "arn:aws-cn:s3:::b/in/*"
    assert "only-b" in statements
    assert "arn:aws-cn:dynamodb:eu-west-1:210987654321:table/named" in statements


@pytest.mark.parametrize("params", [
    {},  # Required has no default
    {"Required": "x", "Mode": "c"},  # not an allowed value
    {"Required": "x", "Prefix": "in/*"},  # does not match the allowed pattern
    {"Required": "x", "Unknown": "y"},
])
def test_bad_parameter_values_are_refused(template: dict[str, Any],
                                          params: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        StackResolver(template, params)


def test_unknown_references_and_functions_are_errors_not_guesses(
        template: dict[str, Any]) -> None:
    resolver = StackResolver(template, {"Required": "x"})
    with pytest.raises(ValueError, match="unknown name"):
        resolver.resolve({"Ref": "Nope"})
    with pytest.raises(ValueError, match="unsupported function"):
        resolver.resolve({"Fn::ImportValue": "x"})
    with pytest.raises(ValueError, match="unsupported attribute"):
        resolver.resolve({"Fn::GetAtt": ["Table", "StreamArn"]})


LOOKUPS = """
Parameters:
  Workers: {Type: Number, Default: 3, MinValue: 2, MaxValue: 4}
  Mode: {Type: String, Default: a}
Mappings:
  Rates: {"2": {Rps: 100}, "3": {Rps: 66}}
Rules:
  AtMostThree:
    RuleCondition: !Equals [!Ref Mode, a]
    Assertions:
      - Assert: !Contains [["2", "3"], !Ref Workers]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties: {Rate: !FindInMap [Rates, !Ref Workers, Rps]}
"""


def test_find_in_map_contains_and_number_bounds(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(LOOKUPS)
    template = load_template(path)
    resolver = StackResolver(template, {})
    queue = template["Resources"]["Queue"]["Properties"]
    assert resolver.resolve(queue) == {"Rate": 66}
    rule = template["Rules"]["AtMostThree"]["Assertions"][0]["Assert"]
    assert resolver.evaluate_condition(rule) is True
    four = StackResolver(template, {"Workers": "4"})
    assert four.evaluate_condition(rule) is False
    with pytest.raises(ValueError, match=r"Fn::FindInMap: no Rates\.4\.Rps"):
        four.resolve(queue)
    for value, message in (("1", "below its MinValue"), ("5", "above its MaxValue"),
                           ("x", "not a number")):
        with pytest.raises(ValueError, match=message):
            StackResolver(template, {"Workers": value})
