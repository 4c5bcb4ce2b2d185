"""A small CloudFormation evaluator: parameters, conditions, intrinsics.

The local stack (:mod:`amlproxy.local.stack`) builds its resources and functions from
``sam/template.yaml`` with it, and the template tests check the template with it.

It reads a template (YAML with the short ``!Ref``/``!Sub``... tags, or JSON), takes
parameter values, evaluates the ``Conditions`` and turns any node into plain JSON with
``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::If``, ``Fn::Join``, ``Fn::Select``,
``Fn::Split``, ``Fn::FindInMap`` and ``AWS::NoValue`` worked out, the way CloudFormation
would for a stack named ``stack_name`` in ``region``/``account``. Physical names of
resources without an explicit name are made up as ``<stack>-<LogicalId>``; ARNs follow
each service's format.

Only what the amlproxy template uses is supported; anything else raises ``ValueError``
rather than guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def load_template(path: Path) -> dict[str, Any]:
    """A template file (SAM/CloudFormation YAML with short tags, or JSON) as a dict."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        loaded: dict[str, Any] = json.loads(text)
    else:
        from amlproxy.local.cfn_yaml import load_yaml  # PyYAML only when a YAML file is read

        loaded = load_yaml(text)
    return loaded


def _check_number(name: str, value: str, spec: Mapping[str, Any]) -> None:
    """A ``Number`` parameter's MinValue and MaxValue, as CloudFormation checks them."""
    if spec.get("Type") != "Number":
        return
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if "MinValue" in spec and number < float(spec["MinValue"]):
        raise ValueError(f"{name}={value} is below its MinValue {spec['MinValue']}")
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        raise ValueError(f"{name}={value} is above its MaxValue {spec['MaxValue']}")


class StackResolver:
    """Evaluates one template for one set of parameter values."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        *,
        stack_name: str = "amlproxy-test",
        region: str = "us-east-1",
        account: str = "123456789012",
        partition: str = "aws",
    ) -> None:
        self.template = template
        self.stack_name, self.region, self.account, self.partition = (
            stack_name, region, account, partition)
        self.parameters = self._parameter_values(parameters or {})
        self._conditions: dict[str, bool] = {}

    # ------------------------------------------------------------ parameters
    def _parameter_values(self, given: Mapping[str, str]) -> dict[str, str]:
        declared: Mapping[str, Any] = self.template.get("Parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise ValueError(f"unknown parameters: {sorted(unknown)}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in given:
                value = str(given[name])
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise ValueError(f"parameter {name} has no default and no value")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise ValueError(f"{name}={value!r} does not match {pattern}")
            _check_number(name, value, spec)
            values[name] = value
        return values

    # ------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        """The value of the named condition of the template."""
        if name not in self._conditions:
            self._conditions[name] = self.evaluate_condition(self.template["Conditions"][name])
        return self._conditions[name]

    def evaluate_condition(self, node: Any) -> bool:
        """The truth of a condition expression (Fn::Equals/Not/And/Or, Condition; and
        Fn::Contains, of rules)."""
        if not isinstance(node, dict) or len(node) != 1:
            raise ValueError(f"not a condition: {node!r}")
        ((function, args),) = node.items()
        if function == "Condition":
            return self.condition(args)
        if function == "Fn::Equals":
            left, right = (self.resolve(arg) for arg in args)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.evaluate_condition(args[0])
        if function == "Fn::And":
            return all(self.evaluate_condition(arg) for arg in args)
        if function == "Fn::Or":
            return any(self.evaluate_condition(arg) for arg in args)
        if function == "Fn::Contains":
            values, value = (self.resolve(arg) for arg in args)
            return str(value) in [str(v) for v in values]
        raise ValueError(f"unsupported condition function {function}")

    def resource_exists(self, logical_id: str) -> bool:
        """False when the resource has a ``Condition`` that is false."""
        resource = self.template["Resources"][logical_id]
        return "Condition" not in resource or self.condition(resource["Condition"])

    # ------------------------------------------------------------- resolving
    def resolve(self, node: Any) -> Any:
        """``node`` with every intrinsic function replaced by its value."""
        resolved = self._resolve(node)
        if resolved is _NO_VALUE:
            raise ValueError("the node as a whole is AWS::NoValue")
        return resolved

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = (self._resolve(item) for item in node)
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, args),) = node.items()
            if key == "Ref":
                return self.ref(args)
            if key.startswith("Fn::"):
                return self._function(key, args)
        resolved = {key: self._resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _function(self, function: str, args: Any) -> Any:
        if function == "Fn::If":
            name, when_true, when_false = args
            return self._resolve(when_true if self.condition(name) else when_false)
        if function == "Fn::Sub":
            return self._sub(args)
        if function == "Fn::GetAtt":
            logical_id, attribute = args.split(".", 1) if isinstance(args, str) else args
            return self.get_att(logical_id, attribute)
        if function == "Fn::Join":
            delimiter, values = args
            return delimiter.join(str(value) for value in self.resolve(values))
        if function == "Fn::Select":
            index, values = args
            return self.resolve(values)[int(self.resolve(index))]
        if function == "Fn::Split":
            delimiter, value = args
            return str(self.resolve(value)).split(delimiter)
        if function == "Fn::FindInMap":
            name, key, attribute = (str(self.resolve(arg)) for arg in args)
            try:
                return self.template["Mappings"][name][key][attribute]
            except KeyError:
                raise ValueError(f"Fn::FindInMap: no {name}.{key}.{attribute}") from None
        raise ValueError(f"unsupported function {function}")

    def _sub(self, args: Any) -> str:
        text, variables = (args, {}) if isinstance(args, str) else args
        local = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    # ------------------------------------------------------- refs and attrs
    def ref(self, name: str) -> Any:
        """What ``Ref`` returns for a parameter, a pseudo parameter or a resource."""
        pseudo = {
            "AWS::Region": self.region, "AWS::AccountId": self.account,
            "AWS::Partition": self.partition, "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:"
                            f"{self.account}:stack/{self.stack_name}/0",
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self._resource(name)
        kind = resource["Type"]
        if kind == "AWS::SQS::Queue":
            return self.queue_url(self.physical_name(name))
        if kind == "AWS::SNS::Topic":
            return self.get_att(name, "TopicArn")
        if kind == "AWS::Lambda::Alias":  # its ARN: the function's, qualified
            properties = resource["Properties"]
            function = self.get_att(properties["FunctionName"]["Ref"], "Arn")
            return f"{function}:{properties['Name']}"
        return self.physical_name(name)

    def queue_url(self, name: str) -> str:
        """The URL of the queue called ``name`` (``Ref`` of a queue)."""
        return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"

    def physical_name(self, logical_id: str) -> str:
        """The resource's own name property if it has one, else ``<stack>-<LogicalId>``."""
        resource = self._resource(logical_id)
        name_properties = {
            "AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName",
            "AWS::Logs::LogGroup": "LogGroupName", "AWS::SQS::Queue": "QueueName",
            "AWS::SNS::Topic": "TopicName", "AWS::IAM::Role": "RoleName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Serverless::Function": "FunctionName",
        }
        key = name_properties.get(resource["Type"])
        explicit = resource.get("Properties", {}).get(key) if key else None
        if explicit is not None:
            value = self._resolve(explicit)
            if value is not _NO_VALUE:
                return str(value)
        return f"{self.stack_name}-{logical_id}"

    def get_att(self, logical_id: str, attribute: str) -> str:
        """``Fn::GetAtt`` for the attributes the template uses (ARNs, mostly)."""
        kind = self._resource(logical_id)["Type"]
        name = self.physical_name(logical_id)
        p, r, a = self.partition, self.region, self.account
        arns = {
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{r}:{a}:{name}",
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{name}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{name}",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::Serverless::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name}",
        }
        if attribute in ("Arn", "TopicArn") and kind in arns:
            return arns[kind]
        if attribute in ("QueueName", "TopicName") and kind in arns:
            return name
        if attribute == "QueueUrl" and kind == "AWS::SQS::Queue":
            return str(self.ref(logical_id))
        if attribute == "Version" and kind == "AWS::Lambda::Version":
            return "1"  # a version SAM's AutoPublishAlias published
        raise ValueError(f"unsupported attribute {logical_id}.{attribute} of {kind}")

    def _resource(self, logical_id: str) -> Mapping[str, Any]:
        try:
            resource: Mapping[str, Any] = self.template["Resources"][logical_id]
        except KeyError:
            alias = self._published_alias(logical_id)
            if alias is None:
                raise ValueError(f"Ref/GetAtt to unknown name {logical_id!r}") from None
            return alias
        return resource

    def _published_alias(self, logical_id: str) -> Mapping[str, Any] | None:
        """The ``AWS::Lambda::Alias`` that SAM makes for a function's ``AutoPublishAlias``
        (its own or the Globals'), named ``<Function>Alias<alias>``; None if there is none."""
        function, _, alias = logical_id.rpartition("Alias")
        resource = self.template["Resources"].get(function)
        if not alias or not resource or resource["Type"] != "AWS::Serverless::Function":
            return None
        globals_ = self.template.get("Globals", {}).get("Function", {})
        if resource.get("Properties", {}).get("AutoPublishAlias",
                                              globals_.get("AutoPublishAlias")) != alias:
            return None
        return {"Type": "AWS::Lambda::Alias",
                "Properties": {"FunctionName": {"Ref": function}, "Name": alias}}
