"""YAML with CloudFormation's short intrinsic-function tags (``!Ref``, ``!Sub``...), for
:func:`amlproxy.local.cfn.load_template`. Apart so that importing the local service needs
no PyYAML (it comes with the ``local`` extra) until a YAML template is read."""

from __future__ import annotations

from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]  # PyYAML comes with moto[server]


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """PyYAML loader that understands CloudFormation's short intrinsic-function tags."""


def _tag_constructor(tag: str) -> Any:
    key = "Ref" if tag == "Ref" else "Condition" if tag == "Condition" else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in ("Ref", "Condition", "Sub", "GetAtt", "If", "Equals", "Not", "And", "Or",
             "Join", "Select", "Split", "Base64", "GetAZs", "ImportValue", "FindInMap",
             "Contains"):
    _CfnLoader.add_constructor(f"!{_tag}", _tag_constructor(_tag))


def load_yaml(text: str) -> Any:
    """``text`` parsed, short tags as their long forms (``{"Fn::Sub": ...}``)."""
    return yaml.load(text, Loader=_CfnLoader)
