"""Runs parliament on IAM policy documents and answers resource-type questions, as JSON.

Usage (with .venv-tools/bin/python):
    python sam/tools/lint_policies.py POLICIES.json
        POLICIES.json maps a name to a policy document (intrinsic functions already
        resolved: parliament reads plain ARNs). Prints {name: [finding, ...]}, every finding
        parliament reports, community auditors included, before any severity filtering.
    python sam/tools/lint_policies.py --resource-types ACTION [ACTION ...]
        Prints {action: [resource type, ...]} from parliament's copy of the IAM service
        reference; an empty list means the action has no resource-level permissions, so
        "*" is the only resource IAM accepts for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import parliament
from parliament import analyze_policy_string


def lint(policies: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    report: dict[str, list[dict[str, Any]]] = {}
    for name, document in policies.items():
        analyzed = analyze_policy_string(json.dumps(document), include_community_auditors=True)
        report[name] = [
            {"issue": f.issue, "detail": f.detail, "location": f.location}
            for f in analyzed.findings
        ]
    return report


def resource_types(actions: list[str]) -> dict[str, list[str]]:
    definition_path = Path(parliament.__file__).with_name("iam_definition.json")
    services = {s["prefix"]: s for s in json.loads(definition_path.read_text("utf-8"))}
    answer: dict[str, list[str]] = {}
    for action in actions:
        prefix, name = action.split(":", 1)
        privileges = [
            p for p in services[prefix]["privileges"] if p["privilege"].lower() == name.lower()
        ]
        if len(privileges) != 1:
            raise SystemExit(f"unknown action {action}")
        answer[action] = sorted(
            r["resource_type"].rstrip("*") for r in privileges[0]["resource_types"]
            if r["resource_type"]
        )
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="?", type=Path)
    parser.add_argument("--resource-types", nargs="+", metavar="ACTION")
    args = parser.parse_args(argv)
    if args.resource_types:
        result: Any = resource_types(args.resource_types)
    elif args.policies:
        result = lint(json.loads(args.policies.read_text("utf-8")))
    else:
        parser.error("give POLICIES.json or --resource-types")
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
