"""Transforms sam/template.yaml to plain CloudFormation JSON, offline (no AWS call).

Usage: python sam/tools/transform_template.py [TEMPLATE] [-o OUT.json]

Needs aws-sam-translator (installed in .venv-tools by sam/tools/install.sh). The translator
would list AWS managed policies through IAM to turn a policy *name* into an ARN (it does so
for ``Policies: [SomeManagedPolicy]`` and for ``Tracing: Active`` on a role it generates).
Our functions bring their own roles, so it should never ask; a static map answers if it
does, and an unknown name fails loudly instead of calling AWS.

Local ``CodeUri`` paths are replaced by a placeholder S3 URI first, as ``sam package``
(and cfn-lint) do: the translator only accepts S3 locations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PLACEHOLDER_CODE_URI = "s3://amlproxy-placeholder-bucket/amlproxy.zip"

# The managed policies SAM itself may attach (X-Ray for Tracing: Active, basic execution).
STATIC_MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in [
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "AWSXRayDaemonWriteAccess"),
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
    ]
}


class StaticManagedPolicyLoader:
    """Answers the translator's managed-policy look-ups from a fixed map, never from IAM."""

    def __init__(self) -> None:
        self.asked = False

    def load(self) -> dict[str, str]:
        self.asked = True
        return dict(STATIC_MANAGED_POLICIES)


def _replace_local_code_uris(template: dict[str, Any]) -> None:
    sections = [template.get("Globals", {}).get("Function", {})]
    sections += [
        resource.get("Properties", {})
        for resource in template.get("Resources", {}).values()
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion")
    ]
    for properties in sections:
        for key in ("CodeUri", "ContentUri"):
            value = properties.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                properties[key] = PLACEHOLDER_CODE_URI


def transform_file(path: Path) -> dict[str, Any]:
    """The CloudFormation template (a dict) that the SAM template at ``path`` becomes."""
    # The translator reads the region from a boto3 session (no call is made): give it one.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(path.read_text(encoding="utf-8"))
    _replace_local_code_uris(template)
    loader = StaticManagedPolicyLoader()
    # Duck-typed: the translator only calls load() on its ManagedPolicyLoader.
    result: dict[str, Any] = transform(template, {}, cast(Any, loader), passthrough_metadata=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "template.yaml"
    parser.add_argument("template", nargs="?", type=Path, default=default)
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = json.dumps(transform_file(args.template), indent=2, sort_keys=True)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
