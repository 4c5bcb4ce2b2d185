"""The template's IdempotencyStore and its grant, against what the API's store really does.

amlproxy/triggers/_idempotency.py is the only user of the table: the API role must allow
exactly the DynamoDB operations that module calls, and a table created from the template's
own key schema and TTL setting (in moto) must work with it.
"""

from __future__ import annotations

import ast
import inspect
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from amlproxy.triggers import _idempotency
from amlproxy.triggers._idempotency import IdempotencyStore
from tests.template.cfn_resolve import StackResolver
from tests.template.iam_grants import function_roles, role_grants

ResolverFor = Callable[[Mapping[str, Any], str], StackResolver]
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/amlproxy-test-IdempotencyStore"


def _dynamodb_operations_called() -> set[str]:
    """``dynamodb:<Operation>`` for every ``self._client.<operation>(...)`` in the module."""
    tree = ast.parse(inspect.getsource(_idempotency))
    calls = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "_client"):
            operation = "".join(part.title() for part in node.func.attr.split("_"))
            calls.add(f"dynamodb:{operation}")
    return calls


def test_the_scanner_sees_the_store_calls() -> None:
    # Guards the AST scan itself: if the module's calls were spelt differently, the
    # comparison below would compare two empty sets.
    source = inspect.getsource(_idempotency)
    spelled = {m for m in re.findall(r"self\._client\.([a-z_]+)\(", source)}
    assert spelled and len(_dynamodb_operations_called()) == len(spelled)


def test_the_api_role_allows_exactly_the_operations_of_the_store(
        sam_template: dict[str, Any], resolver_for: ResolverFor) -> None:
    resolver = resolver_for(sam_template, "sagemaker")  # the defaults: the table is on
    roles = function_roles(sam_template)
    for function, role in roles.items():
        on_table = {action for action, resource in role_grants(resolver, role)
                    if resource == TABLE_ARN}
        if function == "ApiFunction":
            assert on_table == _dynamodb_operations_called() == {
                "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
        else:
            assert on_table == set(), f"{function} does not use the idempotency table"


def test_a_table_made_from_the_template_works_with_the_store(
        sam_template: dict[str, Any], resolver_for: ResolverFor,
        dynamodb_client: Any) -> None:
    resolver = resolver_for(sam_template, "sagemaker")
    props = resolver.resolve(sam_template["Resources"]["IdempotencyStore"]["Properties"])
    table = resolver.physical_name("IdempotencyStore")
    dynamodb_client.create_table(
        TableName=table, BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"])
    ttl = props["TimeToLiveSpecification"]
    dynamodb_client.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    assert ttl["Enabled"] is True

    store = IdempotencyStore(table, dynamodb_client, ttl_s=600)
    assert store.claim("api#k1", "fp-1", hold_s=30).state == "claimed"
    (item,) = dynamodb_client.scan(TableName=table)["Items"]
    # The TTL attribute the template names is the one the store writes, in epoch seconds.
    expires = int(item[ttl["AttributeName"]]["N"])
    assert time.time() + 500 < expires < time.time() + 700
    assert store.claim("api#k1", "fp-1", hold_s=30).state == "in_progress"
    answer = {"statusCode": 200, "headers": {}, "body": "{}"}
    assert store.complete("api#k1", "fp-1", answer)
    replay = store.claim("api#k1", "fp-1", hold_s=30)
    assert (replay.state, replay.response) == ("replay", answer)
    assert store.claim("api#k1", "fp-other", hold_s=30).state == "mismatch"
    store.release("api#k1")
    assert store.claim("api#k1", "fp-other", hold_s=30).state == "claimed"
