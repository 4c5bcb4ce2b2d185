"""Flat views of the function roles' IAM policies, for exact comparisons in tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tests.template.cfn_resolve import StackResolver

Grant = tuple[str, str]
"""One (action, resource) pair an Allow statement grants."""

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")

# The only actions allowed on Resource "*": X-Ray's write actions have no resource-level
# permissions (their resource type list in the IAM service reference is empty).
WILDCARD_RESOURCE_ALLOW_LIST = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})


def function_roles(template: Mapping[str, Any]) -> dict[str, str]:
    """Function logical id -> logical id of the role it runs as (``Role: !GetAtt X.Arn``)."""
    roles: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in FUNCTION_TYPES:
            role = resource["Properties"]["Role"]
            if not (isinstance(role, dict) and list(role) == ["Fn::GetAtt"]):
                raise AssertionError(f"{logical_id}: Role is not a GetAtt of a role: {role!r}")
            target, attribute = role["Fn::GetAtt"]
            if attribute != "Arn":
                raise AssertionError(f"{logical_id}: Role is {target}.{attribute}")
            roles[logical_id] = target
    return roles


def role_documents(resolver: StackResolver, role_id: str) -> list[dict[str, Any]]:
    """The resolved inline policy documents of a role (which must have no managed ones)."""
    properties = resolver.resolve(resolver.template["Resources"][role_id]["Properties"])
    if properties.get("ManagedPolicyArns"):
        raise AssertionError(f"{role_id} has managed policies: {properties['ManagedPolicyArns']}")
    return [policy["PolicyDocument"] for policy in properties.get("Policies", [])]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def grants(documents: Iterable[Mapping[str, Any]]) -> set[Grant]:
    """Every (action, resource) pair allowed. A statement's condition, of the one form the
    template uses (``StringLike`` on ``s3:prefix``), is written after the resource:
    ``"arn:aws:s3:::bucket when s3:prefix like checkpoints/*"``. Refuses constructs this
    view cannot flatten exactly (Deny, NotAction, NotResource, other conditions)."""
    allowed: set[Grant] = set()
    for document in documents:
        for statement in _as_list_of_statements(document["Statement"]):
            unexpected = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
            if unexpected or statement["Effect"] != "Allow":
                raise AssertionError(f"statement not flattenable: {statement}")
            when = _condition(statement.get("Condition"))
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    allowed.add((action, resource + when))
    return allowed


def _condition(condition: Mapping[str, Any] | None) -> str:
    if condition is None:
        return ""
    if list(condition) != ["StringLike"] or list(condition["StringLike"]) != ["s3:prefix"]:
        raise AssertionError(f"condition not flattenable: {condition}")
    values = _as_list(condition["StringLike"]["s3:prefix"])
    return f" when s3:prefix like {' or '.join(sorted(values))}"


def _as_list_of_statements(value: Any) -> list[Mapping[str, Any]]:
    return [value] if isinstance(value, dict) else list(value)


def role_grants(resolver: StackResolver, role_id: str) -> set[Grant]:
    """``grants`` of one role's inline policies."""
    return grants(role_documents(resolver, role_id))
